# The stack's run: read the spec, shards, order and weights (DLRosetta); train epoch by
# epoch in the order file's batch order, timing every epoch (the first includes Julia's
# compilation), and evaluate after each, outside the epoch's timing; keep the trained
# weights when asked; write the raw measurements, or in check mode the step losses. In
# inference mode: time inference calls, compute other weights' test logits, write them.
# Statistics over the epochs and the calls are the launcher's.
# Twins: python/dlrosetta/stacks/train.py, r/stacks/r-keras/R/train.R

"""
Copy the samples (last axis: images or token sequences) at 0-based indices `idx` into
the model's batch buffer, and their labels `y` into its labels.
"""
function gather!(m::Model, x::Array, idx::AbstractVector{<:Integer})
    buffer = batch_input(m)
    len = length(x) ÷ size(x, ndims(x))
    @timed_kernel "data" "batch_gather" for (k, i) in enumerate(idx)
        copyto!(buffer, (k - 1) * len + 1, x, i * len + 1, len)
    end
    return m
end

function gather!(m::Model, x::Array, y::Vector{Int32}, idx::AbstractVector{<:Integer})
    for (k, i) in enumerate(idx)
        m.labels[k] = y[i + 1]
    end
    return gather!(m, x, idx)
end

"One optimizer step on the batch at 0-based training indices `idx`; returns its loss."
function train_step!(m::Model, opt::Optimizer, x::Array, y::Vector{Int32}, idx::AbstractVector{<:Integer})
    n = length(idx)
    gather!(m, x, y, idx)
    loss = softmax_xent!(m.dlogits, predict!(m, n, true), m.labels, n)
    backward!(m, n)
    update!(opt, m.params.flat, m.params.grad)
    return loss
end

"One epoch: a step per batch (columns of `batches`); returns the mean loss."
function train!(m::Model, opt::Optimizer, x::Array, y::Vector{Int32}, batches::AbstractMatrix{<:Integer})
    total = 0.0
    for k in 1:size(batches, 2)
        total += train_step!(m, opt, x, y, view(batches, :, k))
    end
    return total / size(batches, 2)
end

"""
One inference call: the forward pass in inference mode (BN moving statistics) of the
first `n` samples of the batch buffer, their logits as a new Array (classes, n).
"""
predict(m::Model, n::Integer) = predict!(m, n, false)[:, 1:n]

"""
Logits (classes, N) of every sample of `x` (last axis), by inference calls on batches of
the model's batch size. Between epochs it leaves training as it was: BN's moving
statistics are only read, and the batch buffer it fills is refilled by the next step.
"""
function predict(m::Model, x::Array)
    N = size(x, ndims(x))
    logits = similar(m.logits, size(m.logits, 1), N)
    for start in 0:m.batch:N - 1
        idx = start:min(start + m.batch, N) - 1
        logits[:, idx .+ 1] = predict(gather!(m, x, idx), length(idx))
    end
    return logits
end

"Accuracy on (x, y): the share of samples whose largest logit (`predict`) is at their label."
evaluate(m::Model, x::Array, y::Vector{Int32}) = count_correct(predict(m, x), y, length(y)) / length(y)

"A model for batches of up to `batch` samples (weights still to be loaded)."
build_model(cfg::ResNetConfig, batch::Int, ::Type{T} = Float32) where {T} = ResNet{T}(cfg, batch)
build_model(cfg::LSTMConfig, batch::Int, ::Type{T} = Float32) where {T} = LSTMNet{T}(cfg, batch)

"Check that the data fits the model's config, naming the shards file otherwise."
function check_data(m::Model, s::Shards, path::AbstractString)
    problem = data_problem(m, s)
    problem === nothing || throw(BundleError("shards $path do not fit this $(m.config): $problem"))
    K = m.config.num_classes
    for (split, y) in (("y_train", s.y_train), ("y_test", s.y_test))
        all(l -> 0 <= l < K, y) || throw(BundleError("shards $path: $split has labels outside 0..$(K - 1)"))
    end
end

function data_problem(m::ResNet, s::Shards)
    c = m.config
    s.x_train isa Array{Float32,4} && size(s.x_train)[1:3] == (c.channels, c.image_size, c.image_size) &&
        return nothing
    return "x_train must be float32 [N, $(c.image_size), $(c.image_size), $(c.channels)] (NHWC), " *
           "got $(eltype(s.x_train)) $(reverse(size(s.x_train)))"
