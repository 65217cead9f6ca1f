# The canonical definition of the two models (docs/models.md), apart from any framework:
# the ordered list of named tensors with their shapes in the canonical layout, whether
# they are trained, and how they are initialised. Every Julia stack builds its model
# from this list, and a run without an initial-weights file draws its weights from it.
# Twins: python/dlrosetta/model_spec.py, r/R/model_spec.R

"""
One named tensor in the canonical layout of docs/models.md (shape as NumPy writes it).
`init` is :he_uniform, :glorot_uniform, :uniform (limit `limit`), :zeros, :ones or
:lstm_bias (zeros, forget-gate block ones).
"""
struct ParamSpec
    name::String
    shape::Vector{Int}
    init::Symbol
    limit::Float64
    trainable::Bool
end
ParamSpec(name, shape, init; limit = 0.0, trainable = true) =
    ParamSpec(name, collect(Int, shape), init, limit, trainable)

"A model's tensors in canonical order; `model` is \"resnet\" or \"lstm\"."
struct ModelSpec
    model::String
    params::Vector{ParamSpec}
end

"Julia's dimensions of a canonical tensor: the canonical shape reversed (see npy.jl)."
julia_size(p::ParamSpec) = Tuple(reverse(p.shape))

"Trainable parameters (BN moving statistics are state, not parameters)."
parameter_count(spec::ModelSpec) = sum(prod(p.shape) for p in spec.params if p.trainable)

"fan_in, fan_out of a kernel in the canonical layout."
function fans(p::ParamSpec)
    if length(p.shape) == 4
        kh, kw, cin, cout = p.shape
        return kh * kw * cin, kh * kw * cout
    end
    return p.shape[1], p.shape[end]
end

## ResNet v1 for CIFAR (He et al. 2016, section 4.2)

Base.@kwdef struct ResNetConfig
    depth::Int = 20
    width::Int = 16
    shortcut::String = "A"
    num_classes::Int = 10
    image_size::Int = 32
    channels::Int = 3
end

"From a run spec's `model_config`."
ResNetConfig(c::AbstractDict) =
    ResNetConfig(depth = c["depth"], width = c["width"], shortcut = c["shortcut"],
                 num_classes = c["num_classes"], image_size = get(c, "image_size", 32),
                 channels = get(c, "channels", 3))

function blocks_per_stage(depth::Int)
    (depth >= 8 && (depth - 2) % 6 == 0) ||
        throw(ArgumentError("resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got $depth"))
    return (depth - 2) ÷ 6
end

"""
The basic blocks in order, as `(name, cin, cout, stride)`: stage s (1..3) has
width*2^(s-1) filters; stages 2 and 3 halve the resolution in their first block
(stride 2), where the shortcut changes shape.
"""
function resnet_blocks(cfg::ResNetConfig)
    blocks, cin = NamedTuple{(:name, :cin, :cout, :stride),Tuple{String,Int,Int,Int}}[], cfg.width
    for stage in 1:3, block in 1:blocks_per_stage(cfg.depth)
        cout = cfg.width * 2^(stage - 1)
        push!(blocks, (name = "stage$stage.block$block", cin = cin, cout = cout,
                       stride = stage > 1 && block == 1 ? 2 : 1))
        cin = cout
    end
    return blocks
end

conv_param(name, k, cin, cout) = ParamSpec("$name.kernel", (k, k, cin, cout), :he_uniform)
bn_params(name, c) = [ParamSpec("$name.gamma", (c,), :ones), ParamSpec("$name.beta", (c,), :zeros),
                      ParamSpec("$name.moving_mean", (c,), :zeros; trainable = false),
                      ParamSpec("$name.moving_variance", (c,), :ones; trainable = false)]

