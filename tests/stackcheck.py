"""Shared by the stack tests of every language: run a stack as the launcher would, check
a record, and an independent NumPy float64 forward pass to compare first losses with.

Twins: julia/stacks/julia-native/test/runtests.jl and r/stacks/r-keras/tests/testthat/ test
the stacks from inside.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from dlrosetta.launch import RuntimeMissing, default_venvs_dir, resolve_command
from dlrosetta.model_spec import model_spec, resnet_blocks
from dlrosetta.checksum import sha256_file
from dlrosetta.record import Record
from dlrosetta.registry import STACKS
from dlrosetta.runspec import RunSpec
from dlrosetta.shards import read_shards
from dlrosetta.order import epoch_batches
from dlrosetta.stacks.train import load_inputs
from dlrosetta.threads import thread_env

VENVS = default_venvs_dir()
TIMEOUT_S = 600


def command_or_skip(stack_id: str) -> tuple[list[str], dict[str, str]]:
    """The stack's command line and environment, resolved exactly as the launcher does;
    skips the test, naming what is missing, where the stack cannot run."""
    try:
        return resolve_command(STACKS[stack_id], VENVS)
    except RuntimeMissing as e:
        pytest.skip(f"{stack_id} cannot run here: {e}")


def run_stack_command(spec: RunSpec, command: list[str], extra_env: dict[str, str]) -> dict:
    """Run a stack's command (as resolve_command gives it) on the spec, with the
    launcher's environment but writing no record; returns what it wrote to the spec's
    measurements path."""
    spec_path = Path(spec.measurements).with_suffix(".spec.json")
    spec.write(spec_path)
    out = subprocess.run([*command, str(spec_path)], env={**os.environ, **thread_env(spec.threads), **extra_env},
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, f"{spec.stack} ({spec.check or 'training'}) failed:\n{out.stderr[-3000:]}"
    return json.loads(Path(spec.measurements).read_text())


def run_check(spec: RunSpec) -> dict:
    """Run a stack in check mode (which writes no record, so not through the launcher)."""
    check = run_stack_command(spec, *command_or_skip(spec.stack))
    assert check["check"] == "step_losses" and check["stack"] == spec.stack
    return check


def assert_ok_record(record: Record, spec: RunSpec, threads: int) -> None:
    """What every stack's two-epoch record must say, whatever its language."""
    stack = STACKS[spec.stack]
    assert record.status == "ok", record.reason
    assert (record.language, record.framework, record.backend) == (stack.language, stack.framework, stack.backend)
    assert record.parameter_count == model_spec(spec.model, spec.model_config).parameter_count
    assert record.threads == threads and record.device == "cpu"
    assert len(record.epoch_seconds) == len(record.train_loss_per_epoch) == len(record.test_accuracy_per_epoch) \
        == spec.epochs
    assert record.test_accuracy == record.test_accuracy_per_epoch[-1] and record.eval_seconds >= 0
    assert record.warmup_epoch_seconds == record.epoch_seconds[0]
    assert record.steady_epoch_seconds == pytest.approx(np.mean(record.epoch_seconds[1:]))
    n_train = len(read_shards(spec.shards).y_train)
    assert record.train_samples_per_epoch == n_train // spec.batch_size * spec.batch_size
    assert record.shards_sha256 == read_shards(spec.shards).manifest_sha256
    assert record.initial_weights_sha256 == sha256_file(spec.initial_weights)
    assert all(np.isfinite(record.train_loss_per_epoch)) and 0 <= record.test_accuracy <= 1
    assert record.run_seconds >= record.startup_seconds > 0 and record.peak_rss_mb > 0
    assert isinstance(record.fused_kernel, bool) and record.kernel_notes


# --- NumPy reference forward passes (float64), training mode: BN uses batch statistics.

def conv(x, kernel, stride):
    """NHWC x HWIO, zero padding (k-1)/2 on every side (docs/models.md)."""
    k = kernel.shape[0]
    p = k // 2
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    windows = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel)


def batch_norm(x, w, name):
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    return (x - mean) / np.sqrt(var + 1e-5) * w[f"{name}.gamma"] + w[f"{name}.beta"]


def resnet_logits(w, cfg, x):
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    x = relu(batch_norm(conv(x, w["stem.conv.kernel"], 1), w, "stem.bn"))
    for b in resnet_blocks(cfg["depth"], cfg["width"]):
        y = relu(batch_norm(conv(x, w[f"{b.name}.conv1.kernel"], b.stride), w, f"{b.name}.bn1"))
        y = batch_norm(conv(y, w[f"{b.name}.conv2.kernel"], 1), w, f"{b.name}.bn2")
        if not b.reshapes:
            shortcut = x
        elif cfg["shortcut"] == "A":
            side = (b.cout - b.cin) // 2
            shortcut = np.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (side, side)))
        else:
            shortcut = batch_norm(conv(x, w[f"{b.name}.shortcut.conv.kernel"], 2), w, f"{b.name}.shortcut.bn")
        x = relu(y + shortcut)
    return x.mean(axis=(1, 2)) @ w["head.dense.kernel"] + w["head.dense.bias"]


def lstm_logits(w, tokens):
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    units = w["lstm.recurrent_kernel"].shape[0]
    h = c = np.zeros((len(tokens), units))
    for t in range(tokens.shape[1]):
        z = w["embedding.embeddings"][tokens[:, t]] @ w["lstm.kernel"] + h @ w["lstm.recurrent_kernel"] + w["lstm.bias"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    return h @ w["head.dense.kernel"] + w["head.dense.bias"]


def cross_entropy(logits, labels):
    m = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(log_z - logits[np.arange(len(labels)), labels]))


def first_batch_loss(spec: RunSpec) -> float:
    """The loss of epoch 0's first batch under the spec's initial weights."""
    _, weights, shards, order = load_inputs(spec)
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    idx = epoch_batches(order, 0, spec.batch_size)[0]
    x, y = shards.x_train[idx], shards.y_train[idx]
    logits = resnet_logits(w, spec.model_config, x.astype(np.float64)) if spec.model == "resnet" else lstm_logits(w, x)
    return cross_entropy(logits, y)
