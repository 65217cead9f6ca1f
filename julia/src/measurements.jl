# What a stack measured in one run, raw: the document every stack writes to the run
# spec's `measurements` path (schemas/measurements.schema.json). No statistic is computed
# here; the launcher derives the record from these values.
# Twins: python/dlrosetta/measurements.py, r/R/measurements.R

const MEASUREMENTS_VERSION = 2
const MEASUREMENTS_STATUSES = ("ok", "skipped")
# What an ok run must have measured, then what it may leave null; both in schema order.
const MEASURED = (:language_version, :framework_version, :device, :parameter_count, :epoch_seconds,
                  :train_loss_per_epoch, :test_accuracy_per_epoch, :eval_seconds_per_epoch, :startup_seconds,
                  :peak_rss_mb)
const MEASURED_OPTIONAL = (:fused_kernel, :kernel_notes)

"""
    measurements(; status, stack, model, dataset, reason = nothing,
                 language_version = string(VERSION), measured...) -> NamedTuple

The measurements document in schema order, checked as the schema checks it (the
launcher validates again): an ok run has no reason and every value of `MEASURED`; a
skipped run has a reason. Values left `nothing` are left out.
"""
function measurements(; status::AbstractString, stack::AbstractString, model::AbstractString,
                      dataset::AbstractString, reason::Union{Nothing,AbstractString} = nothing,
                      language_version = string(VERSION), measured...)
    status in MEASUREMENTS_STATUSES ||
        throw(ArgumentError("measurements status must be one of $MEASUREMENTS_STATUSES, got $(repr(status))"))
    if status == "ok"
        reason === nothing || throw(ArgumentError("an ok run has no reason"))
    elseif reason === nothing || isempty(reason)
        throw(ArgumentError("a $status run needs a reason"))
    end
    unknown = setdiff(keys(measured), (MEASURED..., MEASURED_OPTIONAL...))
    isempty(unknown) || throw(ArgumentError("unknown measurements $(collect(unknown))"))
    values = merge((language_version = language_version,), measured)
    lacking = status == "ok" ? [f for f in MEASURED if get(values, f, nothing) === nothing] : Symbol[]
    isempty(lacking) || throw(ArgumentError("an ok run must measure $lacking"))
    names = Tuple(f for f in (MEASURED..., MEASURED_OPTIONAL...) if get(values, f, nothing) !== nothing)
    return merge((measurements_version = MEASUREMENTS_VERSION, status = status, reason = reason,
                  stack = stack, model = model, dataset = dataset),
                 NamedTuple{names}(Tuple(values[f] for f in names)))
end

"Write `measurements(; fields...)` to `path` (atomically); returns `path`."
write_measurements(path::AbstractString; fields...) = write_json_atomic(path, measurements(; fields...))
