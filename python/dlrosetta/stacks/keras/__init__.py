"""The Keras 3 stacks: `KERAS_BACKEND=<tensorflow|jax|torch> python -m dlrosetta.stacks.keras
run-spec.json` (docs/stack-contract.md). Twins: r/stacks/r-keras/R/keras.R, python/dlrosetta/stacks/pytorch/,
python/dlrosetta/stacks/tensorflow/.
"""


def layer_name(canonical_prefix: str) -> str:
    """The Keras layer holding the canonical tensors `<canonical_prefix>.<variable>`
    (dlrosetta.model_spec): "." becomes "_", since Keras's torch backend rejects dots."""
    return canonical_prefix.replace(".", "_")
