# Process measurements every language takes the same way (docs/record.md): peak_rss_mb
# is VmHWM from /proc/self/status; startup is the process's age from /proc/<pid>/stat, so
# interpreter start, package loading and compilation before the first epoch all count;
# the stopwatch times epochs on the monotonic clock.
# Twins: python/dlrosetta/stopwatch.py, r/R/stopwatch.R

"Peak resident memory of this process in MiB (the kernel's high-water mark)."
function peak_rss_mb()
    for line in eachline("/proc/self/status")
        startswith(line, "VmHWM:") && return parse(Int, split(line)[2]) / 1024
    end
    return Sys.maxrss() / 2^20
end

const SC_CLK_TCK = 2  # sysconf name on Linux

"Seconds since process `pid` started (Linux); 0 where /proc cannot tell."
function process_age_seconds(pid::Integer = getpid())
    try
        stat = read("/proc/$pid/stat", String)
        # Fields after "pid (comm)"; comm may hold spaces and parentheses.
        fields = split(stat[findlast(')', stat) + 1:end])
        start_ticks = parse(Int, fields[20])  # field 22 of proc(5)
        uptime = parse(Float64, split(read("/proc/uptime", String))[1])
        ticks = ccall(:sysconf, Clong, (Cint,), SC_CLK_TCK)
        return max(0.0, uptime - start_ticks / ticks)
    catch e
        e isa Union{SystemError,ArgumentError,BoundsError} || rethrow()
        return 0.0
    end
end

"Call `f()`; return its value and the wall seconds it took (monotonic clock)."
function stopwatch(f)
    t0 = time_ns()
    value = f()
    return value, (time_ns() - t0) / 1e9
end
