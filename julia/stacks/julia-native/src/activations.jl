# Sigmoid and tanh for the LSTM cell, branch-free in Float32 so that the cell's loops
# vectorise; the frameworks' fused LSTM kernels have their own.
# Twins: none

"""
exp for Float32 without branches, so that loops over it vectorise (Base's exp and tanh do
not): Cody-Waite reduction x = n ln2 + r, Cephes' degree-6 polynomial for exp(r), and
2^n built in the exponent bits. Relative error within 2 ulp on the clamped range, where
results stay normal.
"""
@inline function exp_fast(x::Float32)
    x = clamp(x, -87.0f0, 88.0f0)
    n = round(x * 1.44269504f0)
    r = muladd(n, -0.693359375f0, x)
    r = muladd(n, 2.12194440f-4, r)
    p = muladd(1.9875691500f-4, r, 1.3981999507f-3)
    p = muladd(p, r, 8.3334519073f-3)
    p = muladd(p, r, 4.1665795894f-2)
    p = muladd(p, r, 1.6666665459f-1)
    p = muladd(p, r, 5.0000001201f-1)
    e = muladd(p, r * r, r) + 1.0f0
    return e * reinterpret(Float32, (unsafe_trunc(Int32, n) + Int32(127)) << 23)
end

"Logistic sigmoid; Float32 through `exp_fast`, other types (the Float64 checks) through Base."
@inline sigmoid(x::Float32) = 1.0f0 / (1.0f0 + exp_fast(-x))
@inline sigmoid(x::T) where {T<:AbstractFloat} = one(T) / (one(T) + exp(-x))

"tanh; for Float32 as 1 - 2/(exp(2x) + 1): absolute error about 1e-7 (relative error grows near 0)."
@inline tanh_fast(x::Float32) = 1.0f0 - 2.0f0 / (exp_fast(2.0f0 * x) + 1.0f0)
@inline tanh_fast(x::AbstractFloat) = tanh(x)
