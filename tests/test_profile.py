"""Profile records (dlrosetta.profile): op names of every framework map to the right
category, the breakdown never counts a nested or concurrent op twice and leaves the
uncovered time as overhead, and the launcher turns a stack's profile output into a valid
profile record, or a failed one naming what is wrong."""
import gzip
import json

import pytest
from test_launch import fake_stack

from dlrosetta.launch import launch
from dlrosetta.profile import (CATEGORIES, ProfileRecord, breakdown, classify, classified_intervals,
                               profile_table, read_trace)


@pytest.mark.parametrize("name,category", [
    ("aten::mkldnn_convolution", "conv_gemm"),
    ("autograd::engine::evaluate_function: ConvolutionBackward0", "conv_gemm"),
    ("aten::addmm", "conv_gemm"),
    ("Conv2DBackpropFilter", "conv_gemm"),
    ("MatMul", "conv_gemm"),
    ("dot.12", "conv_gemm"),
    ("_backward_Convolution", "conv_gemm"),
    ("aten::native_batch_norm", "normalisation"),
    ("FusedBatchNormGradV3", "normalisation"),
    ("aten::mkldnn_rnn_layer", "recurrent"),
    ("while.3", "recurrent"),
    ("aten::cross_entropy_loss", "loss"),
    ("SparseSoftmaxCrossEntropyWithLogits", "loss"),
    ("Optimizer.step#SGD.step", "optimiser"),
    ("ResourceApplyKerasMomentum", "optimiser"),
    ("adam_update", "optimiser"),
    ("aten::index_select", "data"),
    ("GatherV2", "data"),
    ("aten::relu_", "elementwise"),
    ("loop_add_fusion", "elementwise"),
    ("MaxPool", "elementwise"),
    ("_MklNativeConv2DBackpropFilter", "conv_gemm"),
    ("_MklNativeFusedBatchNormGradV3", "normalisation"),
    ("conv_general_dilated.20", "conv_gemm"),
    ("transpose_copy_fusion.7", "elementwise"),
    ("multi_sgd_mom_update", "optimiser"),
    ("aten::_fused_sgd_", "optimiser"),
    ("ThreadpoolListener::Region", None),
    ("end: convolution.3", None),
    ("convert_to_tensor", None),
    ("ProfilerStep#3", None),
    ("train_epoch", None),
])
def test_op_names_of_every_framework_are_classified(name, category):
    assert classify(name) == category


def test_a_stacks_own_category_is_taken_as_is():
    assert classify("anything", "recurrent") == "recurrent"
    assert classify("relu", "overhead") == "elementwise"  # overhead is what is left, never named


def event(name, ts, dur, tid=1, cat=None):
    return {"name": name, "ts": ts, "dur": dur, "thread": (1, tid), "cat": cat}


def test_the_outermost_classified_op_owns_its_children_and_unknown_ops_are_transparent():
    events = [event("ProfilerStep#0", 0, 1000),                    # unknown: transparent
              event("aten::conv2d", 0, 400), event("aten::mkldnn_convolution", 10, 380),
              event("Optimizer.step#SGD.step", 500, 300), event("aten::add_", 510, 100),
              event("aten::relu", 850, 50)]
    assert [(c, n) for _, _, c, n in classified_intervals(events)] == [
        ("conv_gemm", "aten::conv2d"), ("optimiser", "Optimizer.step#SGD.step"), ("elementwise", "aten::relu")]
    seconds = breakdown(events, wall_seconds=1e-3)
    assert seconds["conv_gemm"] == pytest.approx(400e-6)
    assert seconds["optimiser"] == pytest.approx(300e-6)
    assert seconds["elementwise"] == pytest.approx(50e-6)
    assert seconds["overhead"] == pytest.approx(250e-6)  # 1 ms wall, 750 us covered
    assert set(seconds) == set(CATEGORIES) and sum(seconds.values()) == pytest.approx(1e-3)


def test_concurrent_ops_share_the_wall_time():
    # Two threads: a conv 0-100 us, a batch norm 50-150 us; 150 us of wall covered once.
    seconds = breakdown([event("Conv2D", 0, 100, tid=1), event("FusedBatchNormV3", 50, 100, tid=2)], 200e-6)
    assert seconds["conv_gemm"] == pytest.approx(75e-6)
    assert seconds["normalisation"] == pytest.approx(75e-6)
    assert seconds["overhead"] == pytest.approx(50e-6)


def test_a_child_running_past_its_parent_is_clipped():
    intervals = classified_intervals([event("wrapper", 0, 100), event("relu", 90, 50)])
    assert intervals == [(90, 100, "elementwise", "relu")]


