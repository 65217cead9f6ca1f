"""Every Python stack of the registry, each run in its own environment through the
launcher. Their parameter counts and losses are
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


def mismatched_environment():
    """A Python stack and a built environment that lacks its framework (two stacks of
    different frameworks and environments), or None."""
    for stack in STACKS.values():
        for other in STACKS.values():
            if stack.language == other.language == "python" and stack.framework != other.framework \
                    and stack.env != other.env and stack.framework not in (other.framework, other.backend):
                try:
                    command_or_skip(other.id)
                except pytest.skip.Exception:
                    continue
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