end

function data_problem(m::LSTMNet, s::Shards)
    c = m.config
    (s.x_train isa Matrix{Int32} && size(s.x_train, 1) == c.maxlen) ||
        return "x_train must be int32 [N, $(c.maxlen)], got $(eltype(s.x_train)) $(reverse(size(s.x_train)))"
    for (split, x) in (("x_train", s.x_train), ("x_test", s.x_test))
        all(t -> 0 <= t < c.vocab_size, x) || return "$split has tokens outside 0..$(c.vocab_size - 1)"
    end
    return nothing
end

framework_version() = "JuliaNative.jl $(PACKAGE_VERSION), $(blas_description())"
all_kernel_notes(m::Model) = "$(kernel_notes(m)); sgemm: $(blas_description()) on $(cpu_description())"

"`x` with `digits` decimals, as C's `%.Nf` writes it (without @printf: see train_epochs)."
function decimals(x::Real, digits::Integer)
    (isfinite(x) && abs(x) < 1e14) || return string(x)
    n = round(Int, abs(x) * 10^digits)
    s = lpad(string(n), digits + 1, '0')
    sign = x < 0 && n > 0 ? "-" : ""
    return digits == 0 ? sign * s : sign * s[1:end - digits] * "." * s[end - digits + 1:end]
end

"""
The progress line printed after each epoch (docs/stack-contract.md, "The epoch line";
`dlrosetta status` reads it), as Python's epoch_line in python/dlrosetta/stacks/train.py.
Time left: the epochs left times the mean epoch plus the mean evaluation so far, each
over the epochs after the first once there are two.
"""
function epoch_line(stack::AbstractString, epochs::Integer, epoch_seconds::Vector{Float64},
                    eval_seconds::Vector{Float64}, loss::Real, accuracy::Real, samples::Integer)
    per(x) = length(x) > 1 ? sum(x[2:end]) / (length(x) - 1) : x[1]
    done, seconds = length(epoch_seconds), epoch_seconds[end]
    left = (epochs - done) * (per(epoch_seconds) + per(eval_seconds))
    rate = seconds > 0 ? samples / seconds : Inf
    return "[$stack] epoch $done/$epochs: $(decimals(seconds, 2)) s, loss $(decimals(loss, 4)), " *
           "$(decimals(rate, 0)) samples/s, test accuracy $(decimals(accuracy, 4)), " *
           "run time left ~$(decimals(left, 0)) s"
end

"""
    train_epochs(train_epoch, evaluate, epochs, stack; startup_pid = getpid(), samples = 0) -> NamedTuple

For each 0-based epoch: `train_epoch(epoch)` returns the epoch's mean loss, timed whole;
then `evaluate()` returns the test accuracy, timed on its own, outside the epoch's time.
Returns the start-up seconds (the age of `startup_pid` when the loop starts) and the
per-epoch measurements under their schema names. `samples` (an epoch's training samples)
gives the epoch line's samples/s.
"""
function train_epochs(train_epoch, evaluate, epochs::Integer, stack::AbstractString;
                      startup_pid::Integer = getpid(), samples::Integer = 0)
    # Measured here, not by the caller: compiling this loop (about 2 s on Julia 1.5) is
    # start-up too, and would otherwise fall between start-up and the first epoch.
    startup = process_age_seconds(startup_pid)
    epoch_seconds, losses, accuracies, eval_seconds = Float64[], Float64[], Float64[], Float64[]
    for epoch in 0:epochs - 1
        loss, seconds = stopwatch(() -> train_epoch(epoch))
        accuracy, evaluation = stopwatch(evaluate)
        push!(epoch_seconds, seconds)
        push!(losses, loss)
        push!(accuracies, accuracy)
        push!(eval_seconds, evaluation)
        # String interpolation, not @printf: Julia 1.5 spends about a second compiling a @printf
        # call for each new argument type, and this loop is compiled in every run.
        println(stderr, epoch_line(stack, epochs, epoch_seconds, eval_seconds, loss, accuracy, samples))
        flush(stderr)
    end
    return (startup_seconds = startup, epoch_seconds = epoch_seconds, train_loss_per_epoch = losses,
            test_accuracy_per_epoch = accuracies, eval_seconds_per_epoch = eval_seconds)
