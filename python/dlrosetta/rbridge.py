"""The in-process bridge from Python to dlrosetta's R code, through rpy2 (envs/rpy2.txt).

R's bundle reader (r/R/npy.R, in the shared R library r/R) runs inside this Python
process, so what R reads can be held against what NumPy reads, value for value, with
nothing in between.

Only the shared R library runs here: it stays in R. The r-keras stack
(r/stacks/r-keras/run_stack.R) calls Keras through reticulate, and reticulate 1.28
cannot work inside rpy2: it binds to the Python already running in the process (this
one: NumPy 2, no Keras) instead of .venvs/r-keras, and it assumes it holds the GIL,
which rpy2 releases while R runs, so the process aborts at exit (rstudio/reticulate#208,
fixed in reticulate 1.39). The launcher runs the R stack as its own process instead.

Calls: r/R/npy.R.

Twins: none
"""
from __future__ import annotations

import functools
import os

import numpy as np

from dlrosetta.registry import REPO

R_SOURCES = REPO / "r" / "R"


class RUnavailable(RuntimeError):
    """rpy2 or R cannot be loaded here; the message says which and why."""


@functools.lru_cache(maxsize=None)
def r_env():
    """An R environment holding the shared R library, r/R/*.R (R starts on the first call)."""
    # Starting R sets LD_LIBRARY_PATH (R's ldpaths: /usr/lib/R/lib and the system library
    # folder) in this process's environment, and child processes inherit it: another
    # Python started from here would then load the system's libpython instead of its own.
    # The loader read the variable when this process began, so restoring it is safe.
    saved = {k: os.environ.get(k) for k in ("LD_LIBRARY_PATH",)}
    try:
        import rpy2.robjects as ro
    except ImportError as e:
        raise RUnavailable(f"rpy2 is not installed in this environment ({e}); envs/setup.sh installs "
                           f"envs/rpy2.txt where R is present") from e
    except Exception as e:  # rpy2 raises assorted errors when it cannot find or load libR
        raise RUnavailable(f"rpy2 cannot start R: {type(e).__name__}: {e}") from e
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    env = ro.r["new.env"]()
    for path in sorted(R_SOURCES.glob("*.R")):
        ro.r["sys.source"](str(path), envir=env)
    return env


def read_shard_r(manifest_path: str | os.PathLike, name: str, verify: bool = True) -> np.ndarray:
    """One array of an npy bundle as R's reader returns it (checksum verified by R), as
    a C-ordered NumPy array of the bundle's dtype. R indexes its array like NumPy
    (dim = shape), and R's doubles hold float32 values exactly, so the cast is exact."""
    from rpy2.robjects import conversion, default_converter, numpy2ri

    env = r_env()
    x = env["read_bundle"](str(manifest_path), names=name, verify=verify).rx2("arrays").rx2(name)
    dtype = env["npy_dtype"](x)[0]
    with conversion.localconverter(default_converter + numpy2ri.converter) as cv:
        array = cv.rpy2py(x)
    return np.ascontiguousarray(array, dtype=dtype)
