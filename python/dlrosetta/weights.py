"""Initial-weights files: an npy bundle holding every tensor of a model, canonical layout.

Every stack accepts one (run spec key `initial_weights`), so all stacks can start from
the very same numbers (docs/stack-contract.md). Names and shapes come from
dlrosetta.model_spec; a file that does not match the model is rejected by name.

Twins: r/R/weights.R, julia/src/weights.jl.
"""
from __future__ import annotations

import os

import numpy as np

from dlrosetta.model_spec import ModelSpec, initial_weights
from dlrosetta.npy import BundleError, read_bundle, write_bundle


def write_initial_weights(directory: str | os.PathLike, spec: ModelSpec, seed: int,
                          model_config: dict):
    weights = initial_weights(spec, seed)
    meta = {"model": spec.model, "model_config": model_config, "seed": seed,
            "parameter_count": spec.parameter_count}
    return write_bundle(directory, "weights", weights, meta)


def read_initial_weights(manifest_path: str | os.PathLike, spec: ModelSpec) -> dict[str, np.ndarray]:
    arrays, manifest = read_bundle(manifest_path, "weights")
    expected = {p.name: p.shape for p in spec.params}
    got = {k: tuple(v.shape) for k, v in arrays.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise BundleError(f"initial weights {manifest_path} do not fit this {spec.model}: "
                          f"missing {missing}, unexpected {extra}, wrong shape {wrong}")
    return arrays
