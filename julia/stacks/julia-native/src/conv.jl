# Convolution without bias, "same" padding, any stride, with its backward pass. The
# frameworks' built-in counterparts: torch.nn.Conv2d(bias=False) and
# keras.layers.Conv2D(use_bias=False, padding="same").
# Twins: none

const CONV_CHUNK_FLOATS = 1 << 18  # im2col buffer per worker: 1 MiB of Float32, about L2

"""
Convolution without bias ("same" padding (k-1)/2, any stride) as im2col + one GEMM per
chunk of images, the chunk sized so that its column buffer stays in cache.

With channel-fastest activations one kernel row of an output pixel's window is a single
contiguous run of k*cin input values, and the canonical kernel [kh, kw, in, out] read
reversed is (out, in, kw, kh) = an (out, k*k*in) matrix whose columns are in exactly
that order: no transposition anywhere.
"""
struct Conv{T}
    w::Matrix{T}                 # (cout, k*k*cin) view of the (cout, cin, kw, kh) kernel
    dw::Matrix{T}
    cin::Int
    cout::Int
    k::Int
    stride::Int
    pad::Int
    in_w::Int
    in_h::Int
    out_w::Int
    out_h::Int
    chunk::Int                   # images per im2col + GEMM: the unit of parallel work
    col::Vector{Matrix{T}}       # per worker: (k*k*cin, chunk*out_w*out_h)
    dw_parts::Array{T,3}         # (cout, k*k*cin, chunks): weight gradient of each chunk
end

function Conv(w::Array{T,4}, dw::Array{T,4}, in_w::Int, in_h::Int; batch::Int, stride::Int = 1,
              chunk::Int = 0) where {T}
    cout, cin, kw, kh = size(w)
    kw == kh && isodd(kh) || throw(ArgumentError("Conv needs an odd square kernel, got $kh x $kw"))
    pad = (kh - 1) ÷ 2
    out_w, out_h = (in_w + 2pad - kh) ÷ stride + 1, (in_h + 2pad - kh) ÷ stride + 1
    rows = kh * kh * cin
    chunk = chunk > 0 ? chunk : max(1, CONV_CHUNK_FLOATS ÷ (rows * out_w * out_h))
    return Conv{T}(reshape(w, cout, rows), reshape(dw, cout, rows), cin, cout, kh, stride, pad,
                   in_w, in_h, out_w, out_h, chunk,
                   [Matrix{T}(undef, rows, chunk * out_w * out_h) for _ in 1:workers()],
                   zeros(T, cout, rows, cld(batch, chunk)))
end

"""
Walk the im2col windows of images i0:i1: `f(j, r, base, lo, hi)` for column j (output
pixel) and kernel row at col rows r+1:r+k*cin, whose entries lo+1:hi come from input
indices base+lo+1:base+hi; the rest of the row is padding (lo = hi = 0: all of it).
"""
@inline function foreach_window(f, c::Conv, i0::Int, i1::Int)
    k, cin, s, p, W, H = c.k, c.cin, c.stride, c.pad, c.in_w, c.in_h
    run = k * cin
    j = 0
    for n in i0:i1, oy in 1:c.out_h, ox in 1:c.out_w
        j += 1
        x0 = (ox - 1) * s - p                      # input column before the window
        lo, hi = cin * (max(1, 1 - x0) - 1), cin * min(k, W - x0)
        for ky in 1:k
            iy = (oy - 1) * s - p + ky
            if 1 <= iy <= H
                f(j, (ky - 1) * run, cin * (x0 + W * (iy - 1 + H * (n - 1))), lo, hi)
            else
                f(j, (ky - 1) * run, 0, 0, 0)
            end
        end
    end
end

