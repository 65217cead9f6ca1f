"""Trained weights and inference mode (docs/stack-contract.md, "Trained weights",
"Inference mode") in every stack of the registry, each run as the launcher runs it: a
training run keeps its final weights as a valid canonical bundle; inference mode writes
the contract's keys and timings; every stack evaluating the bundle trained by the first
Python stack available gives that stack's logits; a corrupt or missing bundle stops a
stack, naming the file; an exported ONNX file passes onnx.checker (and, where
onnxruntime is there too, gives the stack's logits).

Twins: tests/test_cross_stack.py (the same forward pass, from initial weights),
       tests/test_profile_mode.py (the other check mode in every stack).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from conftest import tiny_run_factory
from dlrosetta.launch import RuntimeMissing, resolve_command
from dlrosetta.model_spec import model_spec
from dlrosetta.npy import read_bundle
from dlrosetta.registry import STACKS
from dlrosetta.runspec import RunSpec
from dlrosetta.shards import read_shards
from dlrosetta.threads import thread_env
from dlrosetta.weights import read_initial_weights
from stackcheck import TIMEOUT_S, VENVS, command_or_skip, run_stack_command

INFERENCE_KEYS = {"check", "stack", "model", "dataset", "language_version", "framework_version", "device",
                  "parameter_count", "startup_seconds", "peak_rss_mb", "batches", "logits", "onnx_export"}
# Batch 20 > the 16 test samples: the input wraps around the test split.
TIMING = {"batch_sizes": [1, 20], "warmup_calls": 1, "min_calls": 2, "max_calls": 4, "min_seconds": 0.01}
MODELS = ["resnet", "lstm"]


def assert_same_logits(got: np.ndarray, expected: np.ndarray) -> None:
    """Two frameworks' float32 forward passes of the same weights agree to rounding: each
    logit sums thousands of products in its own order (oneDNN, XLA, Eigen blockings), so
    they differ by a few float32 ulps of the terms' magnitude, far below 1e-5 relative.
    rtol is that 1e-5; atol, 1e-5 of the largest logit, covers logits near zero, whose
    relative error says nothing (their absolute error is that of the large ones)."""
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


@cache
def reference_stack() -> Optional[str]:
    """The first Python stack of the registry whose runtime is here: it trains the bundle
    every stack evaluates."""
    for stack in STACKS.values():
        if stack.language == "python":
            try:
                resolve_command(stack, VENVS)
                return stack.id
            except RuntimeMissing:
                continue
    return None


@dataclass(frozen=True)
class Runs:
    """A stack's training run with trained_weights, then its inference run on its own
    bundle, evaluating it and the reference stack's."""
    training: RunSpec
    inference_spec: RunSpec
    inference: dict

    @property
    def bundle(self) -> Path:
        return Path(self.training.trained_weights) / "manifest.json"

    def logits(self) -> dict[str, np.ndarray]:
        return read_bundle(self.inference["logits"], "logits")[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(stack, model) -> Runs, each run once for the module's tests."""
    root = tmp_path_factory.mktemp("inference")
    make = tiny_run_factory(root)
    done: dict[tuple[str, str], Runs] = {}

    def get(stack_id: str, model: str) -> Runs:
        if (stack_id, model) in done:
            return done[stack_id, model]
        command = command_or_skip(stack_id)
        reference = reference_stack()
        evaluate = {} if stack_id == reference else {reference: get(reference, model).bundle}
        out = root / f"{model}-{stack_id}"
        training = make(model, stack=stack_id, trained_weights=str(out / "trained"))
        run_stack_command(training, *command)
        evaluate[stack_id] = Path(training.trained_weights) / "manifest.json"
        spec = make(model, stack=stack_id, check="inference", initial_weights=str(evaluate[stack_id]),
                    inference={**TIMING, "evaluate": [{"stack": s, "weights": str(w)} for s, w in evaluate.items()],
                               "logits": str(out / "logits"), "onnx": str(out / "model.onnx")})
        done[stack_id, model] = Runs(training, spec, run_stack_command(spec, *command))
        return done[stack_id, model]

    return get


@pytest.mark.parametrize("stack_id", list(STACKS))
@pytest.mark.parametrize("model", MODELS)
def test_training_keeps_its_final_weights_as_a_canonical_bundle(runs, model, stack_id):
    r = runs(stack_id, model)
    spec = r.training
    mspec = model_spec(model, spec.model_config)
    trained = read_initial_weights(r.bundle, mspec)  # checksums, names and shapes
    assert list(trained) == mspec.names() and all(a.dtype == np.float32 for a in trained.values())
    meta = read_bundle(r.bundle, "weights")[1]["meta"]
    assert meta == {"model": model, "model_config": dict(spec.model_config), "seed": spec.init_seed,
                    "parameter_count": mspec.parameter_count, "stack": stack_id, "dataset": spec.dataset,
                    "epochs": spec.epochs, "trained": True}
    initial = read_initial_weights(spec.initial_weights, mspec)
    assert not np.array_equal(trained["head.dense.kernel"], initial["head.dense.kernel"])
    if model == "resnet":  # the moving statistics are kept too, as training left them
        stats = [p.name for p in mspec.params if not p.trainable]
        assert all(not np.array_equal(trained[n], initial[n]) for n in stats)


@pytest.mark.parametrize("stack_id", list(STACKS))
@pytest.mark.parametrize("model", MODELS)
def test_inference_mode_writes_the_contracts_keys_and_timings(runs, model, stack_id):
    r = runs(stack_id, model)
    out = r.inference
    assert set(out) == INFERENCE_KEYS
    assert (out["check"], out["stack"], out["model"], out["dataset"]) == \
        ("inference", stack_id, model, r.inference_spec.dataset)
    assert out["parameter_count"] == model_spec(model, r.training.model_config).parameter_count
    assert out["startup_seconds"] > 0 and out["peak_rss_mb"] > 0 and out["device"]
    assert [b["batch_size"] for b in out["batches"]] == TIMING["batch_sizes"]
    for b in out["batches"]:
        assert b["warmup_calls"] == TIMING["warmup_calls"]
        assert TIMING["min_calls"] <= len(b["call_seconds"]) <= TIMING["max_calls"]
        assert all(s > 0 for s in b["call_seconds"])
    arrays, manifest = read_bundle(out["logits"], "logits")
    assert manifest["meta"] == {"stack": stack_id, "model": model, "dataset": r.inference_spec.dataset}
    n_test, classes = len(read_shards(r.training.shards).y_test), r.training.model_config["num_classes"]
    assert {e["stack"] for e in r.inference_spec.inference["evaluate"]} == set(arrays)
    assert all(a.shape == (n_test, classes) and a.dtype == np.float32 for a in arrays.values())


@pytest.mark.parametrize("stack_id", list(STACKS))
@pytest.mark.parametrize("model", MODELS)
def test_every_stack_evaluates_the_reference_bundle_to_the_reference_logits(runs, model, stack_id):
    r = runs(stack_id, model)
    reference = reference_stack()
    expected = runs(reference, model).logits()[reference]
    assert_same_logits(r.logits()[reference], expected)


def run_failing(spec: RunSpec, stack_id: str) -> str:
    """Run the stack on a spec it must refuse; its output (stdout and stderr)."""
    command, env = command_or_skip(stack_id)
    path = Path(spec.measurements).with_suffix(".spec.json")
    spec.write(path)
    out = subprocess.run([*command, str(path)], env={**os.environ, **thread_env(spec.threads), **env},
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0, f"{stack_id} accepted {spec.inference['evaluate']}"
    return out.stdout + out.stderr


@pytest.mark.parametrize("stack_id", list(STACKS))
def test_a_corrupt_or_missing_bundle_stops_the_stack_naming_the_file(tiny_run, tmp_path, stack_id):
    weights = Path(tiny_run("lstm").initial_weights)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for f in weights.parent.iterdir():
        (corrupt / f.name).write_bytes(f.read_bytes())
    npy = corrupt / "lstm.kernel.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0x01  # one byte of one array: its sha256 no longer matches the manifest
    npy.write_bytes(bytes(data))
    missing = tmp_path / "missing" / "manifest.json"
    for bundle, named in [(corrupt / "manifest.json", npy), (missing, missing)]:
        spec = tiny_run("lstm", stack=stack_id, check="inference",
                        inference={**TIMING, "evaluate": [{"stack": "other", "weights": str(bundle)}],
                                   "logits": str(tmp_path / "logits"), "onnx": None})
        assert str(named) in run_failing(spec, stack_id)


@cache
def onnx_python() -> Optional[str]:
    """An interpreter that imports onnx: this one, or the ONNX runtimes' environment."""
    for python in (sys.executable, str(VENVS / "onnx" / "bin" / "python")):
        if Path(python).exists() and subprocess.run([python, "-c", "import onnx"], capture_output=True).returncode == 0:
            return python
    return None


# Checks the file (full check: shape inference included) and, where onnxruntime is
# importable, writes its logits of the given input.
ONNX_CHECK = """
import sys
import numpy as np
import onnx
model, x, out = sys.argv[1:]
onnx.checker.check_model(model, full_check=True)
try:
    import onnxruntime
except ImportError:
    sys.exit(0)
session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
np.save(out, session.run(["logits"], {"input": np.load(x)})[0])
"""


@pytest.mark.parametrize("stack_id", list(STACKS))
@pytest.mark.parametrize("model", MODELS)
def test_the_onnx_export_passes_the_checker(runs, model, stack_id, tmp_path):
    r = runs(stack_id, model)
    export = r.inference["onnx_export"]
    if export["status"] == "unsupported":
        pytest.skip(f"{stack_id} cannot export the {model} to ONNX: {export['reason']}")
    assert export["status"] == "ok", export["reason"]
    assert export["exporter"] and export["opset"] >= 7 and export["seconds"] > 0
    python = onnx_python()
    if python is None:
        pytest.skip(f"no interpreter here imports onnx (tried {sys.executable}, {VENVS / 'onnx'})")
    x_test = tmp_path / "x_test.npy"
    np.save(x_test, read_shards(r.training.shards).x_test)
    ort_logits = tmp_path / "ort_logits.npy"
    check = subprocess.run([python, "-c", ONNX_CHECK, r.inference_spec.inference["onnx"], str(x_test),
                            str(ort_logits)], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert check.returncode == 0, check.stderr[-3000:]
    if ort_logits.exists():  # the exported model computes the stack's own logits
        assert_same_logits(np.load(ort_logits), r.logits()[stack_id])

