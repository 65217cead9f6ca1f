"""Every Python stack of the registry, each run in its own environment through the
launcher, and the loop they share. Their parameter counts and losses are
checked with every other stack in test_cross_stack.py; here: a two-epoch run leaves a
valid ok record, evaluating after every epoch leaves the training's losses and accuracy
as they are without it, a stack whose framework is missing from its environment writes a
`skipped` record naming it, and the shared loop times evaluation apart from the epochs.
A stack whose environment is not built is skipped.

Twins: tests/test_r_stack.py, tests/test_julia_stack.py, r/tests/testthat/test-train.R.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from conftest import tiny_run_factory
from dlrosetta.launch import launch
from dlrosetta.record import Record, validate_json, validate_record_dict
from dlrosetta.registry import STACKS
from dlrosetta.stacks.train import Trainer, run
from stackcheck import VENVS, TIMEOUT_S, assert_ok_record, command_or_skip, run_stack_command

PYTHON_STACKS = [s.id for s in STACKS.values() if s.language == "python"]
THREADS = 2

# A Python stack's own entry module with the shared loop swapped for one that trains
# every epoch and only then evaluates, once. It writes the epochs' losses, that accuracy,
# and whether that evaluation left every array of the model (weights, BN statistics)
# and of the optimiser bit for bit as it was.
TRAIN_THEN_EVALUATE = """
import runpy, sys
import numpy as np
from dlrosetta.measurements import write_json_atomic
from dlrosetta.order import epoch_batches
from dlrosetta.stacks import train

def state(trainer):
    fw = trainer.framework
    if fw == "torch":
        opt = [v for s in trainer.optimizer.state.values() for v in s.values()]
        arrays = [*trainer.net.state_dict().values(), *opt]
    elif fw == "tensorflow":
        import tensorflow as tf
        opt = [v for v in tf.nest.flatten(vars(trainer.optimizer)) if isinstance(v, tf.Variable)]
        arrays = [*trainer.net.variables, *opt]
    elif fw == "keras":
        arrays = [*trainer.net.variables, *trainer.net.optimizer.variables]
    elif fw == "mxnet":
        opt = [a for u in trainer.trainer._updaters for s in u.states.values()
               for a in (s if isinstance(s, tuple) else (s,)) if a is not None]
        arrays = [a.asnumpy() for a in [*(p.data() for p in trainer.net.collect_params().values()), *opt]]
    elif fw == "jax":
        import jax
        arrays = jax.tree.leaves(trainer.state)
    else:
        raise SystemExit(f"tests/test_stacks_python.py cannot read the state of a {fw} trainer yet")
    return [np.array(a) for a in arrays]

def train_then_evaluate(spec, trainer_cls):
    model, weights, shards, order = train.load_inputs(spec)
    trainer = trainer_cls(spec, model, weights)
    trainer.set_data(shards)
    losses = [float(trainer.train_epoch(epoch_batches(order, e, spec.batch_size))) for e in range(spec.epochs)]
    before = state(trainer)
    accuracy = float(trainer.evaluate())
    after = state(trainer)
    kept = len(before) == len(after) and all(np.array_equal(a, b) for a, b in zip(before, after))
    write_json_atomic(spec.measurements, {"losses": losses, "accuracy": accuracy, "state_kept": kept})

