# Initial-weights files: an npy bundle holding every tensor of a model in the canonical
# layout, so that all stacks can start from the very same numbers (docs/stack-contract.md).
# Twins: python/dlrosetta/weights.py, r/R/weights.R

"""
    read_initial_weights(manifest_path, spec::ModelSpec) -> Dict{String,Array}

The weights bundle in Julia's (reversed) layout, checked to hold exactly the model's
tensors with their shapes.
"""
function read_initial_weights(manifest_path::AbstractString, spec::ModelSpec)
    arrays, _ = read_bundle(manifest_path, "weights")
    expected = Dict(p.name => julia_size(p) for p in spec.params)
    got = Dict(k => size(v) for (k, v) in arrays)
    if got != expected
        missing_names = sort!(setdiff(collect(keys(expected)), keys(got)))
        extra = sort!(setdiff(collect(keys(got)), keys(expected)))
        wrong = sort!([k for k in intersect(keys(got), keys(expected)) if got[k] != expected[k]])
        throw(BundleError("initial weights $manifest_path do not fit this $(spec.model): missing $missing_names, " *
                          "unexpected $extra, wrong shape $wrong"))
    end
    return arrays
end
