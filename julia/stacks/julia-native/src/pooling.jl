# Global average pooling over (W, H) and its backward pass. The frameworks' built-in
# counterparts: torch.nn.AdaptiveAvgPool2d(1) and keras.layers.GlobalAveragePooling2D.
# Twins: none

function avgpool_forward!(pooled::Matrix{T}, x::Array{T,4}, n::Int) where {T}
    @timed_kernel "elementwise" "avgpool_forward" begin
        C, pixels = size(x, 1), size(x, 2) * size(x, 3)
        fill!(view(pooled, :, 1:n), zero(T))
        @inbounds for i in 1:n, p in 1:pixels
            o = C * (p - 1 + pixels * (i - 1))
            @simd for c in 1:C
                pooled[c, i] += x[o + c]
            end
        end
        view(pooled, :, 1:n) ./= pixels
    end
    return pooled
end

function avgpool_backward!(dx::Array{T,4}, dpooled::Matrix{T}, n::Int) where {T}
    @timed_kernel "elementwise" "avgpool_backward" begin
        C, pixels = size(dx, 1), size(dx, 2) * size(dx, 3)
        @inbounds for i in 1:n, p in 1:pixels
            o = C * (p - 1 + pixels * (i - 1))
            @simd for c in 1:C
                dx[o + c] = dpooled[c, i] / pixels
            end
        end
    end
    return dx
end