end

"""
    run_stack(spec; startup_pid = getpid())

Everything a stack does (docs/stack-contract.md, "What a stack does"). `startup_pid` is
the process whose age counts as start-up (the entry script's parent when it re-executed
itself).
"""
function run_stack(spec::RunSpec; startup_pid::Integer = getpid())
    # As the Python stacks do: "gpu" without one fails.
    spec.device == "gpu" && throw(RunSpecError("the run spec asks for a GPU, but julia-native runs on the CPU only"))
    set_threads!(spec.threads)
    config = model_config(spec)
    mspec = model_spec(config)
    batch = batch_size(spec)
    model = build_model(config, batch)
    weights = spec.initial_weights === nothing ? initial_weights(mspec, spec.init_seed) :
                                                 read_initial_weights(spec.initial_weights, mspec)
    load_weights!(model.params, weights)
    shards = read_shards(spec.shards)
    check_data(model, shards, spec.shards)
    if spec.check == "inference"   # no epoch order; called dynamically, as profile_run below
        Base.invokelatest(inference_run, model, weights, shards, spec, startup_pid)
        return nothing
    end
    order = read_order(spec.order, spec.check === nothing ? epochs(spec) : 1, length(shards.y_train))
    opt = optimizer(optimizer_config(spec), parameter_count(model.params), Float32)

    if spec.check == "step_losses"
        batches = epoch_batches(order, 0, batch)
        steps = min(spec.check_steps, size(batches, 2))
        losses = [train_step!(model, opt, shards.x_train, shards.y_train, view(batches, :, k)) for k in 1:steps]
        write_json_atomic(spec.measurements, (check = spec.check, stack = spec.stack, losses = losses,
                                              parameter_count = parameter_count(model.params)))
        return nothing
    end
    if spec.check == "profile"
        # Called dynamically: inferring this path too while precompiling `main` (JuliaNative.jl)
        # left Julia 1.5 caching worse code for the layers (im2col! allocating per window).
        Base.invokelatest(profile_run, model, opt, shards, profile_blocks(order, batch, spec.check_steps), spec)
        return nothing
    end

    train_epoch(epoch) = train!(model, opt, shards.x_train, shards.y_train, epoch_batches(order, epoch, batch))
    per_epoch = train_epochs(train_epoch, () -> evaluate(model, shards.x_test, shards.y_test), epochs(spec), spec.stack;
                             startup_pid = startup_pid, samples = length(epoch_batches(order, 0, batch)))
    spec.trained_weights === nothing ||
        write_trained_weights(spec.trained_weights, spec, mspec, canonical_weights(model.params),
                              parameter_count(model.params))

    write_measurements(spec.measurements; status = "ok", stack = spec.stack, model = spec.model,
                       dataset = spec.dataset, framework_version = framework_version(), device = "cpu",
                       parameter_count = parameter_count(model.params), per_epoch...,
                       peak_rss_mb = peak_rss_mb(), fused_kernel = false,
                       kernel_notes = all_kernel_notes(model))
    return nothing
end

const PROFILER = "DLRosetta kernel timer (Julia $(VERSION))"

"""
    profile_run(model, opt, shards, blocks, spec)

Profile mode (docs/stack-contract.md): the epoch function `train!` over the warm-up block
(compiles, not timed), over the unprofiled block (timed), then over the profiled block
with the kernel timer on (timed). Writes the timer's trace next to the spec's
`measurements` path, and the profile output to it.
"""
function profile_run(model::Model, opt::Optimizer, shards::Shards, blocks::NamedTuple, spec::RunSpec)
    x, y = shards.x_train, shards.y_train
    train!(model, opt, x, y, blocks.warm_up)
    _, unprofiled = stopwatch(() -> train!(model, opt, x, y, blocks.unprofiled))
    reset_kernel_timer!()
    kernel_timer!(true)
    _, profiled = try
        stopwatch(() -> train!(model, opt, x, y, blocks.profiled))
    finally
        kernel_timer!(false)
    end
    trace = splitext(basename(spec.measurements))[1] * ".trace.json"
    write_kernel_trace(joinpath(dirname(spec.measurements), trace))
    write_json_atomic(spec.measurements, (check = "profile", stack = spec.stack, model = spec.model,
                                          steps = size(blocks.profiled, 2), profiler = PROFILER,
                                          unprofiled_seconds = unprofiled, profiled_seconds = profiled, trace = trace,
                                          parameter_count = parameter_count(model.params),
                                          framework_version = framework_version()))
    return nothing
