"""Framework-neutral model definitions: canonical parameter layout, init scheme, counts."""
from dlrosetta.models.spec import (
    ModelSpec,
    ParamSpec,
    lstm_spec,
    model_spec,
    resnet_spec,
)

__all__ = ["ModelSpec", "ParamSpec", "lstm_spec", "model_spec", "resnet_spec"]
