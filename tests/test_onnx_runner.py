"""The ONNX-runtime runner (python/dlrosetta/onnx_runner.py): a tiny conv+BN+dense model
on NHWC float32 images, written with onnx's helper API, runs in ONNX Runtime and OpenVINO
to the logits of an independent NumPy forward pass; files that are missing, corrupt, fail
onnx's checker or break the input contract give failed rows naming the file while the
other rows go on; OpenVINO's bf16 row is there where the CPU has bf16, skipped with the
reason where not; the calling loop stops where the contract says. The runtimes live in
.venvs/onnx (the orchestrator .venv has none), so the model is written and the runner
run there, as subprocesses.

Twins: tests/test_inference_mode.py (the stacks' side: export, own logits, timings).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from dlrosetta.checksum import sha256_file
from dlrosetta.launch import default_venvs_dir
from dlrosetta.npy import write_bundle
from dlrosetta.onnx_runner import PRECISIONS, RUNTIMES, run_spec
from dlrosetta.stopwatch import time_calls
from dlrosetta.shards import write_shards

REPO = Path(__file__).resolve().parents[1]
ONNX_PYTHON = default_venvs_dir() / "onnx" / "bin" / "python"
SIZE, CHANNELS, FILTERS, CLASSES, N_TEST = 8, 3, 4, 5, 40
EPS = 1e-5
# Batch 50 > the 40 test samples: the input wraps around the test split.
TIMING = {"batch_sizes": [1, 50], "warmup_calls": 2, "min_calls": 5, "max_calls": 30, "min_seconds": 0.01}
GOOD, UNREADABLE, UNCHECKABLE, MISSING, WRONG_INPUT = (
    "exporter-a", "exporter-b", "exporter-c", "exporter-d", "exporter-e")

# Runs in .venvs/onnx: the model of the weights in argv[1] (npz) on argv[4]-pixel
# images with BN epsilon argv[5], written to argv[2]; argv[3] names its input (the
# contract's is "input").
WRITE_MODEL = r"""
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

weights_npz, out, input_name, size, eps = sys.argv[1:]
w = np.load(weights_npz)
channels = w["conv_w"].shape[1]
nodes = [
    helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]),
    helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["conv", "gamma", "beta", "mean", "var"], ["bn"],
                     epsilon=float(eps)),
    helper.make_node("Relu", ["bn"], ["relu"]),
    helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
    helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
    helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
]
image = ["N", int(size), int(size), channels]
graph = helper.make_graph(
    nodes, "tiny", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, image)],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", w["dense_w"].shape[1]])],
    [numpy_helper.from_array(w[k], k) for k in w.files])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dlrosetta-test",
                          producer_version="0")
