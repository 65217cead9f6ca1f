# Fully connected layer and its backward pass. The frameworks' built-in counterparts:
# torch.nn.Linear and keras.layers.Dense.
# Twins: none

"Fully connected layer: y = w x + b with w (out, in), the canonical [in, out] reversed."
struct Dense{T}
    w::Matrix{T}
    b::Vector{T}
    dw::Matrix{T}
    db::Vector{T}
end

function dense_forward!(y::Matrix{T}, d::Dense{T}, x::AbstractMatrix{T}, n::Int) where {T}
    @timed_kernel "conv_gemm" "dense_forward" begin
        yv = view(y, :, 1:n)
        yv .= d.b
        gemm!('N', 'N', one(T), d.w, view(x, :, 1:n), one(T), yv)
    end
    return y
end

function dense_backward!(dx::AbstractMatrix{T}, d::Dense{T}, x::AbstractMatrix{T}, dy::Matrix{T},
                         n::Int) where {T}
    @timed_kernel "conv_gemm" "dense_backward" begin
        dyv = view(dy, :, 1:n)
        gemm!('N', 'T', one(T), dyv, view(x, :, 1:n), zero(T), d.dw)
        sum!(d.db, dyv)
        gemm!('T', 'N', one(T), d.w, dyv, zero(T), view(dx, :, 1:n))
    end
    return dx
end