def test_traces_are_read_plain_or_gzipped_with_begin_end_pairs(tmp_path):
    doc = {"traceEvents": [{"name": "Conv2D", "ph": "X", "ts": 0, "dur": 5, "pid": 1, "tid": 2},
                           {"name": "relu", "ph": "B", "ts": 10, "pid": 1, "tid": 2},
                           {"name": "relu", "ph": "E", "ts": 14, "pid": 1, "tid": 2},
                           {"name": "process_name", "ph": "M", "pid": 1}]}
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with gzip.open(tmp_path / "t.json.gz", "wt") as f:
        json.dump(doc["traceEvents"], f)
    for name in ("t.json", "t.json.gz"):
        events = read_trace(tmp_path / name)
        assert [(e["name"], e["dur"]) for e in events] == [("Conv2D", 5.0), ("relu", 4.0)]


# A stand-in stack in profile mode: a 3-step block whose trace has a conv and an
# optimiser step; `steps` and the trace name can be spoiled by the test.
WRITES_PROFILE = """
import json, sys
from pathlib import Path
from dlrosetta.runspec import RunSpec
spec = RunSpec.read(sys.argv[1])
out = Path(spec.measurements)
events = [{{"name": "aten::convolution", "ph": "X", "ts": 0, "dur": 20000, "pid": 1, "tid": 1}},
          {{"name": "Optimizer.step#SGD.step", "ph": "X", "ts": 25000, "dur": 5000, "pid": 1, "tid": 1}}]
(out.parent / "trace.json").write_text(json.dumps(events))
out.write_text(json.dumps({{"check": "profile", "stack": spec.stack, "model": spec.model, "steps": {steps},
                           "profiler": "stand-in", "unprofiled_seconds": 0.03, "profiled_seconds": 0.036,
                           "trace": "{trace}", "parameter_count": 1, "framework_version": "0"}}))
"""


def profile_run(tiny_run, tmp_path, code):
    spec = tiny_run("resnet", stack="fake", check="profile", check_steps=3)
    out = tmp_path / "profiles" / "fake.json"
    record = launch(spec, out, tmp_path / "run", tmp_path / "fake.log", tmp_path / "venvs", stack=fake_stack(code))
    assert ProfileRecord.read(out) == record
    return record


def test_the_launcher_writes_a_profile_record_from_the_trace(tiny_run, tmp_path):
    r = profile_run(tiny_run, tmp_path, WRITES_PROFILE.format(steps=3, trace="trace.json"))
    assert r.status == "ok" and r.steps == 3 and r.batch_size == 16
    assert r.unprofiled_step_seconds == pytest.approx(0.01) and r.profiled_step_seconds == pytest.approx(0.012)
    by = r.step_seconds_by_category
    assert by["conv_gemm"] == pytest.approx(0.02 / 3) and by["optimiser"] == pytest.approx(0.005 / 3)
    assert by["overhead"] == pytest.approx(0.011 / 3)
    assert sum(by.values()) == pytest.approx(r.profiled_step_seconds)
    assert r.top_ops[0]["name"] == "aten::convolution" and r.trace_events == 2


@pytest.mark.parametrize("steps,trace,fragment", [
    (3, "missing.json", "cannot read the profile trace"),
    (0, "trace.json", "no measured block"),
])
def test_a_broken_profile_output_is_a_failed_record_naming_it(tiny_run, tmp_path, steps, trace, fragment):
    r = profile_run(tiny_run, tmp_path, WRITES_PROFILE.format(steps=steps, trace=trace))
    assert r.status == "failed" and fragment in r.reason and "profile output" in r.reason


def test_a_crash_in_profile_mode_is_a_failed_profile_record(tiny_run, tmp_path):
    r = profile_run(tiny_run, tmp_path, "raise RuntimeError('no profiler here')")
    assert r.status == "failed" and "no profiler here" in r.reason


def test_the_profiles_table_has_a_column_per_category(tiny_run, tmp_path):
    profile_run(tiny_run, tmp_path, WRITES_PROFILE.format(steps=3, trace="trace.json"))
    table = profile_table([tmp_path / "profiles" / "fake.json"])
    row = table.iloc[0]
    assert row.status == "ok" and row.conv_gemm_seconds == pytest.approx(0.02 / 3)
    assert {f"{c}_seconds" for c in CATEGORIES} <= set(table.columns)
    assert "aten::convolution (conv_gemm" in row.top_ops


def test_a_missing_runtime_in_profile_mode_is_a_skipped_profile_record_naming_it(tiny_run, tmp_path):
    spec = tiny_run("resnet", stack="fake", check="profile", check_steps=3)
    out = tmp_path / "profiles" / "missing.json"
    r = launch(spec, out, tmp_path / "run", tmp_path / "missing.log", tmp_path / "venvs",
               stack=fake_stack("pass", runtime="no-such-interpreter-xyz"))
    assert ProfileRecord.read(out) == r
    assert r.status == "skipped" and "no-such-interpreter-xyz not found on PATH" in r.reason
