# The activation layout of every layer: channel-fastest (C, W, H, N) arrays, the shards'
# NHWC bytes as read (DLRosetta's npy.jl), so per-channel loops run over contiguous
# channel vectors and SIMD well. Layers act on the first `n` images of their buffers (the
# last evaluation batch may be short); these helpers address image ranges of a buffer.
# Twins: none

"Images `images` of a (C, W, H, N) array as a (C, W*H*length(images)) matrix view."
function image_columns(a::Array{T,4}, images::UnitRange{Int}) where {T}
    pixels = size(a, 2) * size(a, 3)
    return view(reshape(a, size(a, 1), :), :, (first(images) - 1) * pixels + 1:last(images) * pixels)
end

"Linear index range of images `images` in a (C, W, H, N) array."
image_range(a::Array{T,4}, images::UnitRange{Int}) where {T} =
    let len = size(a, 1) * size(a, 2) * size(a, 3)
        (first(images) - 1) * len + 1:last(images) * len
    end

"The images of chunk `ch` when images 1:n are processed `chunk` at a time."
chunk_images(chunk::Int, n::Int, ch::Int) = (ch - 1) * chunk + 1:min(ch * chunk, n)
