# The kernel timer of profile mode (docs/stack-contract.md; the launcher's classifier,
# python/dlrosetta/profile.py): a Julia stack wraps each layer's forward and backward
# pass, loss, optimiser update and batch gathering in `@timed_kernel category name expr`.
# Off (the default), that costs one load and one branch; on, it records (name, category,
# start, duration, thread) per call, and `write_kernel_trace` writes them as Chrome
# trace-event JSON, each event naming its canonical category in "cat".
# Twins: python/dlrosetta/profile.py

"The canonical categories (python/dlrosetta/profile.py); `overhead` is what no event covers."
const KERNEL_CATEGORIES = ("conv_gemm", "normalisation", "elementwise", "recurrent", "loss", "optimiser", "data")

struct KernelEvent
    name::String
    category::String
    start_ns::UInt64
    duration_ns::UInt64
    thread::Int
end

const KERNEL_TIMER_ON = Ref(false)
const KERNEL_TIMER_ORIGIN = Ref(UInt64(0))
# One event list per Julia thread, so that tasks on several threads record without a lock.
const KERNEL_EVENTS = Vector{KernelEvent}[]

kernel_timer_on() = KERNEL_TIMER_ON[]

"""
    kernel_timer!(on::Bool)

Switch the timer on or off (from the main task, outside parallel regions). Switching it on
makes sure every Julia thread has its event list; events recorded before are kept.
"""
function kernel_timer!(on::Bool)
    while length(KERNEL_EVENTS) < Threads.nthreads()
        push!(KERNEL_EVENTS, sizehint!(KernelEvent[], 4096))
    end
    KERNEL_TIMER_ORIGIN[] == 0 && (KERNEL_TIMER_ORIGIN[] = time_ns())
    KERNEL_TIMER_ON[] = on
    return on
end

"Forget every recorded event; the trace's time origin becomes now."
function reset_kernel_timer!()
    foreach(empty!, KERNEL_EVENTS)
    KERNEL_TIMER_ORIGIN[] = time_ns()
    return nothing
end

function check_category(category::AbstractString)
    category in KERNEL_CATEGORIES ||
        throw(ArgumentError("kernel category must be one of $KERNEL_CATEGORIES, got $(repr(category))"))
    return category
end

"Record one event that ran from `start` to `stop` (time_ns) on this thread."
@noinline function record_kernel!(name::String, category::String, start::UInt64, stop::UInt64)
    push!(KERNEL_EVENTS[Threads.threadid()], KernelEvent(name, category, start, stop - start, Threads.threadid()))
    return nothing
end

"""
    @timed_kernel category name expr

Evaluate `expr` and return its value; while the timer is on, also record it as one event
`name` of `category` (a string literal, checked against `KERNEL_CATEGORIES` when the code
is compiled, so a misspelt category cannot reach a trace). `expr` is evaluated once,
whether the timer is on or not; it must not `return` from the enclosing function.
"""
macro timed_kernel(category, name, expr)
    category isa String || throw(ArgumentError("@timed_kernel needs a literal category, got $category"))
    check_category(category)
    quote
        local on = KERNEL_TIMER_ON[]
        local start = on ? time_ns() : UInt64(0)
        local value = $(esc(expr))
        on && record_kernel!($(esc(name)), $category, start, time_ns())
        value
    end
end

"Function form of `@timed_kernel`: `timed_kernel(f, category, name)` calls `f()`."
function timed_kernel(f, category::String, name::String)
    KERNEL_TIMER_ON[] || return f()
    check_category(category)
    start = time_ns()
    value = f()
    record_kernel!(name, category, start, time_ns())
    return value
end

"Every recorded event, of all threads, in start order."
kernel_events() = sort!(reduce(vcat, KERNEL_EVENTS; init = KernelEvent[]); by = e -> (e.start_ns, e.thread))

"""
    write_kernel_trace(path; pid = getpid()) -> path

The recorded events as a Chrome trace-event JSON list of complete events
{"name", "cat", "ph": "X", "ts", "dur", "pid", "tid"}, times in microseconds from the
last `reset_kernel_timer!`, written atomically.
"""
function write_kernel_trace(path::AbstractString; pid::Integer = getpid())
    origin = KERNEL_TIMER_ORIGIN[]
    events = [(name = e.name, cat = e.category, ph = "X", ts = (Int64(e.start_ns) - Int64(origin)) / 1e3,
               dur = e.duration_ns / 1e3, pid = pid, tid = e.thread) for e in kernel_events()]
    return write_json_atomic(path, events)
end
