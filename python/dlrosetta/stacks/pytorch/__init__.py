"""The PyTorch stack: `python -m dlrosetta.stacks.pytorch run-spec.json` (docs/stack-contract.md).

Twins: python/dlrosetta/stacks/tensorflow/, python/dlrosetta/stacks/keras/.
"""
from __future__ import annotations

from typing import Optional


def configure(threads: int) -> Optional[str]:
    """Give torch's intra- and inter-op pools `threads` threads (before any parallel
    work) and return the first CUDA device's name, None without one. Also used by
    Keras's torch backend."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
