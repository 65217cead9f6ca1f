"""What the study ran on: CPU, cores, memory, BLAS, runtimes, and the float32 GEMM rate.

Two GEMM measurements: the machine probe (n=2048, best of 5, once per study) describes
the machine; the launcher's quick probe (`gemm_probe`: n=1024, best of 3, about 0.1 s)
runs just before and just after every training run at the run's threads, on the node
that runs it. The quick probes are the ceiling each run's throughput is compared with
("of GEMM") and show whether the machine's speed drifted during the study
(docs/statistics.md, "Noise").
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            return round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def blas_info() -> str:
    import numpy as np  # here, so the launcher can name the CPU without loading NumPy

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except (TypeError, AttributeError):
        return "unknown"


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-repeats float32 GEMM rate (2n^3 flops), after one warm-up product."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def gemm_probe(threads: int, n: int = 1024, repeats: int = 3) -> float:
    """The quick float32 GEMM rate with NumPy's BLAS limited to `threads` (threadpoolctl,
    so it works after NumPy has loaded its BLAS)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads), user_api="blas"):
        return gemm_gflops(n, repeats)


def _version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def probe(threads: int, gemm_n: int = 2048) -> dict[str, Any]:
    import numpy as np

    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "threads": threads,
        "gemm_n": gemm_n,
        "gemm_float32_gflops": gemm_probe(threads, gemm_n, 5),
        "r": _version(["Rscript", "--version"]),
        "julia": _version(["julia", "--version"]),
    }
