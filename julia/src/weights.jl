# Weights bundles: every tensor of a model in the canonical layout, as an npy bundle of
# kind `weights` (docs/stack-contract.md). Initial weights let all stacks start from the
# very same numbers; a training run's trained weights are the same format, so any stack
# loads any other stack's trained model with the same reader.
# Twins: python/dlrosetta/weights.py, r/R/weights.R

"""
    read_initial_weights(manifest_path, spec::ModelSpec) -> Dict{String,Array}

The weights bundle in Julia's (reversed) layout, checked to hold exactly the model's
tensors with their shapes.
"""
function read_initial_weights(manifest_path::AbstractString, spec::ModelSpec)
    arrays, _ = read_bundle(manifest_path, "weights")
    check_fit(arrays, spec, "weights $manifest_path")
    return arrays
end

"Throw a `BundleError` naming `what` unless `arrays` hold exactly the tensors of `spec`, in Julia's layout."
function check_fit(arrays::AbstractDict, spec::ModelSpec, what::AbstractString)
    expected = Dict(p.name => julia_size(p) for p in spec.params)
    got = Dict(k => size(v) for (k, v) in arrays)
    if got != expected
        missing_names = sort!(setdiff(collect(keys(expected)), keys(got)))
        extra = sort!(setdiff(collect(keys(got)), keys(expected)))
        wrong = sort!([k for k in intersect(keys(got), keys(expected)) if got[k] != expected[k]])
        throw(BundleError("$what do not fit this $(spec.model): missing $missing_names, " *
                          "unexpected $extra, wrong shape $wrong"))
    end
end

"""
    write_trained_weights(directory, spec::RunSpec, model_spec::ModelSpec, weights, parameter_count) -> manifest path

A training run's final `weights` (name => array in Julia's layout: every tensor of
`model_spec`, BN moving statistics included, checked) as the Float32 weights bundle in
`directory`, in the model spec's order; its meta says what trained them
(docs/stack-contract.md, "Trained weights").
"""
function write_trained_weights(directory::AbstractString, spec::RunSpec, model_spec::ModelSpec, weights::AbstractDict,
                               parameter_count::Integer)
    check_fit(weights, model_spec, "the trained weights of $(spec.stack)")
    meta = (model = model_spec.model, model_config = spec.model_config, seed = spec.init_seed,
            parameter_count = parameter_count, stack = spec.stack, dataset = spec.dataset, epochs = epochs(spec),
            trained = true)
    arrays = [p.name => convert(Array{Float32}, weights[p.name]) for p in model_spec.params]
    return write_bundle(directory, "weights", arrays, meta)
end
