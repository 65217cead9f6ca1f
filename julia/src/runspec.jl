# The run spec: the one JSON document a stack entry point receives
# (docs/stack-contract.md, "The run spec"; schemas/runspec.schema.json).
# Twins: python/dlrosetta/runspec.py, r/R/runspec.R

const SPEC_VERSION = 3  # 2: `measurements` replaced `record`; 3: `trained_weights`, inference mode
const CHECKS = (nothing, "step_losses", "profile", "inference")
const DEVICES = ("cpu", "gpu", "auto")

"The run spec is unreadable or breaks the contract; the message names the file."
struct RunSpecError <: Exception
    msg::String
end
Base.showerror(io::IO, e::RunSpecError) = print(io, "RunSpecError: ", e.msg)

Base.@kwdef struct RunSpec
    spec_version::Int = SPEC_VERSION
    stack::String
    model::String
    dataset::String
    model_config::Dict{String,Any}
    training::Dict{String,Any}
    shards::String
    order::String
    initial_weights::Union{Nothing,String}
    init_seed::Int
    threads::Int
    seed::Int
    device::String
    measurements::String
    check::Union{Nothing,String} = nothing
    check_steps::Int = 0
    trained_weights::Union{Nothing,String} = nothing     # training: the folder of the final weights bundle
    inference::Union{Nothing,Dict{String,Any}} = nothing  # inference mode: what to time and evaluate
end

const RUNSPEC_REQUIRED = (:stack, :model, :dataset, :model_config, :training, :shards, :order,
                          :initial_weights, :init_seed, :threads, :seed, :device, :measurements)

"""
    read_runspec(path) -> RunSpec

The run spec at `path`, checked against the contract; any problem is a `RunSpecError`
naming the file.
"""
function read_runspec(path::AbstractString)
    data = try
        read_json(path)
    catch e
        (e isa JSONError || e isa SystemError) || rethrow()
        throw(RunSpecError("cannot read run spec $path: $(sprint(showerror, e))"))
    end
    data isa Dict{String,Any} || throw(RunSpecError("run spec $path is not a JSON object"))
    # The version first: a version 1 spec would otherwise fail on its `record` key.
    version = get(data, "spec_version", SPEC_VERSION)
    version == SPEC_VERSION ||
        throw(RunSpecError("run spec $path has version $(repr(version)); this reader knows $SPEC_VERSION"))
    known = string.(fieldnames(RunSpec))
    unknown = sort!(setdiff(collect(keys(data)), known))
    isempty(unknown) || throw(RunSpecError("run spec $path has unknown keys $unknown"))
    missing_keys = [String(k) for k in RUNSPEC_REQUIRED if !haskey(data, String(k))]
    isempty(missing_keys) || throw(RunSpecError("run spec $path lacks keys $missing_keys"))
    spec = try
        RunSpec(; (Symbol(k) => v for (k, v) in data)...)
    catch e
        e isa MethodError || e isa InexactError || rethrow()
        throw(RunSpecError("run spec $path has a value of the wrong type: $(sprint(showerror, e))"))
    end
    bad(what) = throw(RunSpecError("run spec $path: $what"))
    spec.check in CHECKS ||
        bad("check must be null, $(join(repr.(CHECKS[2:end]), ", ", " or ")), got $(repr(spec.check))")
    spec.check == "profile" && spec.check_steps < 1 &&
        bad("asks for a profile of check_steps = $(spec.check_steps) steps; need >= 1")
    (spec.check == "inference") == (spec.inference !== nothing) ||
        bad("`inference` is given exactly when check is \"inference\" (check $(repr(spec.check)))")
    spec.inference === nothing || check_inference(bad, spec.inference)
    spec.device in DEVICES || bad("device must be cpu, gpu or auto, got $(repr(spec.device))")
    spec.threads >= 1 || bad("threads must be >= 1, got $(spec.threads)")
    return spec
end

"The keys of the run spec's `inference` (docs/stack-contract.md, \"Inference mode\")."
const INFERENCE_KEYS = ("batch_sizes", "warmup_calls", "min_calls", "max_calls", "min_seconds", "evaluate", "logits",
                        "onnx")

"Call `bad(what)` unless `inference` has exactly its keys, and a logits folder when it evaluates bundles."
function check_inference(bad, inference::Dict{String,Any})
    unknown = sort!(setdiff(collect(keys(inference)), INFERENCE_KEYS))
    lacking = [k for k in INFERENCE_KEYS if !haskey(inference, k)]
    isempty(unknown) && isempty(lacking) || bad("`inference` has unknown keys $unknown, lacks keys $lacking")
    isempty(inference["evaluate"]) || inference["logits"] isa String ||
        bad("`inference` evaluates weights but names no `logits` folder")
end

epochs(spec::RunSpec) = Int(spec.training["epochs"])
batch_size(spec::RunSpec) = Int(spec.training["batch_size"])
optimizer_config(spec::RunSpec) = spec.training["optimizer"]::Dict{String,Any}
