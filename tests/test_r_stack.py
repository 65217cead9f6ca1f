"""Every R stack of the registry (today r/stacks/r-keras: R driving Keras through
reticulate) run as the launcher runs it. First losses and parameter counts are checked
with every other stack in test_cross_stack.py; here: R adds no numerical difference at
all to its Python twin (the Python stack of the same framework and backend), also over
whole runs that evaluate after every epoch, and a two-epoch run leaves a valid ok record."""
import json

import pytest

from dlrosetta.launch import launch
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS
from stackcheck import VENVS, TIMEOUT_S, assert_ok_record, command_or_skip, run_check

R_STACKS = [s.id for s in STACKS.values() if s.language == "r"]


def python_twin(stack_id: str) -> str | None:
    r = STACKS[stack_id]
    return next((s.id for s in STACKS.values() if s.language == "python"
                 and (s.framework, s.backend) == (r.framework, r.backend)), None)


@pytest.mark.parametrize("stack_id", R_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_step_losses_are_the_python_twins(tiny_run, model, stack_id):
    """Same framework, same backend, same optimiser, weights and batches (Keras's own Adam
    on TensorFlow's sparse embedding gradient would differ, by 4e-5: both use the dense one)."""
    twin = python_twin(stack_id)
    if twin is None:
        pytest.skip(f"{stack_id} has no Python twin")
    r = run_check(tiny_run(model, stack=stack_id, check="step_losses", check_steps=3))
    py = run_check(tiny_run(model, stack=twin, check="step_losses", check_steps=3))
    assert r["parameter_count"] == py["parameter_count"]
    assert r["losses"] == pytest.approx(py["losses"], rel=1e-6)


@pytest.mark.parametrize("stack_id", R_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_with_their_evaluations_follow_the_python_twins(tiny_run, tmp_path, model, stack_id):
    """The same epoch losses and per-epoch accuracies as the twin, whose evaluation between
    epochs changes nothing in its training (tests/test_stacks_python.py): neither does R's."""
    twin = python_twin(stack_id)
    if twin is None:
        pytest.skip(f"{stack_id} has no Python twin")
    records = {}
    for stack in (stack_id, twin):
        command_or_skip(stack)
        records[stack] = launch(tiny_run(model, stack=stack), tmp_path / stack / "record.json", tmp_path / stack,
                                tmp_path / f"{stack}.log", VENVS, timeout_s=TIMEOUT_S)
        assert records[stack].status == "ok", records[stack].reason
    r, py = records[stack_id], records[twin]
    assert r.train_loss_per_epoch == pytest.approx(py.train_loss_per_epoch, rel=1e-6)
    assert r.test_accuracy_per_epoch == py.test_accuracy_per_epoch


@pytest.mark.parametrize("stack_id", R_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_write_a_valid_ok_record(tiny_run, tmp_path, model, stack_id):
    command_or_skip(stack_id)
    spec = tiny_run(model, stack=stack_id, threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "stack.log", VENVS,
                    timeout_s=TIMEOUT_S)
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert Record.read(tmp_path / "record.json") == record
    assert_ok_record(record, spec, threads=2)
