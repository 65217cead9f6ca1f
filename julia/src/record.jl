# Result records (docs/record.md; schema python/dlrosetta/schemas/record.schema.json):
# one JSON document per run, every field present, unmeasured ones null.
# Twins: python/dlrosetta/record.py, r/R/record.R.

const SCHEMA_VERSION = "1.0.0"
const RECORD_STATUSES = ("ok", "skipped", "failed")

utc_now() = Dates.format(Dates.now(Dates.UTC), "yyyy-mm-ddTHH:MM:SS") * "+00:00"

Base.@kwdef struct Record
    schema_version::String = SCHEMA_VERSION
    status::String
    reason::Union{Nothing,String} = nothing
    stack::String
    language::String = "julia"
    language_version::Union{Nothing,String} = string(VERSION)
    framework::String = FRAMEWORK
    framework_version::Union{Nothing,String} = nothing
    backend::Union{Nothing,String} = nothing
    model::String
    dataset::String
    hyperparameters::Any
    threads::Int
    seed::Int
    device::String
    host::String = gethostname()
    created_at::String = utc_now()
    shards_sha256::Union{Nothing,String} = nothing
    initial_weights_sha256::Union{Nothing,String} = nothing
    parameter_count::Union{Nothing,Int} = nothing
    train_samples_per_epoch::Union{Nothing,Int} = nothing
    epoch_seconds::Union{Nothing,Vector{Float64}} = nothing
    warmup_epoch_seconds::Union{Nothing,Float64} = nothing
    steady_epoch_seconds::Union{Nothing,Float64} = nothing
    steady_samples_per_second::Union{Nothing,Float64} = nothing
    train_loss_per_epoch::Union{Nothing,Vector{Float64}} = nothing
    final_train_loss::Union{Nothing,Float64} = nothing
    test_accuracy::Union{Nothing,Float64} = nothing
    eval_seconds::Union{Nothing,Float64} = nothing
    startup_seconds::Union{Nothing,Float64} = nothing
    peak_rss_mb::Union{Nothing,Float64} = nothing
    fused_kernel::Union{Nothing,Bool} = nothing
    kernel_notes::Union{Nothing,String} = nothing
    run_seconds::Union{Nothing,Float64} = nothing  # measured by the launcher
end

# What an `ok` record must have measured (the schema's "then" branch, plus startup).
const RECORD_OK_REQUIRED = (:framework_version, :language_version, :shards_sha256, :parameter_count,
                            :train_samples_per_epoch, :epoch_seconds, :warmup_epoch_seconds,
                            :train_loss_per_epoch, :final_train_loss, :test_accuracy, :eval_seconds,
                            :startup_seconds, :peak_rss_mb)

"""
    timing_fields(epoch_seconds, samples_per_epoch)

The derived timing fields: the first epoch (compilation, allocator warm-up) apart from
the steady epochs, whose mean gives seconds per epoch and samples per second.
"""
function timing_fields(epoch_seconds::Vector{Float64}, samples_per_epoch::Int)
    steady = epoch_seconds[2:end]
    steady_mean = isempty(steady) ? nothing : sum(steady) / length(steady)
    return (epoch_seconds = epoch_seconds, warmup_epoch_seconds = epoch_seconds[1],
            steady_epoch_seconds = steady_mean,
            steady_samples_per_second = steady_mean === nothing ? nothing : samples_per_epoch / steady_mean,
            train_samples_per_epoch = samples_per_epoch)
end

function check_record(r::Record)
    r.status in RECORD_STATUSES || throw(ArgumentError("record status must be one of $RECORD_STATUSES, got $(repr(r.status))"))
    if r.status == "ok"
        r.reason === nothing || throw(ArgumentError("an ok record has no reason"))
        missing_fields = [f for f in RECORD_OK_REQUIRED if getfield(r, f) === nothing]
        isempty(missing_fields) || throw(ArgumentError("an ok record lacks $missing_fields"))
    else
        (r.reason === nothing || isempty(r.reason)) && throw(ArgumentError("a $(r.status) record needs a reason"))
    end
    return r
end

"The record as an ordered NamedTuple: every field, in the order of docs/record.md."
record_fields(r::Record) = NamedTuple{fieldnames(Record)}(Tuple(getfield(r, f) for f in fieldnames(Record)))

write_record(path::AbstractString, r::Record) = write_json_atomic(path, record_fields(check_record(r)))
