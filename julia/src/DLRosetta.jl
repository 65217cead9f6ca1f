# dlrosetta's shared Julia library: what every Julia stack reads and writes (run spec,
# shards, epoch order, weights bundles, measurements) and the model spec they all build
# from, on the standard library only. No model code: that lives in each stack's folder
# (julia/stacks/<id>/). Its counterparts are the Python package's shared modules and
# the R package, file for file by concept name.
# Twins: python/dlrosetta, r/R
module DLRosetta

using Random, SHA

include("json.jl")
include("npy.jl")
include("shards.jl")
include("runspec.jl")
include("model_spec.jl")
include("weights.jl")
include("order.jl")
include("stopwatch.jl")
include("measurements.jl")
include("kernel_timer.jl")

# Julia 1.5 caches the type inference done while precompiling, but only for a package's
# own methods: a stack's precompile statements cannot cover these, so what every run
# calls before training is inferred here (about 0.8 s off each run's start-up, measured).
precompile(read_runspec, (String,))
foreach(f -> precompile(f, (RunSpec,)), (epochs, batch_size, optimizer_config))
precompile(model_config, (RunSpec,))
precompile(model_spec, (ResNetConfig,))
precompile(model_spec, (LSTMConfig,))
precompile(parameter_count, (ModelSpec,))
precompile(julia_size, (ParamSpec,))
precompile(initial_weights, (ModelSpec, Int))
precompile(read_initial_weights, (String, ModelSpec))
precompile(write_trained_weights, (String, RunSpec, ModelSpec, Dict{String,Array{Float32}}, Int))
precompile(read_shards, (String,))
precompile(read_order, (String, Int, Int))
precompile(epoch_batches, (Matrix{Int32}, Int, Int))
precompile(profile_blocks, (Matrix{Int32}, Int, Int))
precompile(process_age_seconds, (Int,))
precompile(record_kernel!, (String, String, UInt64, UInt64))
precompile(kernel_timer!, (Bool,))
precompile(reset_kernel_timer!, ())

export JSONError, read_json, write_json_atomic,
       BundleError, read_npy, write_npy, read_bundle, write_bundle, sha256_file,
       Shards, read_shards,
       RunSpec, RunSpecError, read_runspec,
       ParamSpec, ModelSpec, ResNetConfig, LSTMConfig, model_config, model_spec, resnet_blocks,
       julia_size, parameter_count, initial_weights,
       read_initial_weights, write_trained_weights,
       read_order, epoch_batches, profile_blocks,
       stopwatch, peak_rss_mb, process_age_seconds,
       write_measurements,
       KERNEL_CATEGORIES, @timed_kernel, timed_kernel, kernel_timer!, kernel_timer_on, reset_kernel_timer!,
       kernel_events, write_kernel_trace

end