onnx.save(model, out)
"""


def tiny_weights(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    f32 = lambda *shape, scale=1.0: (scale * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    return {"conv_w": f32(FILTERS, CHANNELS, 3, 3, scale=0.5), "conv_b": f32(FILTERS, scale=0.1),
            "gamma": 1 + f32(FILTERS, scale=0.1), "beta": f32(FILTERS, scale=0.1), "mean": f32(FILTERS, scale=0.1),
            "var": (0.5 + rng.random(FILTERS)).astype(np.float32), "dense_w": f32(FILTERS, CLASSES),
            "dense_b": f32(CLASSES, scale=0.1)}


def numpy_logits(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The model's forward pass in float64, NHWC throughout (ONNX's conv weights are OIHW)."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.einsum("nhwcij,fcij->nhwf", sliding_window_view(padded, (3, 3), axis=(1, 2)), w["conv_w"])
    bn = (conv + w["conv_b"] - w["mean"]) / np.sqrt(w["var"].astype(np.float64) + EPS) * w["gamma"] + w["beta"]
    return (np.maximum(bn, 0).mean(axis=(1, 2)) @ w["dense_w"] + w["dense_b"]).astype(np.float32)


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def onnx_python() -> str:
    if not ONNX_PYTHON.exists():
        pytest.skip(f"{ONNX_PYTHON} is missing: build it with `.venv/bin/python -m dlrosetta.venv "
                    "--requirements envs/onnx.txt --env-dir .venvs/onnx`")
    return str(ONNX_PYTHON)


def run_in_onnx_env(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([onnx_python(), *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO / "python")})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Shards, the exported files (one good, the others broken each its own way) and the
    exporting stacks' logits bundle, as an inference run leaves them."""
    root = tmp_path_factory.mktemp("onnx_runner")
    rng = np.random.default_rng(0)
    weights = tiny_weights()
    x_test = rng.random((N_TEST, SIZE, SIZE, CHANNELS), dtype=np.float32)
    expected = numpy_logits(x_test, weights)
    y_test = np.where(rng.random(N_TEST) < 0.5, expected.argmax(axis=1), rng.integers(0, CLASSES, N_TEST))
    shards = write_shards(root / "shards", x_test[:8], y_test[:8], x_test, y_test,
                          {"dataset": "tiny-images", "kind": "synthetic-cifar", "num_classes": CLASSES})
    np.savez(root / "weights.npz", **weights)
    good = root / f"{GOOD}.onnx"
    for path, input_name in ((good, "input"), (root / f"{WRONG_INPUT}.onnx", "images")):
        run_in_onnx_env("-c", WRITE_MODEL, str(root / "weights.npz"), str(path), input_name, str(SIZE), str(EPS))
    data = good.read_bytes()
    (root / f"{UNREADABLE}.onnx").write_bytes(b"\xff" * 8 + data[8:])  # no longer a protobuf
    assert data.count(b"Relu") == 1
    (root / f"{UNCHECKABLE}.onnx").write_bytes(data.replace(b"Relu", b"Rulo"))  # parses; no such operator
    stacks = (GOOD, UNREADABLE, UNCHECKABLE, MISSING, WRONG_INPUT)
    logits = write_bundle(root / "logits", "logits", {s: expected for s in stacks},
                          {"stack": GOOD, "model": "resnet", "dataset": "tiny-images"})
    return {"root": root, "shards": shards, "expected": expected, "y_test": y_test, "logits": logits,
            "exports": [{"stack": s, "onnx": str(root / f"{s}.onnx"), "logits": str(logits)} for s in stacks]}


def runner_spec(study: dict, runtime: str, **overrides) -> dict:
    return {"runtime": runtime, "model": "resnet", "dataset": "tiny-images", "shards": str(study["shards"]),
            "threads": 2, **TIMING, "exports": study["exports"],
            "out": str(study["root"] / f"{runtime}.json"), **overrides}


@pytest.fixture(scope="module")
def runner(study):
    """runtime -> the runner's document on the study, run once per runtime."""
    done = {}

    def run(runtime: str) -> dict:
        if runtime not in done:
            spec = runner_spec(study, runtime)
            path = study["root"] / f"{runtime}.spec.json"
            path.write_text(json.dumps(spec))
            run_in_onnx_env("-m", "dlrosetta.onnx_runner", str(path))
            done[runtime] = json.loads(Path(spec["out"]).read_text())
        return done[runtime]

    return run


@pytest.fixture(params=RUNTIMES)
def result(request, runner):
    return runner(request.param)


def rows_of(result: dict, stack: str) -> dict[str, dict]:
    return {r["precision"]: r for r in result["rows"] if r["stack"] == stack}


def test_document_names_runtime_and_every_row(result, study):
    runtime = result["runtime"]
    assert result["runtime_version"] and result["threads"] == 2
    assert (result["model"], result["dataset"]) == ("resnet", "tiny-images")
    assert [(r["stack"], r["precision"]) for r in result["rows"]] == [
        (e["stack"], p) for e in study["exports"] for p in PRECISIONS[runtime]]
    assert len({tuple(r) for r in result["rows"]}) == 1  # every row has the same keys


