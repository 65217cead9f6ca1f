"""Profile mode (docs/profile.md) in every stack of the registry, each
run as the launcher runs it: the profile JSON holds the contract's keys, both blocks took
time, and the trace beside it is Chrome trace-event JSON whose complete events are the
framework's ops (convolutions among them for the ResNet), with no scratch files left.
Also: profile_blocks takes the same rows in Python and R, cyclically; MXNet's B/E pairs
become complete events; a profile run spec follows the schema.

Twins: r/tests/testthat/test-order.R, r/tests/testthat/test-train.R,
       r/tests/testthat/helper-stacks.R (the R stacks' own profile-mode test),
       julia/stacks/julia-native/test/runtests.jl (julia-native's).
"""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dlrosetta.model_spec import model_spec
from dlrosetta.order import epoch_batches, profile_blocks, read_order, write_epoch_order
from dlrosetta.profiler import complete_events, trace_block
from dlrosetta.record import validate_json
from dlrosetta.registry import REPO, STACKS
from stackcheck import command_or_skip, run_stack_command

PROFILED_STACKS = list(STACKS)
STEPS = 3
THREADS = 2
PROFILE_KEYS = {"check", "stack", "model", "steps", "profiler", "unprofiled_seconds", "profiled_seconds", "trace",
                "parameter_count", "framework_version"}
#: A convolution in every framework's own naming: aten::mkldnn_convolution,
#: _MklNativeConv2DBackpropFilter, XLA's convolution.3 / conv_general_dilated.2, MXNet's
#: _backward_Convolution.
CONVOLUTION = re.compile(r"conv", re.I)


def trace_events(path: Path) -> list[dict]:
    """The events of a Chrome trace file: a JSON list, or an object with traceEvents."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        trace = json.load(f)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


@pytest.mark.parametrize("stack_id", PROFILED_STACKS)
@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_profile_mode_writes_the_profile_and_an_op_level_trace(tiny_run, model, stack_id):
    # 3 batches an epoch: the three blocks of 3 steps each wrap around epoch 0.
    spec = tiny_run(model, stack=stack_id, check="profile", check_steps=STEPS, threads=THREADS)
    profile = run_stack_command(spec, *command_or_skip(stack_id))
    assert set(profile) == PROFILE_KEYS
    assert (profile["check"], profile["stack"], profile["model"], profile["steps"]) == \
        ("profile", stack_id, model, STEPS)
    assert profile["unprofiled_seconds"] > 0 and profile["profiled_seconds"] > 0
    assert profile["parameter_count"] == model_spec(model, spec.model_config).parameter_count
    assert profile["profiler"] and profile["framework_version"]

    out = Path(spec.measurements).parent
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [Path(spec.measurements).name, Path(spec.measurements).with_suffix(".spec.json").name, profile["trace"]])
    ops = [e for e in trace_events(out / profile["trace"]) if e.get("ph") == "X"]
    assert ops and all(isinstance(e["name"], str) and e["name"] and e["dur"] >= 0 for e in ops)
    if model == "resnet":
        assert any(CONVOLUTION.search(e["name"]) for e in ops), sorted({e["name"] for e in ops})


def r_profile_blocks(order_path: Path, n_train: int, batch_size: int, steps: int) -> dict:
    """R's profile_blocks on the order file, through Rscript and the shared R library."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript is not on PATH")
    code = ("for (f in list.files(commandArgs(TRUE)[1], '\\\\.R$', full.names = TRUE)) source(f); "
            "a <- as.integer(commandArgs(TRUE)[-1]); "
            "blocks <- profile_blocks(read_order(commandArgs(TRUE)[2], 1L, a[2]), a[3], a[4]); "
            "cat(jsonlite::toJSON(blocks))")
    out = subprocess.run([rscript, "--vanilla", "-e", code, str(REPO / "r" / "R"), str(order_path),
                          str(n_train), str(batch_size), str(steps)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("n_train, batch_size, steps", [(48, 16, 3), (50, 4, 2), (20, 3, 4)])
def test_profile_blocks_are_the_same_rows_in_python_and_r(tmp_path, n_train, batch_size, steps):
    path = tmp_path / "order.npy"
    write_epoch_order(path, n_train, 2, seed=3)
    python = profile_blocks(read_order(path, 2, n_train), batch_size, steps)
    r = r_profile_blocks(path, n_train, batch_size, steps)
    assert list(r) == ["warm_up", "unprofiled", "profiled"]
    for block, r_block in zip(python, r.values()):
        assert block.shape == (steps, batch_size)
        np.testing.assert_array_equal(block, np.array(r_block))


def test_profile_blocks_take_epoch_0s_batches_cyclically():
    order = np.stack([np.arange(12), np.arange(12)[::-1]]).astype(np.int32)
    rows = epoch_batches(order, 0, 4)  # 3 batches
    warm_up, unprofiled, profiled = profile_blocks(order, 4, 2)
    np.testing.assert_array_equal(warm_up, rows[[0, 1]])
    np.testing.assert_array_equal(unprofiled, rows[[2, 0]])
    np.testing.assert_array_equal(profiled, rows[[1, 2]])
    with pytest.raises(ValueError, match="steps >= 1"):
        profile_blocks(order, 4, 0)
    with pytest.raises(ValueError, match="0 batches of 16"):
        profile_blocks(order, 16, 1)


def test_b_e_pairs_become_complete_events():
    events = [{"ph": "M", "name": "process_name", "pid": 0},
              {"ph": "B", "name": "Convolution", "ts": 10, "pid": 0, "tid": 1},
              {"ph": "B", "name": "take", "ts": 11, "pid": 0, "tid": 2},
              {"ph": "E", "name": "Convolution", "ts": 15, "pid": 0, "tid": 1},
              {"ph": "E", "name": "take", "ts": 12, "pid": 0, "tid": 2},
              {"ph": "C", "name": "Memory", "ts": 13, "pid": 0, "tid": 1}]
    assert complete_events(events) == [
        {"ph": "M", "name": "process_name", "pid": 0},
        {"ph": "X", "name": "Convolution", "ts": 10, "dur": 5, "pid": 0, "tid": 1},
        {"ph": "X", "name": "take", "ts": 11, "dur": 1, "pid": 0, "tid": 2},
        {"ph": "C", "name": "Memory", "ts": 13, "pid": 0, "tid": 1}]


def test_trace_block_knows_the_frameworks_it_profiles(tmp_path):
    with pytest.raises(ValueError, match="no profiler for framework 'keras'"):
        trace_block("keras", tmp_path)


def test_a_profile_run_spec_follows_the_schema(tiny_run):
    validate_json(tiny_run("resnet", check="profile", check_steps=10).to_dict(), "runspec")
