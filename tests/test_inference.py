"""The orchestration of inference (docs/inference.md): the launcher's trained-weights
check and inference records, the ONNX runtimes' records whatever the runner did, the
inference statistics and the cross-evaluation matrix, on crafted inputs. The stacks'
own inference mode is tests/test_inference_mode.py; the runner, tests/test_onnx_runner.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from dlrosetta.inference import (NATIVE, NO_TRAINED_WEIGHTS, InferenceRecord, call_statistics, crosseval_rows,
                                 inference_rows, trained_weights_dir)
from dlrosetta.launch import launch
from dlrosetta.model_spec import model_spec
from dlrosetta.npy import write_bundle
from dlrosetta.record import Record
from dlrosetta.registry import STACKS
from dlrosetta.rerun import record_retry_reason
from dlrosetta.runtimes import exports_of, runtime_records
from dlrosetta.statistics import estimate, seed_of
from dlrosetta.venv import MANIFEST
from dlrosetta.weights import write_initial_weights
from test_launch import OK_MEASUREMENTS, fake_stack

IDENTITY = dict(language="python", framework="fake", backend=None, model="resnet", dataset="tiny", threads=2,
                device="cpu")


def record(stack="a", engine=NATIVE, repeat=1, status="ok", calls=(1e-3, 2e-3, 3e-3), batch_size=1, **kw):
    batches = None
    if status == "ok":
        batches = [{"batch_size": batch_size, "warmup_calls": 1, **call_statistics(calls, batch_size),
                    "call_seconds": list(calls)}]
    return InferenceRecord(status=status, stack=stack, engine=engine, repeat=repeat, batches=batches,
                           reason=None if status == "ok" else f"{stack} {status}", **IDENTITY, **kw)


def test_call_statistics_give_median_p99_and_throughput():
    stats = call_statistics([0.001] * 99 + [0.1], 256)
    assert stats == {"calls": 100, "median_seconds": 0.001, "p99_seconds": 0.1, "samples_per_second": 256_000.0}


def test_inference_rows_pool_repeats_with_the_training_bootstrap_and_keep_failures():
    a1, a2 = [1e-3, 1.2e-3, 1.1e-3], [2e-3, 2.2e-3, 2.1e-3]
    rows = inference_rows([record("a", repeat=1, calls=a1), record("a", repeat=2, calls=a2),
                           record("b", status="failed"), record("b", repeat=2, status="failed")])
    ok, failed = rows
    expected = estimate([a1, a2], seed_of("tiny", "resnet", NATIVE, "a", 1))
    assert (ok["repeats"], ok["calls"]) == (2, 6)
    assert ok["latency_ms_median"] == pytest.approx(1e3 * expected.median)
    assert ok["latency_ms_ci_low"] <= ok["latency_ms_median"] <= ok["latency_ms_ci_high"]
    assert ok["samples_per_second_median"] == pytest.approx(1 / expected.median)
    assert ok["samples_per_second_ci_low"] == pytest.approx(1 / expected.ci_high)
    assert (failed["stack"], failed["status"], failed["reason"]) == ("b", "failed", "b failed")


def logits_bundle(path, evaluator, arrays):
    return str(write_bundle(path, "logits", arrays, {"stack": evaluator, "model": "resnet", "dataset": "tiny"}))


def test_crosseval_matrix_agreement_accuracy_and_cells_that_could_not_be_computed(tmp_path):
    own_a = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]], np.float32)
    own_b = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    y = np.array([0, 1, 1, 1])
    # b computes a's weights with a rounding difference that flips nothing, and a's own
    # logits of b's weights with one flipped sample (a near tie).
    a_of_b = own_b.copy()
    a_of_b[0] = [0.6, 0.5]
    records = [
        record("a", logits=logits_bundle(tmp_path / "a", "a", {"a": own_a, "b": a_of_b})),
        record("b", logits=logits_bundle(tmp_path / "b", "b", {"a": own_a + 1e-6, "b": own_b}),
               unevaluated_weights=None),
        record("c", logits=logits_bundle(tmp_path / "c", "c", {"c": own_a}), unevaluated_weights={
            "a": "trained weights unusable: checksum mismatch for /x/a.npy", "b": "trained weights unusable: gone"}),
        record("d", status="failed"),
    ]
    cells = {(r["trained_by"], r["evaluated_by"]): r for r in crosseval_rows(records, {"tiny": y})}
    assert len(cells) == 16
    assert cells["a", "a"]["agreement"] == 1.0 and cells["a", "a"]["max_abs_logit_diff"] == 0.0
    assert cells["a", "b"]["agreement"] == 1.0 and cells["a", "b"]["max_abs_logit_diff"] == pytest.approx(1e-6, rel=0.1)
    assert cells["b", "a"]["agreement"] == 0.75 and cells["b", "a"]["test_accuracy"] == 0.75
    assert cells["a", "c"]["status"] == "skipped" and "checksum mismatch for /x/a.npy" in cells["a", "c"]["reason"]
    assert cells["c", "c"]["status"] == "ok"
    assert cells["c", "a"]["status"] == "skipped" and "wrote no logits for c" in cells["c", "a"]["reason"]
    assert cells["a", "d"]["status"] == "failed" and cells["a", "d"]["reason"] == "d failed"


# -- the launcher -------------------------------------------------------------------------
def writes_trained_weights(corrupt: bool = False) -> str:
    """A stand-in stack that writes OK_MEASUREMENTS and its trained weights (the initial
    ones), one array's bytes changed after the checksums when `corrupt`."""
    return f"""
import sys
from pathlib import Path
from dlrosetta.measurements import write_measurements
from dlrosetta.model_spec import model_spec
from dlrosetta.runspec import RunSpec
from dlrosetta.weights import read_initial_weights, write_trained_weights
spec = RunSpec.read(sys.argv[1])
model = model_spec(spec.model, spec.model_config)
write_trained_weights(spec.trained_weights, spec, model, read_initial_weights(spec.initial_weights, model), 1)
if {corrupt!r}:
    path = Path(spec.trained_weights) / "head.dense.bias.npy"
    path.write_bytes(path.read_bytes()[:-1] + b"\\x01")
write_measurements(spec.measurements, "ok", spec.stack, spec.model, spec.dataset, **{OK_MEASUREMENTS!r})
"""