def test_good_model_gives_the_exporters_logits_and_timings(result, study):
    row = rows_of(result, GOOD)["f32"]
    assert row["status"] == "ok" and row["reason"] is None, row["reason"]
    assert row["checker"] == "ok" and row["opset"] == 17 and row["producer"] == "dlrosetta-test 0"
    assert row["onnx_sha256"] == sha256_file(study["root"] / f"{GOOD}.onnx")
    assert row["agreement"] == 1.0
    assert row["max_abs_logit_diff"] < 1e-5 * max(1.0, float(np.abs(study["expected"]).max()))
    assert row["test_accuracy"] == pytest.approx(np.mean(study["expected"].argmax(axis=1) == study["y_test"]))
    assert row["load_seconds"] > 0
    assert [b["batch_size"] for b in row["batches"]] == TIMING["batch_sizes"]
    for b in row["batches"]:
        assert b["warmup_calls"] == TIMING["warmup_calls"]
        assert TIMING["min_calls"] <= len(b["call_seconds"]) <= TIMING["max_calls"]
        assert all(s > 0 for s in b["call_seconds"])


def test_openvino_bf16_row_follows_the_cpu(runner):
    row = rows_of(runner("openvino"), GOOD)["bf16"]
    if cpu_has_bf16():
        assert row["status"] == "ok", row["reason"]
        # bf16 keeps 8 significant bits: close to the stack's logits, not equal.
        assert 0 < row["max_abs_logit_diff"] < 0.1 and row["agreement"] >= 0.9
        assert len(row["batches"]) == len(TIMING["batch_sizes"])
    else:
        assert row["status"] == "skipped" and "bf16" in row["reason"], row


@pytest.mark.parametrize("stack, says", [(UNREADABLE, "not a readable ONNX model"),
                                         (UNCHECKABLE, "fails onnx's checker"),
                                         (MISSING, "ONNX file not found"),
                                         (WRONG_INPUT, "the export contract says one input 'input'")])
def test_broken_file_fails_its_rows_naming_it(result, study, stack, says):
    rows = [r for r in rows_of(result, stack).values() if r["status"] != "skipped"]
    assert rows
    for row in rows:
        assert row["status"] == "failed" and row["batches"] is None, row
        assert str(study["root"] / f"{stack}.onnx") in row["reason"] and says in row["reason"], row["reason"]


def test_missing_runtime_skips_every_row(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    exports = [{"stack": s, "onnx": str(tmp_path / f"{s}.onnx"), "logits": str(tmp_path / "logits.json")}
               for s in (GOOD, UNREADABLE)]
    spec = {"runtime": "openvino", "model": "resnet", "dataset": "tiny-images", "shards": str(tmp_path / "none"),
            "threads": 1, **TIMING, "exports": exports, "out": str(tmp_path / "out.json")}
    doc = run_spec(spec)
    assert [(r["stack"], r["precision"]) for r in doc["rows"]] == [(s, p) for s in (GOOD, UNREADABLE)
                                                                  for p in ("f32", "bf16")]
    assert all(r["status"] == "skipped" and "openvino cannot run here" in r["reason"] for r in doc["rows"])


class Clock:
    """A run() whose every call takes `seconds` on time.perf_counter's clock, faked."""

    def __init__(self, monkeypatch, seconds: float):
        self.now, self.seconds, self.calls = 0.0, seconds, 0
        monkeypatch.setattr("dlrosetta.stopwatch.time.perf_counter", lambda: self.now)

    def __call__(self, inputs):
        self.calls += 1
        self.now += self.seconds
        return inputs


# Calls of a power-of-two length sum exactly: 0.25 s calls reach 2 s at the 8th call.
@pytest.mark.parametrize("seconds, expected", [(0.25, 8), (1 / 64, 20), (1.0, 5)])
def test_time_calls_stops_at_min_calls_and_min_seconds_or_max_calls(monkeypatch, seconds, expected):
    run = Clock(monkeypatch, seconds)
    times = time_calls(run, np.zeros(1), warmup_calls=3, min_calls=5, max_calls=20, min_seconds=2.0)
    assert times == [seconds] * expected and run.calls == 3 + expected
