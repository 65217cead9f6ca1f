# ResNet v1 for CIFAR (He et al. 2016, section 4.2; docs/models.md) on this stack's
# layers: the model of DLRosetta's model_spec(::ResNetConfig), built from its tensors,
# with predict! and backward!.
# Twins: python/dlrosetta/stacks/pytorch/resnet.py, r/stacks/r-keras/R/resnet.R

## Shortcuts

abstract type Shortcut end

"Same shape: the block input itself."
struct IdentityShortcut <: Shortcut end

"Option A: x[:, ::2, ::2, :] zero-padded with cin/2 channels on each side (no parameters)."
struct PadShortcut{T} <: Shortcut
    out::Array{T,4}
    offset::Int      # channels of zeros before the input's
end

"Option B: conv1x1 (stride 2) -> BN."
struct ProjectionShortcut{T} <: Shortcut
    conv::Conv{T}
    bn::BatchNorm{T}
    xc::Array{T,4}
    out::Array{T,4}
    dout::Array{T,4}
end

shortcut_forward!(::IdentityShortcut, a, n, training) = a

function shortcut_forward!(s::PadShortcut{T}, a::Array{T,4}, n::Int, training::Bool) where {T}
    cin, W, H = size(a, 1), size(s.out, 2), size(s.out, 3)
    @timed_kernel "elementwise" "shortcut_pad_forward" parallel(n) do _, i
        fill!(view(s.out, :, :, :, i), zero(T))
        @inbounds for y in 1:H, x in 1:W, c in 1:cin
            s.out[s.offset + c, x, y, i] = a[c, 2x - 1, 2y - 1, i]
        end
    end
    return s.out
end

function shortcut_forward!(s::ProjectionShortcut{T}, a::Array{T,4}, n::Int, training::Bool) where {T}
    conv_forward!(s.xc, s.conv, a, n)
    return batchnorm_forward!(s.out, s.bn, s.xc, n, training)
end

"Add the shortcut's gradient w.r.t. the block input `a` into `da`, given `dy` at its output."
function shortcut_backward!(::IdentityShortcut, da::Array{T,4}, a, dy::Array{T,4}, n::Int) where {T}
    @timed_kernel "elementwise" "shortcut_identity_backward" parallel(n) do _, image
        @inbounds @simd for i in image_range(da, image:image)
            da[i] += dy[i]
        end
    end
end

function shortcut_backward!(s::PadShortcut{T}, da::Array{T,4}, a, dy::Array{T,4}, n::Int) where {T}
    cin, W, H = size(da, 1), size(dy, 2), size(dy, 3)
    @timed_kernel "elementwise" "shortcut_pad_backward" parallel(n) do _, i
        @inbounds for y in 1:H, x in 1:W, c in 1:cin
            da[c, 2x - 1, 2y - 1, i] += dy[s.offset + c, x, y, i]
        end
    end
end

function shortcut_backward!(s::ProjectionShortcut{T}, da::Array{T,4}, a::Array{T,4}, dy::Array{T,4},
                            n::Int) where {T}
    batchnorm_backward!(s.dout, s.bn, s.xc, s.out, dy, n)
    conv_backward!(da, s.conv, a, s.dout, n; accumulate = true)
end

## Blocks

"conv -> BN -> ReLU -> conv -> BN -> (+ shortcut) -> ReLU, with its activations kept for backward."
struct Block{T}
    conv1::Conv{T}
    bn1::BatchNorm{T}
    conv2::Conv{T}
    bn2::BatchNorm{T}
    shortcut::Shortcut
    x1::Array{T,4}   # conv1 output
    y1::Array{T,4}   # bn1 + ReLU output
    x2::Array{T,4}   # conv2 output
    y::Array{T,4}    # block output
    g1::Array{T,4}   # gradient scratch, shared by the blocks of one output shape
    g2::Array{T,4}
    da::Array{T,4}   # gradient w.r.t. the block input
end

function block_forward!(b::Block{T}, a::Array{T,4}, n::Int, training::Bool) where {T}
    conv_forward!(b.x1, b.conv1, a, n)
    batchnorm_forward!(b.y1, b.bn1, b.x1, n, training)
    conv_forward!(b.x2, b.conv2, b.y1, n)
    residual = shortcut_forward!(b.shortcut, a, n, training)
    return batchnorm_forward!(b.y, b.bn2, b.x2, n, training; residual = residual)
end

"Backward through the block given `dy` (overwritten) at its output; returns `b.da`."
function block_backward!(b::Block{T}, a::Array{T,4}, dy::Array{T,4}, n::Int) where {T}
    batchnorm_backward!(b.g1, b.bn2, b.x2, b.y, dy, n)      # dy becomes the pre-ReLU gradient
    conv_backward!(b.g2, b.conv2, b.y1, b.g1, n)
    batchnorm_backward!(b.g2, b.bn1, b.x1, b.y1, b.g2, n)
    conv_backward!(b.da, b.conv1, a, b.g2, n)
    shortcut_backward!(b.shortcut, b.da, a, dy, n)
    return b.da
