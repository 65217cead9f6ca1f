"""One thread budget for every pool of every stack (docs/stack-contract.md, "Threads").

The launcher puts these variables into each stack's environment, whatever its language;
Python stacks also call their framework's threading API (dlrosetta.stacks.train).
"""
from __future__ import annotations


def thread_env(threads: int) -> dict[str, str]:
    n = str(int(threads))
    return {
        "OMP_NUM_THREADS": n,            # OpenMP: oneDNN, torch CPU kernels, OpenBLAS-OpenMP
        "OPENBLAS_NUM_THREADS": n,       # NumPy/R/Julia OpenBLAS
        "MKL_NUM_THREADS": n,
        "BLIS_NUM_THREADS": n,
        "VECLIB_MAXIMUM_THREADS": n,
        "NUMEXPR_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,     # TensorFlow (read at start-up)
        "TF_NUM_INTEROP_THREADS": n,
        "NPROC": n,                      # XLA's CPU thread pool (jaxlib reads it; no XLA_FLAGS needed)
        "JULIA_NUM_THREADS": n,          # Julia tasks (BLAS threads are set in julia/src)
    }
