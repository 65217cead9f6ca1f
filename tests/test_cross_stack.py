"""The product's core promise, checked across every stack of every language: from the
same initial-weights file, on the same batches in the same order, each stack counts the
canonical number of parameters, computes the first loss of an independent NumPy float64
forward pass (1e-4 relative: the same model), and follows the same losses over the first
optimiser steps (the same gradients and optimiser). Stacks whose runtime is missing are
skipped, naming it (docs/stack-contract.md, "Check mode")."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import TINY_RESNET, tiny_run_factory
from dlrosetta.model_spec import model_spec
from dlrosetta.registry import STACKS
from dlrosetta.weights import write_initial_weights
from stackcheck import first_batch_loss, run_check

CHECK_STEPS = 3
VARIANTS = ["resnet-A", "resnet-B", "lstm"]


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    """(variant, stack) -> (spec, check output), run once; all stacks read the same files."""
    make = tiny_run_factory(tmp_path_factory.mktemp("cross-stack"))
    weights_b = tmp_path_factory.mktemp("weights-B")
    cfg_b = {**TINY_RESNET, "shortcut": "B"}
    write_initial_weights(weights_b, model_spec("resnet", cfg_b), 5, cfg_b)
    overrides = {"resnet-A": {}, "lstm": {},
                 "resnet-B": {"model_config": cfg_b, "initial_weights": str(weights_b / "manifest.json")}}
    done = {}

    def get(variant: str, stack: str):
        if (variant, stack) not in done:
            model = variant.split("-")[0]
            spec = make(model, stack, check="step_losses", check_steps=CHECK_STEPS, **overrides[variant])
            spec = dataclasses.replace(spec, measurements=spec.measurements.replace(f"{model}-{stack}", f"{variant}-{stack}"))
            done[variant, stack] = spec, run_check(spec)
        return done[variant, stack]

    return get


@pytest.mark.parametrize("stack", list(STACKS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_same_parameters_and_first_loss_as_the_numpy_reference(checks, variant, stack):
    spec, check = checks(variant, stack)
    assert check["parameter_count"] == model_spec(spec.model, spec.model_config).parameter_count
    assert len(check["losses"]) == CHECK_STEPS and all(np.isfinite(check["losses"]))
    assert check["losses"][0] == pytest.approx(first_batch_loss(spec), rel=1e-4)
    assert len(set(check["losses"])) == CHECK_STEPS  # each step saw new weights and a new batch


@pytest.mark.parametrize("variant", VARIANTS)
def test_losses_follow_each_other_over_the_first_steps(checks, variant):
    losses = {}
    for stack in STACKS:
        try:
            losses[stack] = checks(variant, stack)[1]["losses"]
        except pytest.skip.Exception:
            continue
    if len(losses) < 2:
        pytest.skip(f"fewer than two stacks can run here ({sorted(losses)})")
    reference = next(iter(losses.values()))
    for stack, stack_losses in losses.items():
        # float32 sums in different orders; Keras's SGD form differs in rounding only.
        assert stack_losses == pytest.approx(reference, rel=1e-3), stack
