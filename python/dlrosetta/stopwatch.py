"""Process measurements every language takes the same way (docs/record.md).

peak_rss_mb is VmHWM from /proc/self/status (the kernel's high-water mark of resident
memory); startup_seconds is the process's age from /proc/self/stat, so interpreter
start and imports are counted too. time_calls times inference calls, for the stacks'
inference mode and the ONNX runtimes alike. Twins: r/R/stopwatch.R, julia/src/stopwatch.jl.
"""
from __future__ import annotations

import os
import resource
import time
from typing import Any, Callable


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def process_age_seconds() -> float:
    """Seconds since this process started (Linux); 0 where /proc is unavailable."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), counted after "pid (comm)"
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Stopwatch:
    """Wall-clock seconds with the highest-resolution monotonic clock."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def time_calls(call: Callable[[Any], Any], inputs: Any, warmup_calls: int, min_calls: int, max_calls: int,
               min_seconds: float) -> list[float]:
    """Untimed warm-up calls, then timed calls, each on its own clock, until at least
    min_calls calls and min_seconds seconds (summed over the calls), or max_calls calls.
    A call is call(inputs) to its host array: nothing else is inside the clock."""
    for _ in range(warmup_calls):
        call(inputs)
    seconds: list[float] = []
    while len(seconds) < max_calls and (len(seconds) < min_calls or sum(seconds) < min_seconds):
        start = time.perf_counter()
        call(inputs)
        seconds.append(time.perf_counter() - start)
    return seconds
