# Softmax cross-entropy on logits (with its gradient) and the count of correct
# predictions for accuracy. The frameworks' built-in counterparts:
# torch.nn.functional.cross_entropy and keras.losses.SparseCategoricalCrossentropy(from_logits=True).
# Twins: none

"""
Mean softmax cross-entropy of the first `n` columns of `logits` against 0-based
`labels`; writes its gradient w.r.t. the logits into `dlogits`. Returns the loss.
"""
function softmax_xent!(dlogits::Matrix{T}, logits::Matrix{T}, labels::AbstractVector{<:Integer},
                       n::Int) where {T}
    K = size(logits, 1)
    total = 0.0
    @timed_kernel "loss" "softmax_cross_entropy" begin
        @inbounds for i in 1:n
            m = maximum(view(logits, :, i))
            s = zero(T)
            for k in 1:K
                s += exp(logits[k, i] - m)
            end
            lse = m + log(s)
            y = labels[i] + 1
            total += Float64(lse - logits[y, i])
            for k in 1:K
                dlogits[k, i] = (exp(logits[k, i] - lse) - (k == y)) / n
            end
        end
    end
    return total / n
end

"Number of the first `n` columns whose largest logit is at the 0-based label."
function count_correct(logits::Matrix, labels::AbstractVector{<:Integer}, n::Int)
    return count(i -> argmax(view(logits, :, i)) == labels[i] + 1, 1:n)
end