end

"""
    time_calls(call, untimed, min_calls, max_calls, min_seconds) -> seconds of each timed call

`untimed` calls of `call()` (compilation, allocation), then calls each on its own clock
until at least `min_calls` calls and `min_seconds` seconds (summed over the calls), or
`max_calls` calls.
"""
function time_calls(call, untimed::Integer, min_calls::Integer, max_calls::Integer, min_seconds::Real)
    foreach(_ -> call(), 1:untimed)
    seconds = Float64[]
    while length(seconds) < max_calls && (length(seconds) < min_calls || sum(seconds) < min_seconds)
        push!(seconds, stopwatch(call)[2])
    end
    return seconds
end

"Why there is no ONNX file: the `onnx_export` entry's reason."
const ONNX_UNSUPPORTED = "this stack (plain Julia on the standard library) has no ONNX exporter: ONNX.jl, " *
    "like every Julia package that writes ONNX, comes from Julia's package registry, which is out of reach " *
    "here, and the standard library has no ONNX or protobuf writer. Its trained weights reach the ONNX " *
    "runtimes through its canonical weights bundle, which any other stack loads and exports."

"""
    inference_run(model, weights, shards, spec, startup_pid)

Inference mode (docs/stack-contract.md, "Inference mode"): for each batch size B, a model
for B holding `weights` takes the test samples k mod n_test (k = 0..B-1) into its batch
buffer once, then `predict` calls are timed (`time_calls`); `model` computes the test
logits of each bundle to evaluate, written as one logits bundle. There is no ONNX
export (ONNX_UNSUPPORTED). Writes the inference document to the spec's `measurements`.
"""
function inference_run(model::Model, weights::AbstractDict, shards::Shards, spec::RunSpec, startup_pid::Integer)
    inference = spec.inference
    startup = process_age_seconds(startup_pid)
    n_test, untimed = length(shards.y_test), Int(inference["warmup_calls"])
    batches = map(Int.(inference["batch_sizes"])) do B
        timed = build_model(model.config, B)
        load_weights!(timed.params, weights)
        gather!(timed, shards.x_test, (0:B - 1) .% n_test)
        seconds = time_calls(() -> predict(timed, B), untimed, inference["min_calls"], inference["max_calls"],
                             inference["min_seconds"])
        (batch_size = B, warmup_calls = untimed, call_seconds = seconds)
    end
    logits = nothing
    if !isempty(inference["evaluate"])
        evaluated = map(inference["evaluate"]) do entry
            load_weights!(model.params, read_initial_weights(entry["weights"], model.params.spec))
            entry["stack"] => predict(model, shards.x_test)
        end
        logits = write_bundle(inference["logits"], "logits", evaluated,
                              (stack = spec.stack, model = spec.model, dataset = spec.dataset))
    end
    onnx_export = inference["onnx"] === nothing ? nothing : (status = "unsupported", reason = ONNX_UNSUPPORTED)
    write_json_atomic(spec.measurements, (check = spec.check, stack = spec.stack, model = spec.model,
                                          dataset = spec.dataset, language_version = string(VERSION),
                                          framework_version = framework_version(), device = "cpu",
                                          parameter_count = parameter_count(model.params), startup_seconds = startup,
                                          peak_rss_mb = peak_rss_mb(), batches = batches, logits = logits,
                                          onnx_export = onnx_export))
    return nothing
end

const USAGE = "usage: julia --project=julia/stacks/julia-native --startup-file=no " *
              "julia/stacks/julia-native/run_stack.jl RUN_SPEC.json"

"""
    main(args) -> exit code

The entry point's work (run_stack.jl). Bad input (spec, shards, weights, order) ends
with its message and exit code 1; the launcher then writes a `failed` record holding it.
"""
function main(args::Vector{String}; startup_pid::Integer = getpid())
    if length(args) != 1
        println(stderr, USAGE)
        return 2
    end
    try
        run_stack(read_runspec(args[1]); startup_pid = startup_pid)
    catch e
        e isa Union{BundleError,RunSpecError,JSONError} || rethrow()
        println(stderr, "julia-native: ", sprint(showerror, e))
        return 1
    end
    return 0
end
