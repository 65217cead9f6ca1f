"""The Python stacks (pytorch, tensorflow, keras-tensorflow, keras-jax, keras-torch), each
run in its own environment exactly as the launcher runs it, on tiny inputs:

- check mode: the framework counts the canonical number of parameters, and the first
  losses of the same batch from the same initial weights agree across every stack
  present (1e-4 relative: the same forward pass), the losses after optimiser steps
  closely (the same gradients and optimiser);
- a two-epoch run leaves a valid `ok` record;
- a stack whose framework is missing from its environment writes a `skipped` record.

A stack whose environment is not built is skipped, naming it.

Twins: tests/test_r_stack.py, julia/test/ (the other languages' stacks).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess

import numpy as np
import pytest
from conftest import TINY_LSTM, TINY_RESNET, TRAINING, tiny_image_shards, tiny_token_shards

from dlrosetta.launch import RuntimeMissing, default_venvs_dir, launch, resolve_command
from dlrosetta.models.spec import model_spec
from dlrosetta.npybundle import sha256_file
from dlrosetta.order import write_epoch_order
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS
from dlrosetta.runspec import RunSpec
from dlrosetta.shards import read_shards
from dlrosetta.threads import thread_env
from dlrosetta.weights import write_initial_weights

PYTHON_STACKS = [s.id for s in STACKS.values() if s.language == "python"]
VENVS = default_venvs_dir()
TIMEOUT_S = 600
N_TRAIN = 48
CHECK_STEPS = 3
# Check mode runs shortcut B (the projection path), training the default shortcut A.
CONFIGS = {("resnet", "B"): {**TINY_RESNET, "shortcut": "B"}, ("resnet", "A"): TINY_RESNET,
           ("lstm", None): TINY_LSTM}


@pytest.fixture(scope="module")
def make_spec(tmp_path_factory):
    """Factory: (model, variant, stack, **overrides) -> RunSpec; the inputs of each
    (model, variant) are written once, so every stack reads the very same files."""
    root = tmp_path_factory.mktemp("python-stacks")

    def make(model: str, variant, stack: str, **overrides) -> RunSpec:
        cfg = CONFIGS[model, variant]
        d = root / f"{model}{variant or ''}"
        if not d.exists():
            (tiny_image_shards if model == "resnet" else tiny_token_shards)(d / "shards", n_train=N_TRAIN)
            write_epoch_order(d / "order.npy", N_TRAIN, TRAINING[model]["epochs"], seed=1)
            write_initial_weights(d / "weights", model_spec(model, cfg), 5, cfg)
        fields = dict(stack=stack, model=model, dataset=f"tiny-{model}", model_config=cfg,
                      training=TRAINING[model], shards=str(d / "shards" / "manifest.json"),
                      order=str(d / "order.npy"), initial_weights=str(d / "weights" / "manifest.json"),
                      init_seed=5, threads=1, seed=0, device="cpu",
                      record=str(d / stack / f"{overrides.get('check') or 'train'}.partial.json"))
        return RunSpec(**{**fields, **overrides})

    return make


def command_or_skip(stack_id: str):
    try:
        return resolve_command(STACKS[stack_id], VENVS)
    except RuntimeMissing as e:
        pytest.skip(f"{stack_id} cannot run here: {e}")


@pytest.fixture(scope="module")
def check_run(make_spec):
    """(model, stack) -> the stack's check-mode output, run once per module."""
    done = {}

    def run(model: str, stack_id: str) -> dict:
        if (model, stack_id) not in done:
            command, extra_env = command_or_skip(stack_id)
            spec = make_spec(model, "B" if model == "resnet" else None, stack_id,
                             check="step_losses", check_steps=CHECK_STEPS)
            spec_path = os.path.join(os.path.dirname(spec.record), "spec.json")
            spec.write(spec_path)
            out = subprocess.run([*command, spec_path], env={**os.environ, **thread_env(spec.threads), **extra_env},
                                 capture_output=True, text=True, timeout=TIMEOUT_S)
            assert out.returncode == 0, f"{stack_id} check mode failed:\n{out.stderr[-3000:]}"
            done[model, stack_id] = {"spec": spec, **json.loads(open(spec.record).read())}
        return done[model, stack_id]

    return run


@pytest.mark.parametrize("stack_id", PYTHON_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_check_mode_counts_the_canonical_parameters(check_run, model, stack_id):
    check = check_run(model, stack_id)
    assert check["check"] == "step_losses" and check["stack"] == stack_id
    assert check["parameter_count"] == model_spec(model, check["spec"].model_config).parameter_count
    assert len(check["losses"]) == CHECK_STEPS and all(np.isfinite(check["losses"]))
    assert len(set(check["losses"])) == CHECK_STEPS  # every step saw new weights or a new batch


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_losses_agree_across_python_stacks(check_run, model):
    losses = {}
    for stack_id in PYTHON_STACKS:
        try:
            losses[stack_id] = np.array(check_run(model, stack_id)["losses"])
        except pytest.skip.Exception:
            continue
    if len(losses) < 2:
        pytest.skip(f"fewer than two Python stacks can run here ({sorted(losses)})")
    reference_id, reference = next(iter(losses.items()))
    for stack_id, stack_losses in losses.items():
        # The same forward pass of the same weights on the same batch.
        assert stack_losses[0] == pytest.approx(reference[0], rel=1e-4), (stack_id, reference_id)
        # The same gradients and optimiser (float32 sums in different orders).
        assert stack_losses[1:] == pytest.approx(reference[1:], rel=1e-3), (stack_id, reference_id)


@pytest.mark.parametrize("stack_id", PYTHON_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_write_a_valid_ok_record(make_spec, tmp_path, model, stack_id):
    command_or_skip(stack_id)
    spec = make_spec(model, "A" if model == "resnet" else None, stack_id, threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "stack.log", VENVS,
                    timeout_s=TIMEOUT_S)
    assert record.status == "ok", record.reason
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert Record.read(tmp_path / "record.json") == record
    stack = STACKS[stack_id]
    assert (record.language, record.framework, record.backend) == ("python", stack.framework, stack.backend)
    assert record.parameter_count == model_spec(model, spec.model_config).parameter_count
    assert record.threads == 2 and record.device == "cpu"
    assert len(record.epoch_seconds) == len(record.train_loss_per_epoch) == 2
    assert record.train_samples_per_epoch == N_TRAIN // spec.batch_size * spec.batch_size
    assert record.shards_sha256 == read_shards(spec.shards).manifest_sha256
    assert record.initial_weights_sha256 == sha256_file(spec.initial_weights)
    assert all(np.isfinite(record.train_loss_per_epoch)) and 0 <= record.test_accuracy <= 1
    assert isinstance(record.fused_kernel, bool) and record.kernel_notes


def test_missing_framework_gives_a_skipped_record(make_spec, tmp_path):
    """The pytorch stack run by the tensorflow environment's Python, which has no torch."""
    command_or_skip("tensorflow")
    stack = dataclasses.replace(STACKS["pytorch"], env="tensorflow")
    spec = make_spec("lstm", None, "pytorch")
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "stack.log", VENVS,
                    timeout_s=TIMEOUT_S, stack=stack)
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert record.status == "skipped", record.reason
    assert "torch" in record.reason and "tensorflow" in record.reason  # the module and the environment
    assert record.parameter_count is None and record.epoch_seconds is None
