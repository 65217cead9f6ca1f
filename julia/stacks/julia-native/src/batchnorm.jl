# Batch normalisation, optionally fused with the residual add and ReLU that follow it in
# a ResNet block, with its backward pass. The frameworks' built-in counterparts:
# torch.nn.BatchNorm2d (momentum 0.1) and keras.layers.BatchNormalization (momentum 0.9,
# the same update written the other way).
# Twins: none

const BN_EPSILON = 1e-5
const BN_MOMENTUM = 0.1       # moving = (1 - 0.1) * moving + 0.1 * batch statistic

"""
Batch norm over (W, H, N) per channel, optionally followed by a residual add and ReLU
(`y = relu(bn(x) + residual)`), fused into one pass. Training normalises with the
batch's biased variance and updates the moving statistics with it; evaluation uses the
moving statistics.

Passes run over blocks of whole pixels, `block` values long (a multiple of C, at least
64), with per-channel coefficients repeated to that length: with C = 16 a per-pixel loop
would be too short for LLVM to vectorise (see `add_run!`).
"""
struct BatchNorm{T}
    gamma::Vector{T}
    beta::Vector{T}
    dgamma::Vector{T}
    dbeta::Vector{T}
    moving_mean::Vector{T}
    moving_var::Vector{T}
    relu::Bool
    mean::Vector{T}                  # statistics the last forward pass normalised with
    invstd::Vector{T}
    block::Int
    coef::Matrix{T}                  # (block, 3) per-channel coefficients, repeated
    sums::Array{Float64,3}           # (block, 2, batch) partial sums of each image
    totals::Matrix{Float64}          # (C, 2) their per-channel totals
end

function BatchNorm(gamma::Vector{T}, beta::Vector{T}, dgamma::Vector{T}, dbeta::Vector{T},
                   moving_mean::Vector{T}, moving_var::Vector{T}; relu::Bool, batch::Int) where {T}
    C = length(gamma)
    block = C * cld(64, C)
    return BatchNorm{T}(gamma, beta, dgamma, dbeta, moving_mean, moving_var, relu, similar(gamma),
                        similar(gamma), block, zeros(T, block, 3), zeros(block, 2, batch), zeros(C, 2))
end

"Set coefficient column `k` to `f(c)` for each channel c, repeated over the block."
function set_coef!(f, bn::BatchNorm, k::Int)
    C = length(bn.gamma)
    @inbounds for q in 1:bn.block
        bn.coef[q, k] = f(mod1(q, C))
    end
end

"Call `f(o, len)` for the blocks o+1:o+len of range `r` (whole pixels; the last may be short)."
@inline function foreach_block(f, r::UnitRange{Int}, block::Int)
    o = first(r) - 1
    while o + block <= last(r)
        f(o, block)
        o += block
    end
    o < last(r) && f(o, last(r) - o)
end

"""
Per-channel sums of `f(i, q) -> (u, v)` over the elements i of images 1:n (q: position in
the block), accumulated in Float64, per image and then in image order; returns (C, 2).
"""
function channel_sums!(f, bn::BatchNorm, a::Array{T,4}, n::Int) where {T}
    parallel(n) do wk, image
        s = view(bn.sums, :, :, image)
        fill!(s, 0.0)
        foreach_block(image_range(a, image:image), bn.block) do o, len
            @inbounds @simd ivdep for q in 1:len
                u, v = f(o + q, q)
                s[q, 1] += u
                s[q, 2] += v
            end
        end
    end
    C, total = length(bn.gamma), fill!(bn.totals, 0.0)
    @inbounds for image in 1:n, k in 1:2, q in 1:bn.block
        total[mod1(q, C), k] += bn.sums[q, k, image]
    end
    return total
end

