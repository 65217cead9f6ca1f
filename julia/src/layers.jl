# Layers with explicit backward passes: convolution, batch norm (+ residual, + ReLU),
# global average pooling, dense, softmax cross-entropy, embedding. Generic over the
# element type (Float32 to train, Float64 for the finite-difference checks in
# test/runtests.jl); every layer preallocates its workspaces and writes into the
# caller's buffers, so a training step allocates next to nothing.
# Twins: the framework layers of python/dlrosetta/stacks/*/resnet.py and lstm.py.
#
# Activations are channel-fastest (C, W, H, N) arrays: the shards' NHWC bytes as read
# (npy.jl). Per-channel loops then run over contiguous channel vectors and SIMD well.
# Layers act on the first `n` images of their buffers (the last evaluation batch may be
# short).

const BN_EPSILON = 1e-5
const BN_MOMENTUM = 0.1       # moving = (1 - 0.1) * moving + 0.1 * batch statistic
const CONV_CHUNK_FLOATS = 1 << 18  # im2col buffer per worker: 1 MiB of Float32, about L2

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

## Convolution

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

"The images of chunk `ch` when images 1:n are processed `chunk` at a time."
chunk_images(chunk::Int, n::Int, ch::Int) = (ch - 1) * chunk + 1:min(ch * chunk, n)

function conv_forward!(y::Array{T,4}, c::Conv{T}, x::Array{T,4}, n::Int) where {T}
    parallel(cld(n, c.chunk)) do wk, ch
        col, images = c.col[wk], chunk_images(c.chunk, n, ch)
        im2col!(col, c, x, first(images), last(images))
        cols = view(col, :, 1:length(images) * c.out_w * c.out_h)
        BLAS.gemm!('N', 'N', one(T), c.w, cols, zero(T), image_columns(y, images))
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
    parallel(chunks) do wk, ch
        col, images = c.col[wk], chunk_images(c.chunk, n, ch)
        im2col!(col, c, x, first(images), last(images))
        cols = view(col, :, 1:length(images) * c.out_w * c.out_h)
        dyc = image_columns(dy, images)
        BLAS.gemm!('N', 'T', one(T), dyc, cols, zero(T), view(c.dw_parts, :, :, ch))
        if dx !== nothing
            BLAS.gemm!('T', 'N', one(T), c.w, dyc, zero(T), cols)
            accumulate || fill!(view(dx, image_range(dx, images)), zero(T))
            col2im!(dx, c, col, first(images), last(images))
        end
    end
    sum_items!(c.dw, c.dw_parts, chunks)
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

## Batch normalisation

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
    return dx
end

## Global average pooling

function avgpool_forward!(pooled::Matrix{T}, x::Array{T,4}, n::Int) where {T}
    C, pixels = size(x, 1), size(x, 2) * size(x, 3)
    fill!(view(pooled, :, 1:n), zero(T))
    @inbounds for i in 1:n, p in 1:pixels
        o = C * (p - 1 + pixels * (i - 1))
        @simd for c in 1:C
            pooled[c, i] += x[o + c]
        end
    end
    view(pooled, :, 1:n) ./= pixels
    return pooled
end

function avgpool_backward!(dx::Array{T,4}, dpooled::Matrix{T}, n::Int) where {T}
    C, pixels = size(dx, 1), size(dx, 2) * size(dx, 3)
    @inbounds for i in 1:n, p in 1:pixels
        o = C * (p - 1 + pixels * (i - 1))
        @simd for c in 1:C
            dx[o + c] = dpooled[c, i] / pixels
        end
    end
    return dx
end

## Dense

"Fully connected layer: y = w x + b with w (out, in), the canonical [in, out] reversed."
struct Dense{T}
    w::Matrix{T}
    b::Vector{T}
    dw::Matrix{T}
    db::Vector{T}
end

function dense_forward!(y::Matrix{T}, d::Dense{T}, x::AbstractMatrix{T}, n::Int) where {T}
    yv = view(y, :, 1:n)
    yv .= d.b
    BLAS.gemm!('N', 'N', one(T), d.w, view(x, :, 1:n), one(T), yv)
    return y
end

function dense_backward!(dx::AbstractMatrix{T}, d::Dense{T}, x::AbstractMatrix{T}, dy::Matrix{T},
                         n::Int) where {T}
    dyv = view(dy, :, 1:n)
    BLAS.gemm!('N', 'T', one(T), dyv, view(x, :, 1:n), zero(T), d.dw)
    sum!(d.db, dyv)
    BLAS.gemm!('T', 'N', one(T), d.w, dyv, zero(T), view(dx, :, 1:n))
    return dx
end

## Loss

"""
Mean softmax cross-entropy of the first `n` columns of `logits` against 0-based
`labels`; writes its gradient w.r.t. the logits into `dlogits`. Returns the loss.
"""
function softmax_xent!(dlogits::Matrix{T}, logits::Matrix{T}, labels::AbstractVector{<:Integer},
                       n::Int) where {T}
    K = size(logits, 1)
    total = 0.0
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
    return total / n
end

"Number of the first `n` columns whose largest logit is at the 0-based label."
function count_correct(logits::Matrix, labels::AbstractVector{<:Integer}, n::Int)
    return count(i -> argmax(view(logits, :, i)) == labels[i] + 1, 1:n)
end

## Embedding

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

## Activations

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
