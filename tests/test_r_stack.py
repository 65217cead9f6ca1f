"""The r-keras stack (r/inst/run_stack.R: R driving Keras through reticulate) run as the
launcher runs it: check mode's first loss equals an independent NumPy forward pass of
the same weights on the same batch, its step losses equal the Python Keras stack's on
the same backend, and a two-epoch run leaves a valid ok record with the canonical
parameter count."""
import json
import os
import subprocess

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from dlrosetta.launch import RuntimeMissing, default_venvs_dir, launch, resolve_command
from dlrosetta.models.spec import model_spec, resnet_blocks_per_stage
from dlrosetta.npybundle import sha256_file
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS
from dlrosetta.shards import read_shards
from dlrosetta.stacks.base import epoch_batches, load_inputs
from dlrosetta.threads import thread_env

VENVS = default_venvs_dir()
TIMEOUT_S = 300


def stack_command(stack_id):
    """A stack's command line and environment, resolved exactly as the launcher does."""
    try:
        return resolve_command(STACKS[stack_id], VENVS)
    except RuntimeMissing as e:
        pytest.skip(f"{stack_id} cannot run here: {e}")


@pytest.fixture(scope="module")
def r_keras_command():
    return stack_command("r-keras")


def check_losses(command_env, spec, spec_path):
    """Run a stack in check mode (the launcher expects a record, so it is run directly)."""
    command, extra_env = command_env
    spec.write(spec_path)
    env = {**os.environ, **thread_env(spec.threads), **extra_env}
    out = subprocess.run([*command, str(spec_path)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-3000:]
    check = json.loads(open(spec.record).read())
    assert check["check"] == "step_losses" and check["stack"] == spec.stack
    return check


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
    n = resnet_blocks_per_stage(cfg["depth"])
    for stage in range(1, 4):
        for block in range(1, n + 1):
            b = f"stage{stage}.block{block}"
            stride = 2 if stage > 1 and block == 1 else 1
            y = relu(batch_norm(conv(x, w[f"{b}.conv1.kernel"], stride), w, f"{b}.bn1"))
            y = batch_norm(conv(y, w[f"{b}.conv2.kernel"], 1), w, f"{b}.bn2")
            if stride == 1:
                shortcut = x
            elif cfg["shortcut"] == "A":
                side = (y.shape[-1] - x.shape[-1]) // 2
                shortcut = np.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (side, side)))
            else:
                shortcut = batch_norm(conv(x, w[f"{b}.shortcut.conv.kernel"], 2), w, f"{b}.shortcut.bn")
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


def first_batch_loss(spec):
    _, weights, shards, order = load_inputs(spec)
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    idx = epoch_batches(order, 0, spec.batch_size)[0]
    x, y = shards.x_train[idx], shards.y_train[idx]
    logits = resnet_logits(w, spec.model_config, x.astype(np.float64)) if spec.model == "resnet" else lstm_logits(w, x)
    return cross_entropy(logits, y)


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_check_mode_first_loss_is_the_reference_forward_pass(r_keras_command, tiny_run, tmp_path, model):
    spec = tiny_run(model, stack="r-keras", check="step_losses", check_steps=2)
    check = check_losses(r_keras_command, spec, tmp_path / "spec.json")
    assert len(check["losses"]) == 2
    assert check["parameter_count"] == model_spec(model, spec.model_config).parameter_count
    assert check["losses"][0] == pytest.approx(first_batch_loss(spec), rel=1e-4)
    assert check["losses"][1] != check["losses"][0]  # the first step changed the weights


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_step_losses_are_the_python_keras_stacks(r_keras_command, tiny_run, tmp_path, model):
    """Same Keras, same backend, same optimiser, weights and batches: R adds no numerical
    difference (Keras's own Adam on TensorFlow's sparse embedding gradient would, by 4e-5)."""
    python_keras = stack_command("keras-tensorflow")
    r = check_losses(r_keras_command, tiny_run(model, stack="r-keras", check="step_losses", check_steps=3),
                     tmp_path / "r.json")
    py = check_losses(python_keras, tiny_run(model, stack="keras-tensorflow", check="step_losses", check_steps=3),
                      tmp_path / "py.json")
    assert r["parameter_count"] == py["parameter_count"]
    assert r["losses"] == pytest.approx(py["losses"], rel=1e-6)


@pytest.mark.parametrize("model", ["resnet", "lstm"])
def test_two_epochs_write_a_valid_ok_record(r_keras_command, tiny_run, tmp_path, model):
    spec = tiny_run(model, stack="r-keras", threads=2)
    record = launch(spec, tmp_path / "record.json", tmp_path / "run", tmp_path / "r-keras.log", VENVS,
                    timeout_s=TIMEOUT_S)
    assert record.status == "ok", record.reason
    data = json.loads((tmp_path / "record.json").read_text())
    validate_record_dict(data)
    assert Record.read(tmp_path / "record.json") == record
    assert (record.language, record.framework, record.backend) == ("r", "keras", "tensorflow")
    assert record.parameter_count == model_spec(model, spec.model_config).parameter_count
    assert record.threads == 2 and record.device == "cpu"
    assert len(record.epoch_seconds) == len(record.train_loss_per_epoch) == 2
    assert record.warmup_epoch_seconds == record.epoch_seconds[0]
    assert record.steady_epoch_seconds == record.epoch_seconds[1]
    assert record.train_samples_per_epoch == 48
    assert record.shards_sha256 == read_shards(spec.shards).manifest_sha256
    assert record.initial_weights_sha256 == sha256_file(spec.initial_weights)
    assert all(np.isfinite(record.train_loss_per_epoch)) and 0 <= record.test_accuracy <= 1