function batchnorm_forward!(y::Array{T,4}, bn::BatchNorm{T}, x::Array{T,4}, n::Int, training::Bool;
                            residual::Union{Nothing,Array{T,4}} = nothing) where {T}
    @timed_kernel "normalisation" "batchnorm_forward" begin
        C = length(bn.gamma)
        if training
            s = channel_sums!(bn, x, n) do i, q
                @inbounds v = Float64(x[i])
                (v, v * v)
            end
            m = n * size(x, 2) * size(x, 3)
            @inbounds for c in 1:C
                mean = s[c, 1] / m
                var = max(s[c, 2] / m - mean^2, 0.0)
                bn.mean[c], bn.invstd[c] = mean, 1 / sqrt(var + BN_EPSILON)
                bn.moving_mean[c] = (1 - BN_MOMENTUM) * bn.moving_mean[c] + BN_MOMENTUM * mean
                bn.moving_var[c] = (1 - BN_MOMENTUM) * bn.moving_var[c] + BN_MOMENTUM * var
            end
        else
            bn.mean .= bn.moving_mean
            bn.invstd .= 1 ./ sqrt.(bn.moving_var .+ T(BN_EPSILON))
        end
        set_coef!(c -> bn.gamma[c] * bn.invstd[c], bn, 1)                          # scale
        set_coef!(c -> bn.beta[c] - bn.mean[c] * bn.gamma[c] * bn.invstd[c], bn, 2)  # shift
        parallel(n) do wk, image
            bn_apply!(y, x, residual, bn, image_range(x, image:image), Val(bn.relu))
        end
    end
    return y
end

function bn_apply!(y::Array{T,4}, x::Array{T,4}, residual, bn::BatchNorm{T}, r::UnitRange{Int},
                   ::Val{relu}) where {T,relu}
    scale, shift = view(bn.coef, :, 1), view(bn.coef, :, 2)
    foreach_block(r, bn.block) do o, len
        @inbounds @simd ivdep for q in 1:len
            v = x[o + q] * scale[q] + shift[q]
            if residual !== nothing
                v += residual[o + q]
            end
            y[o + q] = relu ? ifelse(v > zero(T), v, zero(T)) : v
        end
    end
end

"""
Backward of `batchnorm_forward!` in training mode. `dy` (gradient w.r.t. the output y)
is overwritten with the gradient before the ReLU, which is also the residual branch's
gradient; `dx` may be `dy` itself when that is not needed afterwards. With g that
gradient and xhat the normalised input, dx = gamma invstd (g - mean(g) - xhat mean(g xhat)),
applied as dx = a g + b x + d with per-channel a, b, d.
"""
function batchnorm_backward!(dx::Array{T,4}, bn::BatchNorm{T}, x::Array{T,4}, y::Array{T,4},
                             dy::Array{T,4}, n::Int) where {T}
    @timed_kernel "normalisation" "batchnorm_backward" begin
        C, relu = length(bn.gamma), bn.relu
        set_coef!(c -> bn.mean[c], bn, 1)
        set_coef!(c -> bn.invstd[c], bn, 2)
        mean, invstd = view(bn.coef, :, 1), view(bn.coef, :, 2)
        s = channel_sums!(bn, x, n) do i, q
            @inbounds begin
                g = relu ? ifelse(y[i] > zero(T), dy[i], zero(T)) : dy[i]
                dy[i] = g
                (Float64(g), Float64(g) * Float64((x[i] - mean[q]) * invstd[q]))
            end
        end
        m = n * size(x, 2) * size(x, 3)
        @inbounds for c in 1:C
            bn.dbeta[c], bn.dgamma[c] = s[c, 1], s[c, 2]
        end
        # a = gamma invstd; b = -a invstd mean(g xhat); d = a (invstd mean mean(g xhat) - mean(g))
        set_coef!(c -> bn.gamma[c] * bn.invstd[c], bn, 1)
        set_coef!(c -> -bn.gamma[c] * bn.invstd[c]^2 * s[c, 2] / m, bn, 2)
        set_coef!(c -> bn.gamma[c] * bn.invstd[c] * (s[c, 2] / m * bn.invstd[c] * bn.mean[c] - s[c, 1] / m), bn, 3)
        parallel(n) do wk, image
            foreach_block(image_range(x, image:image), bn.block) do o, len
                @inbounds @simd ivdep for q in 1:len
                    dx[o + q] = bn.coef[q, 1] * dy[o + q] + bn.coef[q, 2] * x[o + q] + bn.coef[q, 3]
                end
            end
        end
    end
    return dx
end
