"""Weights files: an npy bundle holding every tensor of a model, canonical layout.

Every stack accepts one (run spec key `initial_weights`), so all stacks can start from
the very same numbers (docs/stack-contract.md); a training run writes its final weights
in the same format (`trained_weights`), so any stack loads any other's trained model.
Names and shapes come from dlrosetta.model_spec; a file that does not match the model is
rejected by name.

Twins: r/R/weights.R, julia/src/weights.jl.
"""
from __future__ import annotations

import os

import numpy as np

from dlrosetta.model_spec import ModelSpec, initial_weights
from dlrosetta.npy import BundleError, read_bundle, write_bundle
from dlrosetta.runspec import RunSpec


def write_initial_weights(directory: str | os.PathLike, spec: ModelSpec, seed: int,
                          model_config: dict):
    weights = initial_weights(spec, seed)
    meta = {"model": spec.model, "model_config": model_config, "seed": seed,
            "parameter_count": spec.parameter_count}
    return write_bundle(directory, "weights", weights, meta)


def write_trained_weights(directory: str | os.PathLike, spec: RunSpec, model: ModelSpec,
                          weights: dict[str, np.ndarray], parameter_count: int):
    """A training run's final weights (docs/stack-contract.md, "Trained weights"): every
    tensor of the model, spec order, float32. Returns the manifest path."""
    check_fit(weights, model, f"the trained weights of {spec.stack}")
    arrays = {p.name: np.asarray(weights[p.name], np.float32) for p in model.params}
    meta = {"model": model.model, "model_config": dict(spec.model_config), "seed": spec.init_seed,
            "parameter_count": int(parameter_count), "stack": spec.stack, "dataset": spec.dataset,
            "epochs": spec.epochs, "trained": True}
    return write_bundle(directory, "weights", arrays, meta)


def check_fit(arrays: dict[str, np.ndarray], spec: ModelSpec, what: str) -> None:
    """Raise BundleError, naming `what`, unless arrays hold exactly the model's tensors."""
    expected = {p.name: p.shape for p in spec.params}
    got = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise BundleError(f"{what} do not fit this {spec.model}: "
                          f"missing {missing}, unexpected {extra}, wrong shape {wrong}")


def read_initial_weights(manifest_path: str | os.PathLike, spec: ModelSpec) -> dict[str, np.ndarray]:
    arrays, _ = read_bundle(manifest_path, "weights")
    check_fit(arrays, spec, f"weights {manifest_path}")
    return arrays
