"""The JAX stack (Flax linen + optax): `python -m dlrosetta.stacks.jax run-spec.json`
(docs/stack-contract.md). Twins: python/dlrosetta/stacks/pytorch/, python/dlrosetta/stacks/keras/.
"""
from __future__ import annotations

import os
from typing import Optional


def configure(threads: int) -> Optional[str]:
    """Size XLA's CPU thread pool to `threads` and return the first accelerator's name
    (None: CPU only). XLA's CPU client sizes its pool from NPROC (else the CPU affinity
    mask) when it starts, at the first jax.devices() below; no XLA flag sets it. The
    launcher exports NPROC too; setting it here keeps a direct run honest."""
    os.environ["NPROC"] = str(threads)
    import jax

    accelerators = [d for d in jax.devices() if d.platform != "cpu"]
    return accelerators[0].device_kind if accelerators else None
