# One thread budget for the whole process (docs/stack-contract.md, "Threads"). Python's
# threads.py sets the environment every stack gets (JULIA_NUM_THREADS among it); this
# file splits the budget between Julia threads and OpenBLAS.
#
# Work runs on Julia threads, each calling single-threaded OpenBLAS on its share, so
# im2col, batch norm and the LSTM cell run in parallel too, not only the GEMMs. When
# Julia has one thread, OpenBLAS gets the whole budget instead. Either way the process
# computes on at most `threads` cores. Layers allocate per-worker scratch when built, so
# set_threads! comes before building a model.
# Twins: python/dlrosetta/threads.py

const WORKERS = Ref(1)
const BLAS_THREADS = Ref(1)  # what set_threads! gave OpenBLAS (Julia 1.5 cannot ask it)

"Give the budget of `n` threads to Julia workers and OpenBLAS; returns the worker count."
function set_threads!(n::Integer)
    n >= 1 || throw(ArgumentError("threads must be >= 1, got $n"))
    WORKERS[] = min(Threads.nthreads(), n)
    BLAS_THREADS[] = WORKERS[] > 1 ? 1 : n
    set_blas_threads!(BLAS_THREADS[])
    return WORKERS[]
end

workers() = WORKERS[]

"The `k`-th of `w` near-equal contiguous parts of 1:n."
part(n::Int, w::Int, k::Int) = (div((k - 1) * n, w) + 1):div(k * n, w)

"""
    parallel(f, n)

Call `f(worker, i)` for every item i in 1:n. Up to `workers()` tasks take items one at a
time from a shared counter; `worker` (1, 2, ...) names the task, for its scratch buffers
only. Callers keep results per item (and sum them in item order), so results do not
depend on which task ran what: runs are reproducible whatever the thread count. Tasks
are not tied to threads, so a thread that finds the items gone also runs a helper task
that never got a core: a busy core delays a parallel region by one item at most, not by
an OS time slice, as a static split (`Threads.@threads`) would.
"""
function parallel(f, n::Int)
    w = min(WORKERS[], n)
    if w <= 1
        for i in 1:n
            f(1, i)
        end
        return nothing
    end
    next = Threads.Atomic{Int}(1)
    function drain(worker)
        while (i = Threads.atomic_add!(next, 1)) <= n
            f(worker, i)
        end
    end
    helpers = [Threads.@spawn(drain(k)) for k in 2:w]
    drain(1)
    foreach(wait, helpers)
    return nothing
end

"How the threads are used, for the measurements' kernel notes."
thread_notes(what::AbstractString) =
    workers() > 1 ? "$(workers()) Julia threads split the $what, single-threaded OpenBLAS in each" :
                    "one Julia thread, OpenBLAS with $(BLAS_THREADS[]) threads"
