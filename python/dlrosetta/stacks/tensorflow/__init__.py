"""The native TensorFlow stack: `python -m dlrosetta.stacks.tensorflow run-spec.json`
(docs/stack-contract.md). Twins: python/dlrosetta/stacks/pytorch/, python/dlrosetta/stacks/keras/.
"""
from __future__ import annotations

from typing import Optional


def configure(threads: int) -> Optional[str]:
    """Give TensorFlow's intra- and inter-op pools `threads` threads (fixed when its
    context starts: before any op) and return the first GPU's name, None without one.
    Also used by Keras's tensorflow backend."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) if gpus else None