train.run = train_then_evaluate
runpy.run_module(sys.argv.pop(1), run_name="__main__")
"""


@pytest.fixture(scope="module")
def two_epoch_runs(tmp_path_factory):
    """(model, stack) -> (spec, record path, record) of a two-epoch launch, run once."""
    make = tiny_run_factory(tmp_path_factory.mktemp("python-stacks"))
    done = {}

    def get(model: str, stack_id: str):
        if (model, stack_id) not in done:
            command_or_skip(stack_id)
            spec = make(model, stack=stack_id, threads=THREADS)
            out = tmp_path_factory.mktemp(f"{model}-{stack_id}")
            record = launch(spec, out / "record.json", out / "run", out / "stack.log", VENVS, timeout_s=TIMEOUT_S)
            done[model, stack_id] = spec, out / "record.json", record
        return done[model, stack_id]

    return get


@pytest.mark.parametrize("stack_id", PYTHON_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_write_a_valid_ok_record(two_epoch_runs, model, stack_id):
    spec, path, record = two_epoch_runs(model, stack_id)
    validate_record_dict(json.loads(path.read_text()))
    assert Record.read(path) == record
    assert_ok_record(record, spec, threads=THREADS)


@pytest.mark.parametrize("stack_id", PYTHON_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_evaluating_between_epochs_leaves_training_unchanged(two_epoch_runs, tmp_path, model, stack_id):
    """Same losses and final accuracy as the same epochs trained without evaluating in
    between (evaluation gives the training mode back and draws no random numbers), and
    evaluating changes no weight, BN statistic or optimiser state."""
    spec, _, record = two_epoch_runs(model, stack_id)
    assert record.status == "ok", record.reason
    (interpreter, flag, module), extra_env = command_or_skip(stack_id)
    assert flag == "-m"
    reference = run_stack_command(dataclasses.replace(spec, measurements=str(tmp_path / "measurements.json")),
                                  [interpreter, "-c", TRAIN_THEN_EVALUATE, module], extra_env)
    assert list(record.train_loss_per_epoch) == reference["losses"]
    assert record.test_accuracy == reference["accuracy"]
    assert reference["state_kept"]


def installs(env: str, framework: str) -> bool:
    """Whether a built environment's manifest lists the framework's package (or a
    variant of it: tensorflow-cpu); environments pull frameworks in as dependencies too
    (an ONNX exporter needing jax)."""
    packages = json.loads((VENVS / env / "dlrosetta-env.json").read_text())["packages"]
    names = [p.split("==")[0].lower() for p in packages]
    return any(n == framework or n.startswith(f"{framework}-") for n in names)


def mismatched_environment():
    """A Python stack and a built environment that lacks its framework, or None."""
    for stack in STACKS.values():
        for other in STACKS.values():
            if stack.language == other.language == "python" and stack.env != other.env:
                try:
                    command_or_skip(other.id)
                except pytest.skip.Exception:
                    continue
                if not installs(other.env, stack.framework):
                    return stack, other.env
    return None


def test_missing_framework_gives_a_skipped_record(tiny_run, tmp_path):
    """A stack run by another stack's environment, which lacks its framework."""
    found = mismatched_environment()
    if found is None:
        pytest.skip("no two built environments of different frameworks")
    stack, env = found
    record = launch(tiny_run("lstm", stack=stack.id), tmp_path / "record.json", tmp_path / "run",
                    tmp_path / "stack.log", VENVS, timeout_s=TIMEOUT_S, stack=dataclasses.replace(stack, env=env))
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert record.status == "skipped", record.reason
    assert "is not installed" in record.reason and env in record.reason  # the module and the environment
    assert record.parameter_count is None and record.epoch_seconds is None


EVAL_SLEEP_S = 0.2


class SlowEvaluation(Trainer):
    """A stand-in framework whose epochs take no time and whose evaluation sleeps
    EVAL_SLEEP_S; its accuracy is the number of epochs trained so far, in tenths."""
    framework = "stand-in"

    def framework_version(self) -> str:
        return "0"

    def device_name(self) -> str:
        return "cpu"

    def set_data(self, shards) -> None:
        self.epochs_trained = 0

    def parameter_count(self) -> int:
        return 1

    def train_epoch(self, batches) -> float:
        self.epochs_trained += 1
        return float(self.epochs_trained)

    def evaluate(self) -> float:
        time.sleep(EVAL_SLEEP_S)
        return self.epochs_trained / 10


def test_the_shared_loop_evaluates_after_every_epoch_outside_its_time(tiny_run, capsys):
    spec = tiny_run("resnet", stack="stand-in")
    run(spec, SlowEvaluation)
    m = json.loads(Path(spec.measurements).read_text())
    validate_json(m, "measurements")
    assert spec.epochs == 2 and m["train_loss_per_epoch"] == [1.0, 2.0]
    assert m["test_accuracy_per_epoch"] == [0.1, 0.2]  # one evaluation after each epoch
    assert len(m["eval_seconds_per_epoch"]) == 2 and all(s >= EVAL_SLEEP_S for s in m["eval_seconds_per_epoch"])
    assert all(s < EVAL_SLEEP_S for s in m["epoch_seconds"])  # the epochs' times hold no evaluation
    err = capsys.readouterr().err
    assert "epoch 2/2: " in err and "loss 2.0000, " in err and "test accuracy 0.2000, run time left ~0 s" in err
