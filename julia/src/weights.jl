# Model tensors: their canonical specification (names, shapes, initialisers), storage,
# the initial-weights bundle, and drawing by the documented scheme.
# Twins: python/dlrosetta/models/spec.py (source of truth) + weights.py, r/R/weights.R.

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

"Julia's dimensions of a canonical tensor: the canonical shape reversed (see npy.jl)."
julia_size(p::ParamSpec) = Tuple(reverse(p.shape))

parameter_count(specs::Vector{ParamSpec}) = sum(prod(p.shape) for p in specs if p.trainable)

function fans(p::ParamSpec)
    if length(p.shape) == 4
        kh, kw, cin, cout = p.shape
        return kh * kw * cin, kh * kw * cout
    end
    return p.shape[1], p.shape[end]
end

"""
Every tensor of a model. Trainable tensors are windows onto one flat vector (and their
gradients onto another), so the optimiser is one loop over all parameters; BN moving
statistics are separate state.
"""
struct Parameters{T<:AbstractFloat}
    specs::Vector{ParamSpec}
    flat::Vector{T}
    grad::Vector{T}
    arrays::Dict{String,Array{T}}
    grads::Dict{String,Array{T}}
end

function Parameters{T}(specs::Vector{ParamSpec}) where {T}
    n = parameter_count(specs)
    flat, grad = zeros(T, n), zeros(T, n)
    arrays, grads = Dict{String,Array{T}}(), Dict{String,Array{T}}()
    offset = 0
    for p in specs
        dims = julia_size(p)
        if p.trainable
            # Windows share the flat vectors' memory; the Parameters object holds those
            # vectors, and the model holds it, for as long as any layer uses a window.
            arrays[p.name] = unsafe_wrap(Array, pointer(flat, offset + 1), dims)
            grads[p.name] = unsafe_wrap(Array, pointer(grad, offset + 1), dims)
            offset += prod(dims)
        else
            arrays[p.name] = zeros(T, dims)
        end
    end
    return Parameters{T}(specs, flat, grad, arrays, grads)
end

parameter_count(p::Parameters) = length(p.flat)

"""
    draw_weights(specs, seed) -> Dict{String,Array{Float32}}

Every tensor drawn by the documented scheme from one seeded stream in spec order
(run spec `initial_weights: null`: this stack's own generator, so not NumPy's numbers).
"""
function draw_weights(specs::Vector{ParamSpec}, seed::Integer)
    rng = MersenneTwister(seed)
    out = Dict{String,Array{Float32}}()
    for p in specs
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

"""
    read_initial_weights(manifest_path, specs) -> Dict{String,Array}

The weights bundle, checked to hold exactly the model's tensors with their shapes.
"""
function read_initial_weights(manifest_path::AbstractString, specs::Vector{ParamSpec})
    arrays, _ = read_bundle(manifest_path, "weights")
    expected = Dict(p.name => julia_size(p) for p in specs)
    got = Dict(k => size(v) for (k, v) in arrays)
    if got != expected
        missing_names = sort!(setdiff(collect(keys(expected)), keys(got)))
        extra = sort!(setdiff(collect(keys(got)), keys(expected)))
        wrong = sort!([k for k in intersect(keys(got), keys(expected)) if got[k] != expected[k]])
        throw(BundleError("initial weights $manifest_path do not fit this model: missing $missing_names, " *
                          "unexpected $extra, wrong shape $wrong"))
    end
    return arrays
end

"Copy canonical tensors (already in Julia's layout, see npy.jl) into the model's storage."
function load_weights!(p::Parameters, weights::AbstractDict)
    for spec in p.specs
        copyto!(p.arrays[spec.name], weights[spec.name])
    end
    return p
end
