"""The Python stacks (pytorch, tensorflow, keras-tensorflow, keras-jax, keras-torch), each
run in its own environment through the launcher. Their parameter counts and losses are
checked with every other stack in test_cross_stack.py; here: a two-epoch run leaves a
valid ok record, and a stack whose framework is missing from its environment writes a
`skipped` record naming it. A stack whose environment is not built is skipped.

Twins: tests/test_r_stack.py, tests/test_julia_stack.py.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from dlrosetta.launch import launch
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS
from stackcheck import VENVS, TIMEOUT_S, assert_ok_record, command_or_skip

PYTHON_STACKS = [s.id for s in STACKS.values() if s.language == "python"]


@pytest.mark.parametrize("stack_id", PYTHON_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_write_a_valid_ok_record(tiny_run, tmp_path, model, stack_id):
    command_or_skip(stack_id)
    spec = tiny_run(model, stack=stack_id, threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "stack.log", VENVS,
                    timeout_s=TIMEOUT_S)
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert Record.read(tmp_path / "record.json") == record
    assert_ok_record(record, spec, threads=2)


def test_missing_framework_gives_a_skipped_record(tiny_run, tmp_path):
    """The pytorch stack run by the tensorflow environment's Python, which has no torch."""
    command_or_skip("tensorflow")
    stack = dataclasses.replace(STACKS["pytorch"], env="tensorflow")
    record = launch(tiny_run("lstm", stack="pytorch"), tmp_path / "record.json", tmp_path / "run",
                    tmp_path / "stack.log", VENVS, timeout_s=TIMEOUT_S, stack=stack)
    validate_record_dict(json.loads((tmp_path / "record.json").read_text()))
    assert record.status == "skipped", record.reason
    assert "torch" in record.reason and "tensorflow" in record.reason  # the module and the environment
    assert record.parameter_count is None and record.epoch_seconds is None
