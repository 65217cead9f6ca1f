# A model's tensors as this stack stores them: trainable tensors are windows onto one
# flat vector (and their gradients onto another), so the optimizer is one loop over all
# parameters; BN moving statistics are separate state. Frameworks keep their own
# parameter containers (torch.nn.Module.parameters, keras.Model.weights).
# Twins: none

struct Parameters{T<:AbstractFloat}
    spec::ModelSpec
    flat::Vector{T}
    grad::Vector{T}
    arrays::Dict{String,Array{T}}
    grads::Dict{String,Array{T}}
end

"Zeroed storage for every tensor of `spec`, in Julia's (reversed) layout."
function Parameters{T}(spec::ModelSpec) where {T}
    n = parameter_count(spec)
    flat, grad = zeros(T, n), zeros(T, n)
    arrays, grads = Dict{String,Array{T}}(), Dict{String,Array{T}}()
    offset = 0
    for p in spec.params
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
    return Parameters{T}(spec, flat, grad, arrays, grads)
end

DLRosetta.parameter_count(p::Parameters) = length(p.flat)

"""
Copy canonical tensors (already in Julia's layout, see DLRosetta's npy.jl) into the
model's storage: the one way weights enter a model (initial, trained or another stack's).
"""
function load_weights!(p::Parameters, weights::AbstractDict)
    for spec in p.spec.params
        copyto!(p.arrays[spec.name], weights[spec.name])
    end
    return p
end

"""
The inverse of `load_weights!`: every tensor of the spec as it is now, BN moving
statistics included, as Float32 copies in Julia's layout of the canonical one.
"""
canonical_weights(p::Parameters) = Dict{String,Array{Float32}}(s.name => Array{Float32}(p.arrays[s.name])
                                                               for s in p.spec.params)