def train(tiny_run, tmp_path, code):
    out = tmp_path / "records" / "repeat1.json"
    spec = tiny_run("resnet", stack="fake", trained_weights=str(trained_weights_dir(out)))
    return launch(spec, out, tmp_path / "run", tmp_path / "train.log", tmp_path / "venvs",
                  stack=fake_stack(code), repeat=1)


def test_a_training_record_names_its_checked_trained_weights(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = train(tiny_run, tmp_path, writes_trained_weights())
    assert r.status == "ok" and r.trained_weights == "records/repeat1.weights/manifest.json"
    assert len(r.trained_weights_sha256) == 64 and Record.read(tmp_path / "records" / "repeat1.json") == r


@pytest.mark.parametrize("corrupt", [True, False], ids=["corrupt", "missing"])
def test_a_corrupt_or_missing_trained_bundle_fails_the_run_naming_it(tiny_run, tmp_path, corrupt):
    code = writes_trained_weights(corrupt) if corrupt else writes_trained_weights().replace(
        "write_trained_weights(spec.trained_weights", "(lambda *a: None)(spec.trained_weights")
    r = train(tiny_run, tmp_path, code)
    assert r.status == "failed" and "no valid trained-weights bundle" in r.reason
    assert ("head.dense.bias.npy" if corrupt else "repeat1.weights/manifest.json") in r.reason


def test_a_run_that_fails_leaves_no_trained_weights_and_removes_an_earlier_runs(tiny_run, tmp_path):
    assert train(tiny_run, tmp_path, writes_trained_weights()).status == "ok"
    bundle = tmp_path / "records" / "repeat1.weights"
    assert (bundle / "manifest.json").is_file()
    crash = writes_trained_weights().replace("write_measurements(", "sys.exit(3); write_measurements(")
    r = train(tiny_run, tmp_path, crash)  # it writes its weights, then crashes
    assert r.status == "failed" and "exit code 3" in r.reason and not bundle.exists()
    assert train(tiny_run, tmp_path, writes_trained_weights()).status == "ok" and bundle.is_dir()
    assert train(tiny_run, tmp_path, "import sys; sys.exit(4)").status == "failed"  # writes nothing
    assert not bundle.exists()


ECHO_INFERENCE = """
import json, sys
from dlrosetta.runspec import RunSpec
spec = RunSpec.read(sys.argv[1])
json.dump({"check": "inference", "stack": spec.stack, "model": spec.model, "dataset": spec.dataset,
           "language_version": "3", "framework_version": "0", "device": "cpu", "parameter_count": 1,
           "startup_seconds": 0.1, "peak_rss_mb": 1.0, "logits": None, "onnx_export": None,
           "batches": [{"batch_size": b, "warmup_calls": 1, "call_seconds": [0.002, 0.001, 0.003]}
                       for b in spec.inference["batch_sizes"]],
           "evaluated": [e["stack"] for e in spec.inference["evaluate"]]},
          open(spec.measurements, "w"))
"""


def infer(tiny_run, tmp_path, own, evaluate):
    inference = {"batch_sizes": [1, 4], "warmup_calls": 1, "min_calls": 3, "max_calls": 3, "min_seconds": 0,
                 "evaluate": evaluate, "logits": None, "onnx": None}
    spec = tiny_run("resnet", stack="fake", check="inference", initial_weights=own, inference=inference)
    return launch(spec, tmp_path / "inference.json", tmp_path / "run", tmp_path / "infer.log", tmp_path / "venvs",
                  stack=fake_stack(ECHO_INFERENCE), repeat=2)


def test_inference_records_the_calls_and_leaves_unusable_weights_out_saying_why(tiny_run, tmp_path):
    spec = tiny_run("resnet")
    good = write_initial_weights(tmp_path / "good", model_spec("resnet", spec.model_config), 1, spec.model_config)
    bad = write_initial_weights(tmp_path / "bad", model_spec("resnet", spec.model_config), 1, spec.model_config)
    (tmp_path / "bad" / "stem.conv.kernel.npy").write_bytes(b"not an array")
    r = infer(tiny_run, tmp_path, str(good), [{"stack": "x", "weights": str(good)},
                                              {"stack": "y", "weights": str(bad)},
                                              {"stack": "z", "weights": str(tmp_path / "none" / "manifest.json")}])
    assert r.status == "ok" and (r.engine, r.repeat, r.runtime) == (NATIVE, 2, "fake")
    assert [b["batch_size"] for b in r.batches] == [1, 4] and r.batches[1]["samples_per_second"] == 2000.0
    assert r.batches[0]["median_seconds"] == 0.002 and r.batches[0]["p99_seconds"] == 0.003
    assert set(r.unevaluated_weights) == {"y", "z"}
    assert "stem.conv.kernel.npy" in r.unevaluated_weights["y"] and "none/manifest.json" in r.unevaluated_weights["z"]
    assert json.loads((tmp_path / "run" / "spec.json").read_text())["inference"]["evaluate"] == [
        {"stack": "x", "weights": str(good)}]  # the stack never sees an unusable bundle
    assert InferenceRecord.read(tmp_path / "inference.json") == r


def test_inference_without_trained_weights_is_skipped_naming_the_bundle(tiny_run, tmp_path):
    r = infer(tiny_run, tmp_path, str(tmp_path / "missing" / "manifest.json"), [])
    assert r.status == "skipped" and "no trained weights of fake" in r.reason and "missing/manifest.json" in r.reason


def test_a_skip_for_want_of_trained_weights_waits_for_them_and_other_skips_are_retried(tiny_run, tmp_path):
    """The workflow's retry check: the training record, an input, makes a run skipped for
    want of its weights again; a skip whose cause is no longer the stack's is retried."""
    path = tmp_path / "repeat1.json"
    infer(tiny_run, tmp_path, str(tmp_path / "missing" / "manifest.json"), []).write(path)
    stack = next(s for s in STACKS.values() if s.env)  # its environment: not under tmp_path
    assert record_retry_reason(path, stack, tmp_path, InferenceRecord.read, NO_TRAINED_WEIGHTS) is None
    assert record_retry_reason(path, stack, tmp_path, InferenceRecord.read) == \
        "skipped, and what was missing has changed"


# -- the ONNX runtimes' records ---------------------------------------------------------------
CASE = {"model": "resnet", "dataset": "tiny", "threads": 2, "repeat": 1}


def runner_row(stack, precision, status="ok", reason=None):
    ok = status == "ok"
    return {"stack": stack, "precision": precision, "status": status, "reason": reason,
            "onnx_sha256": "0" * 64 if ok else None, "opset": 18 if ok else None, "agreement": 1.0 if ok else None,
            "max_abs_logit_diff": 1e-7 if ok else None, "test_accuracy": 0.5 if ok else None,
            "batches": [{"batch_size": 1, "warmup_calls": 1, "call_seconds": [1e-4, 2e-4]}] if ok else None}


def test_runtime_records_cover_every_engine_and_stack_whatever_the_runner_did():
    stacks = sorted(STACKS)[:3]
    exported, unexported, lost = stacks
    doc = {"runtime_version": "2026.4.1", "rows": [
        runner_row(exported, "f32"), runner_row(exported, "bf16", "skipped", "this CPU has no bf16")]}
    records = runtime_records("openvino", doc, None, 1.5, stacks,
                              {unexported: ("skipped", f"{unexported} exported no ONNX")}, CASE)
    assert set(records) == {(e, s) for e in ("openvino", "openvino-bf16") for s in stacks}
    ok = records["openvino", exported]
    assert (ok.status, ok.precision, ok.runtime, ok.agreement, ok.batches[0]["calls"]) == ("ok", "f32", "openvino", 1.0, 2)
    assert records["openvino-bf16", exported].reason == "this CPU has no bf16"
    assert records["openvino", unexported].status == "skipped"
    assert "no f32 row" in records["openvino", lost].reason and records["openvino", lost].status == "failed"
    crashed = runtime_records("onnxruntime", None, ("failed", "exit code 1; log tail: boom"), None, stacks, {}, CASE)
    assert {r.status for r in crashed.values()} == {"failed"} and set(crashed) == {("onnxruntime", s) for s in stacks}
    for r in [*records.values(), *crashed.values()]:  # every one follows the schema
        assert InferenceRecord(**json.loads(json.dumps(r.to_dict()))) == r


def test_a_failed_export_gives_failed_runtime_records_and_its_inference_run_is_retried(tmp_path):
    stacks = sorted(STACKS)[:3]
    paths = []
    for stack, export in zip(stacks, ({"status": "failed", "reason": "RuntimeError: boom"},
                                      {"status": "unsupported", "reason": "no converter"}, None)):
        paths.append(tmp_path / f"{stack}.json")
        record(stack, onnx_export=export).write(paths[-1])
    exports, missing = exports_of(paths)
    assert exports == [] and missing == {
        stacks[0]: ("failed", f"{stacks[0]}'s ONNX export failed: RuntimeError: boom"),
        stacks[1]: ("skipped", f"{stacks[1]} exported no ONNX model (unsupported): no converter"),
        stacks[2]: ("skipped", f"{stacks[2]} exported no ONNX model (not asked): None")}
    assert runtime_records("onnxruntime", None, None, None, stacks, missing, CASE)[
        "onnxruntime", stacks[0]].status == "failed"
    # The workflow's retry check: the failed export is tried again, the others are kept.
    retry = [record_retry_reason(p, STACKS[s], tmp_path, InferenceRecord.read) for p, s in zip(paths, stacks)]
    assert retry == ["its ONNX export failed: a crash may not recur", None, None]


def test_a_crashed_runner_fails_its_records_and_only_that_reruns_the_job(tmp_path):
    from dlrosetta import runtimes

    native, stack = tmp_path / "native.json", sorted(STACKS)[0]
    (tmp_path / "m.onnx").write_bytes(b"x")
    record(stack, onnx_export={"status": "ok", "path": str(tmp_path / "m.onnx")},
           logits=str(tmp_path / "logits.json")).write(native)
    venv = tmp_path / "venvs" / runtimes.ENV
    (venv / "bin").mkdir(parents=True)
    (venv / MANIFEST).write_text(json.dumps({"status": "ok"}))
    (venv / "bin" / "python").write_text("#!/bin/sh\necho 'Fatal Python error: Segmentation fault' >&2\nexit 3\n")
    (venv / "bin" / "python").chmod(0o755)
    written = runtimes.infer_onnx(CASE, ["onnxruntime"], {"batch_sizes": [1]}, [native], tmp_path / "shards.json",
                                  tmp_path / "out", tmp_path / "work", tmp_path / "log", tmp_path / "venvs", None)
    path = tmp_path / "out" / "tiny" / "resnet" / "onnxruntime" / stack / "repeat1.json"
    assert [r.status for r in written] == ["failed"] and "Segmentation fault" in written[0].reason
    assert runtimes.runner_crash([path]) == "the onnxruntime runner process failed (exit code 3); log tail:"
    # A runtime's verdict on the export (a failed row) stands; an unreadable record does not.
    runtime_records("onnxruntime", {"rows": [runner_row(stack, "f32", "failed", "cannot load: Loop")]}, None, 1.0,
                    [stack], {}, CASE)["onnxruntime", stack].write(path)
    assert runtimes.runner_crash([path, tmp_path / "absent.json"]) is None
    path.write_text("{}")
    assert runtimes.runner_crash([path]).startswith(f"unreadable record {path}")


def test_a_missing_runtime_environment_gives_skipped_records_naming_it(tmp_path, monkeypatch):
    from dlrosetta import runtimes

    native = tmp_path / "native.json"
    stack = sorted(STACKS)[0]
    (tmp_path / "m.onnx").write_bytes(b"x")
    record(stack, onnx_export={"status": "ok", "path": str(tmp_path / "m.onnx")},
           logits=str(tmp_path / "logits.json")).write(native)
    written = runtimes.infer_onnx(CASE, ["onnxruntime"], {"batch_sizes": [1]}, [native], tmp_path / "shards.json",
                                  tmp_path / "out", tmp_path / "work", tmp_path / "log", tmp_path / "no-venvs", None)
    assert [(r.status, r.engine) for r in written] == [("skipped", "onnxruntime")]
    assert "environment is not built" in written[0].reason and "envs/onnx.txt" in written[0].reason
    assert (tmp_path / "out" / "tiny" / "resnet" / "onnxruntime" / stack / "repeat1.json").is_file()

