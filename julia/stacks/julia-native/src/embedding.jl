# Embedding lookup and its adjoint, a scatter-add. The frameworks' built-in
# counterparts: torch.nn.Embedding and keras.layers.Embedding.
# Twins: none

"Gather: column j of `out` is the embedding (a column of `emb`) of 0-based token `tokens[j]`."
function embedding_forward!(out::AbstractMatrix{T}, emb::Matrix{T}, tokens::AbstractVector{<:Integer}) where {T}
    E = size(emb, 1)
    @inbounds for (j, tok) in enumerate(tokens)
        @simd for e in 1:E
            out[e, j] = emb[e, tok + 1]
        end
    end
    return out
end

"Scatter-add: the adjoint of `embedding_forward!` (`demb` is added to)."
function embedding_backward!(demb::Matrix{T}, dout::AbstractMatrix{T}, tokens::AbstractVector{<:Integer}) where {T}
    E = size(demb, 1)
    @inbounds for (j, tok) in enumerate(tokens)
        @simd for e in 1:E
            demb[e, tok + 1] += dout[e, j]
        end
    end
    return demb
end