"""
The chunk's columns; padding is zero. In-bounds runs are copied with memmove: faster
than a vectorised loop for runs as short as these (48 values for cin = 16).
"""
function im2col!(col::Matrix{T}, c::Conv{T}, x::Array{T,4}, i0::Int, i1::Int) where {T}
    rows = size(col, 1)
    fill!(view(col, :, 1:(i1 - i0 + 1) * c.out_w * c.out_h), zero(T))
    foreach_window(c, i0, i1) do j, r, base, lo, hi
        hi > lo && unsafe_copyto!(col, (j - 1) * rows + r + lo + 1, x, base + lo + 1, hi - lo)
    end
end

"Scatter-add columns back onto the input gradient (the adjoint of im2col!)."
function col2im!(dx::Array{T,4}, c::Conv{T}, col::Matrix{T}, i0::Int, i1::Int) where {T}
    rows = size(col, 1)
    foreach_window(c, i0, i1) do j, r, base, lo, hi
        add_run!(dx, base + lo, col, (j - 1) * rows + r + lo, hi - lo)
    end
end

"""
`dst[d+1:d+len] += src[s+1:s+len]`. LLVM vectorises a `@simd` loop only from 64 Float32
on (16 lanes, 4 interleaved); shorter runs go in fixed blocks of 16, which it does
vectorise.
"""
@inline function add_run!(dst::Array{T}, d::Int, src::Array{T}, s::Int, len::Int) where {T}
    if len >= 64
        @inbounds @simd for q in 1:len
            dst[d + q] += src[s + q]
        end
        return
    end
    q = 0
    @inbounds while q + 16 <= len
        for u in 1:16
            dst[d + q + u] += src[s + q + u]
        end
        q += 16
    end
    @inbounds for u in q + 1:len
        dst[d + u] += src[s + u]
    end
end

function conv_forward!(y::Array{T,4}, c::Conv{T}, x::Array{T,4}, n::Int) where {T}
    @timed_kernel "conv_gemm" "conv_forward" begin
        parallel(cld(n, c.chunk)) do wk, ch
            col, images = c.col[wk], chunk_images(c.chunk, n, ch)
            im2col!(col, c, x, first(images), last(images))
            cols = view(col, :, 1:length(images) * c.out_w * c.out_h)
            gemm!('N', 'N', one(T), c.w, cols, zero(T), image_columns(y, images))
        end
    end
    return y
end

"""
Weight gradient into `c.dw`, and unless `dx` is `nothing`, the input gradient into `dx`
(overwritten, or added to with `accumulate = true`). im2col is recomputed per chunk
rather than kept from the forward pass: cheaper than streaming a batch-sized buffer.
"""
function conv_backward!(dx::Union{Nothing,Array{T,4}}, c::Conv{T}, x::Array{T,4}, dy::Array{T,4},
                        n::Int; accumulate::Bool = false) where {T}
    chunks = cld(n, c.chunk)
    @timed_kernel "conv_gemm" "conv_backward" begin
        parallel(chunks) do wk, ch
            col, images = c.col[wk], chunk_images(c.chunk, n, ch)
            im2col!(col, c, x, first(images), last(images))
            cols = view(col, :, 1:length(images) * c.out_w * c.out_h)
            dyc = image_columns(dy, images)
            gemm!('N', 'T', one(T), dyc, cols, zero(T), view(c.dw_parts, :, :, ch))
            if dx !== nothing
                gemm!('T', 'N', one(T), c.w, dyc, zero(T), cols)
                accumulate || fill!(view(dx, image_range(dx, images)), zero(T))
                col2im!(dx, c, col, first(images), last(images))
            end
        end
        sum_items!(c.dw, c.dw_parts, chunks)
    end
    return dx
end

"`out` = the sum over items 1:n of `parts` (items along the last dimension), in item order."
function sum_items!(out::AbstractArray, parts::AbstractArray, n::Int)
    out .= selectdim(parts, ndims(parts), 1)
    for i in 2:n
        out .+= selectdim(parts, ndims(parts), i)
    end
    return out
end