end

## Model

struct ResNet{T} <: Model{T}
    config::ResNetConfig
    params::Parameters{T}
    batch::Int
    x::Array{T,4}            # input images (C, W, H, batch)
    labels::Vector{Int32}
    stem_conv::Conv{T}
    stem_bn::BatchNorm{T}
    stem_x::Array{T,4}
    stem_y::Array{T,4}
    blocks::Vector{Block{T}}
    dense::Dense{T}
    pooled::Matrix{T}
    dpooled::Matrix{T}
    logits::Matrix{T}
    dlogits::Matrix{T}
    dlast::Array{T,4}        # gradient w.r.t. the last block's output
end

"A ResNet with buffers for batches of up to `batch` images; weights as `Parameters` initialise them."
function ResNet{T}(cfg::ResNetConfig, batch::Int) where {T}
    p = Parameters{T}(model_spec(cfg))
    conv(name, size; stride = 1) = Conv(p.arrays["$name.kernel"], p.grads["$name.kernel"], size, size;
                                        batch = batch, stride = stride)
    bn(name; relu) = BatchNorm(p.arrays["$name.gamma"], p.arrays["$name.beta"], p.grads["$name.gamma"],
                               p.grads["$name.beta"], p.arrays["$name.moving_mean"],
                               p.arrays["$name.moving_variance"]; relu = relu, batch = batch)
    buffer(c, size) = zeros(T, c, size, size, batch)
    scratch = Dict{Tuple{Int,Int},NTuple{2,Array{T,4}}}()
    shared(c, size) = get!(() -> (buffer(c, size), buffer(c, size)), scratch, (c, size))

    hw = cfg.image_size
    stem_conv = conv("stem.conv", hw)
    blocks = Block{T}[]
    for (prefix, cin, cout, stride) in resnet_blocks(cfg)
        conv1 = conv("$prefix.conv1", hw; stride = stride)
        out = conv1.out_w
        shortcut = if stride == 1
            IdentityShortcut()
        elseif cfg.shortcut == "A"
            PadShortcut{T}(buffer(cout, out), (cout - cin) ÷ 2)
        else
            ProjectionShortcut{T}(conv("$prefix.shortcut.conv", hw; stride = 2),
                                  bn("$prefix.shortcut.bn"; relu = false),
                                  buffer(cout, out), buffer(cout, out), buffer(cout, out))
        end
        g1, g2 = shared(cout, out)
        push!(blocks, Block{T}(conv1, bn("$prefix.bn1"; relu = true), conv("$prefix.conv2", out),
                               bn("$prefix.bn2"; relu = true), shortcut,
                               buffer(cout, out), buffer(cout, out), buffer(cout, out), buffer(cout, out),
                               g1, g2, buffer(cin, hw)))
        hw = out
    end
    dense = Dense{T}(p.arrays["head.dense.kernel"], p.arrays["head.dense.bias"],
                     p.grads["head.dense.kernel"], p.grads["head.dense.bias"])
    C, K = blocks[end].conv2.cout, cfg.num_classes
    return ResNet{T}(cfg, p, batch, buffer(cfg.channels, cfg.image_size), zeros(Int32, batch),
                     stem_conv, bn("stem.bn"; relu = true), buffer(cfg.width, cfg.image_size),
                     buffer(cfg.width, cfg.image_size), blocks, dense,
                     zeros(T, C, batch), zeros(T, C, batch), zeros(T, K, batch), zeros(T, K, batch),
                     buffer(C, hw))
end

"The batch buffer `gather!` (train.jl) copies images into."
batch_input(m::ResNet) = m.x

"Logits of the first `n` images of the batch buffer (BN in training or inference mode)."
function predict!(m::ResNet{T}, n::Int, training::Bool) where {T}
    conv_forward!(m.stem_x, m.stem_conv, m.x, n)
    a = batchnorm_forward!(m.stem_y, m.stem_bn, m.stem_x, n, training)
    for b in m.blocks
        a = block_forward!(b, a, n, training)
    end
    avgpool_forward!(m.pooled, a, n)
    return dense_forward!(m.logits, m.dense, m.pooled, n)
end

"Gradients of the loss whose logit gradient `softmax_xent!` left in `m.dlogits`."
function backward!(m::ResNet{T}, n::Int) where {T}
    dense_backward!(m.dpooled, m.dense, m.pooled, m.dlogits, n)
    dy = avgpool_backward!(m.dlast, m.dpooled, n)
    for k in length(m.blocks):-1:1
        a = k == 1 ? m.stem_y : m.blocks[k - 1].y
        dy = block_backward!(m.blocks[k], a, dy, n)
    end
    batchnorm_backward!(dy, m.stem_bn, m.stem_x, m.stem_y, dy, n)
    conv_backward!(nothing, m.stem_conv, m.x, dy, n)
    return m
end

kernel_notes(::ResNet) =
    "conv: im2col + OpenBLAS sgemm per cache-sized chunk of images, channel-fastest layout; " *
    "batch norm fused with residual add and ReLU; " * thread_notes("images")
