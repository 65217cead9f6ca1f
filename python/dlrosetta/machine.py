"""What the study ran on: CPU, cores, memory, BLAS, runtimes, and the float32 GEMM rate.

Two GEMM measurements: the machine probe (n=2048, best of 5, once per study) describes
the machine, with the rate each study case's own GEMM shapes allow (im2col products of
every ResNet stage, the LSTM's gate projections; `shape_gemm_ceiling`); the launcher's
quick probe (`gemm_probe`: n=1024, best of 3, about 0.1 s) runs just before and just after every training run at the run's threads, on the node
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
    """Best-of-repeats float32 square GEMM rate (2n^3 flops), after one warm-up product."""
    return shape_gemm_rate(n, n, n, repeats)


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


def probe(threads: int, gemm_n: int = 2048, cases: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The machine description; `cases` (name -> {model, config, batch_size}) adds the
    shape-matched GEMM ceiling of each study case."""
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
        "gemm_shapes": {name: {"model": c["model"], **shape_gemm_ceiling(c["model"], c["config"], c["batch_size"],
                                                                          threads)}
                        for name, c in (cases or {}).items()},
    }


def model_gemms(model: str, config: dict[str, Any], batch_size: int) -> list[dict[str, Any]]:
    """The float32 GEMMs of one training step, as im2col/GEMM frameworks run them: per
    convolution or projection its forward product (m x k)(k x n) and the two backward
    ones (weight gradient: m x n x k transposed; input gradient: k x n x m), `count`
    times per step. Framework kernels (direct convolution, Winograd, fused LSTM) may do
    better than these products; they are what a GEMM library allows for these shapes."""
    from dlrosetta.model_spec import LSTM, RESNET, resnet_blocks

    forward = []  # (name, m, n, k, count)
    if model == RESNET:
        hw, c, b = config["image_size"], config["width"], batch_size
        forward.append(("stem conv", c, b * hw * hw, 9 * config["channels"], 1))
        for block in resnet_blocks(config["depth"], config["width"]):
            hw //= block.stride
            forward.append((f"{block.name}.conv1", block.cout, b * hw * hw, 9 * block.cin, 1))
            forward.append((f"{block.name}.conv2", block.cout, b * hw * hw, 9 * block.cout, 1))
        forward.append(("head dense", config["num_classes"], b, c * 4, 1))
    elif model == LSTM:
        g, b, t = 4 * config["units"], batch_size, config["maxlen"]
        forward.append(("lstm input projection", g, b * t, config["embedding_dim"], 1))
        forward.append(("lstm recurrent step", g, b, config["units"], t))
        forward.append(("head dense", config["num_classes"], b, config["units"], 1))
    else:
        raise ValueError(f"unknown model {model!r}")
    gemms = []
    for name, m, n, k, count in forward:
        gemms += [{"name": f"{name} forward", "m": m, "n": n, "k": k, "count": count},
                  {"name": f"{name} weight gradient", "m": m, "n": k, "k": n, "count": count},
                  {"name": f"{name} input gradient", "m": k, "n": n, "k": m, "count": count}]
    return gemms


def shape_gemm_rate(m: int, n: int, k: int, repeats: int = 5) -> float:
    """Best-of-repeats float32 GFLOP/s of one (m x k)(k x n) product, after a warm-up."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * m * n * k / best / 1e9


def shape_gemm_ceiling(model: str, config: dict[str, Any], batch_size: int, threads: int) -> dict[str, Any]:
    """What the model's own GEMM shapes allow at `threads`: each product's measured rate,
    and the step's effective rate if every product ran at its rate (total flops over the
    sum of their times). Read "of GEMM" against this as well as the square rate."""
    from threadpoolctl import threadpool_limits

    gemms, rates = model_gemms(model, config, batch_size), {}
    with threadpool_limits(limits=int(threads), user_api="blas"):
        for g in gemms:
            shape = (g["m"], g["n"], g["k"])
            if shape not in rates:
                rates[shape] = shape_gemm_rate(*shape)
    flops = seconds = 0.0
    for g in gemms:
        g["gflops"] = rates[(g["m"], g["n"], g["k"])]
        f = 2.0 * g["m"] * g["n"] * g["k"] * g["count"]
        flops += f
        seconds += f / (g["gflops"] * 1e9)
    return {"batch_size": batch_size, "threads": threads, "gflops": flops / seconds / 1e9,
            "gemm_gflop_per_step": flops / 1e9, "gemms": gemms}