function model_spec(cfg::ResNetConfig)
    cfg.shortcut in ("A", "B") || throw(ArgumentError("resnet shortcut must be \"A\" or \"B\", got $(repr(cfg.shortcut))"))
    params = [conv_param("stem.conv", 3, cfg.channels, cfg.width); bn_params("stem.bn", cfg.width)]
    blocks = resnet_blocks(cfg)
    for b in blocks
        append!(params, [conv_param("$(b.name).conv1", 3, b.cin, b.cout); bn_params("$(b.name).bn1", b.cout);
                         conv_param("$(b.name).conv2", 3, b.cout, b.cout); bn_params("$(b.name).bn2", b.cout)])
        if b.stride != 1 && cfg.shortcut == "B"
            append!(params, [conv_param("$(b.name).shortcut.conv", 1, b.cin, b.cout);
                             bn_params("$(b.name).shortcut.bn", b.cout)])
        end
    end
    push!(params, ParamSpec("head.dense.kernel", (blocks[end].cout, cfg.num_classes), :glorot_uniform),
          ParamSpec("head.dense.bias", (cfg.num_classes,), :zeros))
    return ModelSpec("resnet", params)
end

## LSTM sentiment classifier

Base.@kwdef struct LSTMConfig
    vocab_size::Int
    embedding_dim::Int = 125
    units::Int = 100
    maxlen::Int
    num_classes::Int = 2
end

"From a run spec's `model_config`."
LSTMConfig(c::AbstractDict) =
    LSTMConfig(vocab_size = c["vocab_size"], embedding_dim = c["embedding_dim"], units = c["units"],
               maxlen = c["maxlen"], num_classes = c["num_classes"])

"One bias vector per gate block (Keras layout), gate order i, f, g, o."
function model_spec(cfg::LSTMConfig)
    V, E, H, K = cfg.vocab_size, cfg.embedding_dim, cfg.units, cfg.num_classes
    return ModelSpec("lstm", [ParamSpec("embedding.embeddings", (V, E), :uniform; limit = 0.05),
                              ParamSpec("lstm.kernel", (E, 4H), :uniform; limit = 1 / sqrt(H)),
                              ParamSpec("lstm.recurrent_kernel", (H, 4H), :uniform; limit = 1 / sqrt(H)),
                              ParamSpec("lstm.bias", (4H,), :lstm_bias),
                              ParamSpec("head.dense.kernel", (H, K), :glorot_uniform),
                              ParamSpec("head.dense.bias", (K,), :zeros)])
end

## From a run spec

"The config of `model` (\"resnet\" or \"lstm\") from a run spec's `model_config`."
function model_config(model::AbstractString, config::AbstractDict)
    model == "resnet" && return ResNetConfig(config)
    model == "lstm" && return LSTMConfig(config)
    throw(ArgumentError("unknown model $(repr(model)); expected \"resnet\" or \"lstm\""))
end

"""
    model_spec(model, model_config) -> ModelSpec
    model_spec(config::Union{ResNetConfig,LSTMConfig}) -> ModelSpec
"""
model_spec(model::AbstractString, config::AbstractDict) = model_spec(model_config(model, config))

"The spec's model config, checked by building its tensor list; a `RunSpecError` if it does not fit."
function model_config(spec::RunSpec)
    try
        config = model_config(spec.model, spec.model_config)
        model_spec(config)
        return config
    catch e
        e isa Union{KeyError,MethodError,InexactError,ArgumentError} || rethrow()
        throw(RunSpecError("run spec model_config for $(spec.model) is invalid: $(sprint(showerror, e))"))
    end
end

## Initial weights

"""
    initial_weights(spec, seed) -> Dict{String,Array{Float32}}

Every tensor drawn by the documented scheme from one seeded stream in spec order (run
spec `initial_weights: null`: Julia's own generator, so not NumPy's numbers), in Julia's
(reversed) layout.
"""
function initial_weights(spec::ModelSpec, seed::Integer)
    rng = MersenneTwister(seed)
    out = Dict{String,Array{Float32}}()
    for p in spec.params
        dims = julia_size(p)
        out[p.name] = if p.init === :zeros
            zeros(Float32, dims)
        elseif p.init === :ones
            ones(Float32, dims)
        elseif p.init === :lstm_bias
            units = p.shape[1] ÷ 4
            b = zeros(Float32, dims)
            b[units + 1:2units] .= 1  # forget gate opens at start (Jozefowicz et al. 2015)
            b
        else
            limit = p.init === :he_uniform ? sqrt(6 / fans(p)[1]) :
                    p.init === :glorot_uniform ? sqrt(6 / sum(fans(p))) :
                    p.init === :uniform ? p.limit : throw(ArgumentError("unknown init $(p.init) for $(p.name)"))
            Float32.(limit .* (2 .* rand(rng, dims...) .- 1))
        end
    end
    return out
end
