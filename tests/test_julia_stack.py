"""The julia-native stack (julia/bin/run_stack.jl) against Python, run as the launcher runs
it: Julia reads every shard byte for byte as NumPy does; check mode's first loss equals
an independent NumPy float64 forward pass of the same weights on the same batch, and
its step losses follow the PyTorch stack's; a two-epoch run on two threads leaves a
valid ok record. Julia's own unit tests: julia/test/runtests.jl.

Twins: tests/test_r_stack.py (whose NumPy reference forward passes are shared here).
"""
import dataclasses
import hashlib
import json
import os
import subprocess

import numpy as np
import pytest

from dlrosetta.launch import RuntimeMissing, default_venvs_dir, launch, resolve_command
from dlrosetta.models.spec import model_spec
from dlrosetta.npybundle import sha256_file
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS
from dlrosetta.shards import read_shards
from dlrosetta.threads import thread_env
from dlrosetta.weights import write_initial_weights
from test_r_stack import first_batch_loss

STACK = STACKS["julia-native"]
VENVS = default_venvs_dir()
TIMEOUT_S = 600
CHECK_STEPS = 3


@pytest.fixture(scope="module")
def julia_command():
    """The stack's command line and environment, resolved exactly as the launcher does."""
    try:
        return resolve_command(STACK, VENVS)
    except RuntimeMissing as e:
        pytest.skip(f"julia-native cannot run here: {e}")


def run_check(command, extra_env, spec, tmp_path, name):
    """Run a stack in check mode; returns its check document."""
    spec_path = tmp_path / f"{name}.json"
    spec.write(spec_path)
    env = {**os.environ, **thread_env(spec.threads), **extra_env}
    out = subprocess.run([*command, str(spec_path)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(open(spec.record).read())


def test_julia_reads_shards_and_order_as_numpy_does(julia_command, tiny_run):
    """The bytes behind each Julia array hash like NumPy's C-order bytes, and indexing
    the reversed axes gives NumPy's elements."""
    command, extra_env = julia_command
    for model in ("resnet", "lstm"):
        spec = tiny_run(model, stack="julia-native")
        script = f"""
            using DLRosetta, SHA
            s = DLRosetta.read_shards({json.dumps(spec.shards)})
            order = DLRosetta.read_npy({json.dumps(spec.order)})
            for (name, a) in (("x_train", s.x_train), ("y_train", s.y_train), ("x_test", s.x_test),
                              ("y_test", s.y_test), ("order", order))
                println(name, " ", bytes2hex(sha256(reinterpret(UInt8, vec(a)))), " ", join(size(a), ","))
            end
            println("element ", repr(Float64(s.x_train[(2:ndims(s.x_train) + 1)...])))
        """
        julia = command[:3]  # interpreter, --project, --startup-file
        out = subprocess.run([*julia, "-e", script], env={**os.environ, **extra_env},
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        shards = read_shards(spec.shards)
        arrays = {"x_train": shards.x_train, "y_train": shards.y_train, "x_test": shards.x_test,
                  "y_test": shards.y_test, "order": np.load(spec.order)}
        for name, a in arrays.items():
            digest, shape = lines[name].split()
            assert digest == hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(), name
            assert tuple(int(d) for d in shape.split(",")) == a.shape[::-1], name
        # Julia's x[2, 3, ..., k+1] (1-based, reversed axes) is NumPy's x[k, ..., 2, 1].
        x = shards.x_train
        assert float(lines["element"]) == float(x[tuple(range(x.ndim, 0, -1))])


@pytest.mark.parametrize("model,shortcut", [("resnet", "A"), ("resnet", "B"), ("lstm", None)])
def test_check_mode_first_loss_is_the_reference_forward_pass(julia_command, tiny_run, tmp_path, model, shortcut):
    command, extra_env = julia_command
    overrides = {}
    if shortcut:
        cfg = {**tiny_run(model).model_config, "shortcut": shortcut}
        weights = write_initial_weights(tmp_path / f"weights-{shortcut}", model_spec(model, cfg), 5, cfg)
        overrides = {"model_config": cfg, "initial_weights": str(weights)}
    spec = tiny_run(model, stack="julia-native", check="step_losses", check_steps=CHECK_STEPS, threads=2,
                    **overrides)
    check = run_check(command, extra_env, spec, tmp_path, "julia")
    assert check["check"] == "step_losses" and check["stack"] == "julia-native"
    assert len(check["losses"]) == CHECK_STEPS
    assert check["parameter_count"] == model_spec(model, spec.model_config).parameter_count
    assert check["losses"][0] == pytest.approx(first_batch_loss(spec), rel=1e-4)
    assert check["losses"][1] != check["losses"][0]  # the first step changed the weights


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_step_losses_follow_pytorch(julia_command, tiny_run, tmp_path, model):
    """Same weights, batches and optimiser: the first loss agrees to 1e-4 and the losses
    after one and two updates closely (same gradients, SGD momentum / Adam)."""
    command, extra_env = julia_command
    try:
        torch_command, torch_env = resolve_command(STACKS["pytorch"], VENVS)
    except RuntimeMissing as e:
        pytest.skip(f"the pytorch stack cannot run here: {e}")
    spec = tiny_run(model, stack="julia-native", check="step_losses", check_steps=CHECK_STEPS, threads=2)
    julia = run_check(command, extra_env, spec, tmp_path, "julia")
    torch_spec = dataclasses.replace(spec, stack="pytorch", record=str(tmp_path / "torch-check.json"))
    torch = run_check(torch_command, torch_env, torch_spec, tmp_path, "torch")
    assert julia["parameter_count"] == torch["parameter_count"]
    assert julia["losses"][0] == pytest.approx(torch["losses"][0], rel=1e-4)
    assert julia["losses"] == pytest.approx(torch["losses"], rel=1e-3)


def test_two_epochs_on_two_threads_write_a_valid_ok_record(julia_command, tiny_run, tmp_path):
    spec = tiny_run("resnet", stack="julia-native", threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "julia.log", VENVS,
                    timeout_s=TIMEOUT_S)
    assert record.status == "ok", record.reason
    data = json.loads((tmp_path / "record.json").read_text())
    validate_record_dict(data)
    assert Record.read(tmp_path / "record.json") == record
    assert (record.language, record.framework, record.backend) == ("julia", "julia-native", None)
    assert record.parameter_count == model_spec("resnet", spec.model_config).parameter_count
    assert record.threads == 2 and record.device == "cpu" and "2 Julia threads" in record.kernel_notes
    assert len(record.epoch_seconds) == len(record.train_loss_per_epoch) == 2
    assert record.warmup_epoch_seconds == record.epoch_seconds[0]
    assert record.steady_epoch_seconds == record.epoch_seconds[1]
    assert record.train_samples_per_epoch == 48
    assert record.shards_sha256 == read_shards(spec.shards).manifest_sha256
    assert record.initial_weights_sha256 == sha256_file(spec.initial_weights)
    assert all(np.isfinite(record.train_loss_per_epoch)) and 0 <= record.test_accuracy <= 1
    assert record.run_seconds >= record.startup_seconds > 0
