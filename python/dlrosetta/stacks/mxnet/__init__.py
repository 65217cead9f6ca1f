"""The MXNet Gluon stack: `python -m dlrosetta.stacks.mxnet run-spec.json` (docs/stack-contract.md).

This module does not import mxnet: configure() must run before it is imported, and the
R twin (r-mxnet) calls it through reticulate before its own `import mxnet`.

Twins: python/dlrosetta/stacks/pytorch/__init__.py, r/stacks/r-mxnet/R/mxnet.R.
"""
from __future__ import annotations

import os
import sys


def thread_variables(threads: int) -> dict[str, str]:
    """MXNet's thread settings for `threads` cores. MXNet has no thread setter in its
    Python API: libgomp reads OMP_NUM_THREADS when libmxnet loads (every CPU operator,
    oneDNN included, runs on that OpenMP pool), and the engine starts
    MXNET_CPU_WORKER_NTHREADS workers that each run one operator at a time. One worker
    (MXNet's default, and its performance guide's advice for training) runs the
    operators one after another, each on all `threads` OpenMP threads; more workers
    would run independent operators at once, each with all the threads, oversubscribing
    the cores."""
    return {"OMP_NUM_THREADS": str(int(threads)), "MXNET_CPU_WORKER_NTHREADS": "1"}


#: Profile mode runs MXNet without bulk execution in training. Bulking runs a segment of
#: a graph (up to 15 operators, forward or backward) as one engine operation, which the
#: profiler records as one event named by its operators' list (cut at 128 characters):
#: no time could be told to an operator. (MXNET_EXEC_BULK_EXEC_TRAIN=0 leaves some
#: segments bulked.) All of profile mode's blocks run unbulked, so its two timings
#: compare like with like; a training run keeps MXNet's default.
PROFILE_VARIABLES = {"MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_FWD": "0",
                     "MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_BWD": "0"}


def configure(threads: int, profile: bool = False) -> None:
    """Set thread_variables(threads), and PROFILE_VARIABLES for profile mode, before
    mxnet is imported. Once it is (the launcher has set the same OMP_NUM_THREADS), only
    check them: a different value would be silently ignored, so it is an error."""
    wanted = {**thread_variables(threads), **(PROFILE_VARIABLES if profile else {})}
    if "mxnet" not in sys.modules:
        os.environ.update(wanted)
        return
    wrong = {k: os.environ.get(k) for k, v in wanted.items() if os.environ.get(k) != v}
    if wrong:
        raise RuntimeError(f"mxnet was imported with {wrong}; this run needs {wanted} before the import")
