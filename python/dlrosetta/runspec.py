"""The run spec: the one JSON document a stack entry point receives (docs/stack-contract.md).

Every language reads the same file: `<interpreter> <entry point> <run-spec.json>`.

Schema: schemas/runspec.schema.json. Twins: r/R/runspec.R, julia/src/runspec.jl.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

SPEC_VERSION = 3  # 2: `measurements` replaced `record`; 3: `trained_weights`, inference mode
CHECKS = (None, "step_losses", "profile", "inference")


@dataclass(frozen=True)
class RunSpec:
    stack: str
    model: str
    dataset: str
    model_config: Mapping[str, Any]
    training: Mapping[str, Any]
    shards: str
    order: str
    initial_weights: Optional[str]
    init_seed: int
    threads: int
    seed: int
    device: str
    measurements: str
    check: Optional[str] = None
    check_steps: int = 0
    #: Training: the folder that receives the final weights bundle (or None: not kept).
    trained_weights: Optional[str] = None
    #: Inference mode: batch sizes and call counts to time, weights to evaluate, ONNX path.
    inference: Optional[Mapping[str, Any]] = None
    spec_version: int = SPEC_VERSION

    def __post_init__(self):
        if self.spec_version != SPEC_VERSION:
            raise ValueError(f"run spec version {self.spec_version} is not supported (expected {SPEC_VERSION})")
        if self.check not in CHECKS:
            raise ValueError(f"run spec check must be one of {CHECKS}, got {self.check!r}")
        if (self.check == "inference") != (self.inference is not None):
            raise ValueError("run spec `inference` is given exactly when check is \"inference\"")
        if self.device not in ("cpu", "gpu", "auto"):
            raise ValueError(f"run spec device must be cpu, gpu or auto, got {self.device!r}")

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return {"model": dict(self.model_config), "training": dict(self.training)}

    @property
    def epochs(self) -> int:
        return int(self.training["epochs"])

    @property
    def batch_size(self) -> int:
        return int(self.training["batch_size"])

    @property
    def optimizer(self) -> Mapping[str, Any]:
        return self.training["optimizer"]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def write(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike) -> "RunSpec":
        data = json.loads(Path(path).read_text())
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"run spec {path} has unknown keys {unknown}")
        return cls(**data)
