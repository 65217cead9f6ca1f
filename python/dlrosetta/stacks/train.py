"""The loop every Python stack shares; frameworks supply a Trainer.

It writes raw measurements (dlrosetta.measurements); the launcher derives the record.
What is timed (docs/stack-contract.md): each epoch's wall seconds from its first batch
gather to the synchronised mean loss, covering data gathering, forward, backward and the
optimiser step. Every epoch is reported, the first (graph tracing, XLA/JIT compile,
allocator warm-up) included. After every epoch the whole test split is evaluated in
inference mode, outside the epoch's stopwatch and timed on its own (time to accuracy);
after the last, the trained weights are kept when the spec asks (a canonical weights
bundle). Check mode runs the first steps alone; profile mode times blocks of steps with
and without the framework's profiler and keeps its trace (profile()); inference mode
times forward calls, evaluates other stacks' trained weights and exports ONNX (infer()).

Twins: r/stacks/r-keras/R/train.R, julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

import abc
import importlib
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from dlrosetta.measurements import write_json_atomic, write_measurements
from dlrosetta.model_spec import RESNET, ModelSpec, initial_weights, model_spec
from dlrosetta.npy import write_bundle
from dlrosetta.order import epoch_batches, profile_blocks, read_order
from dlrosetta.profiler import trace_block, xla_dump_flags
from dlrosetta.runspec import RunSpec
from dlrosetta.stopwatch import Stopwatch, peak_rss_mb, process_age_seconds, time_calls
from dlrosetta.shards import Shards, read_shards
from dlrosetta.weights import read_initial_weights, write_trained_weights

#: Test samples per predict() call when the whole split is evaluated: bounds the
#: activations' memory on any device.
EVAL_BATCH = 1000
#: Characters of an export's traceback kept as its failure reason.
REASON_TAIL = 2000


class ExportUnsupported(Exception):
    """The framework cannot write this model as ONNX; the message says why."""


class Trainer(abc.ABC):
    """One framework's model, optimiser and steps. Built with the canonical weights: the
    constructor builds the model and hands them to load_weights, the one path by which
    weights enter it (initial, trained or another stack's)."""

    framework: str
    backend: Optional[str] = None
    #: Whose profiler traces profile mode (dlrosetta.profiler): the framework that runs the ops.
    profiler: str
    #: Whether the hot kernels are fused library kernels (oneDNN/cuDNN-class LSTM and
    #: convolution) rather than composed ops; kernel_notes says which.
    fused_kernel: Optional[bool] = None
    kernel_notes: Optional[str] = None

    def __init__(self, spec: RunSpec, model: ModelSpec, weights: dict[str, np.ndarray]):
        self.spec = spec
        self.model = model

    @abc.abstractmethod
    def framework_version(self) -> str: ...

    @abc.abstractmethod
    def device_name(self) -> str: ...

    @abc.abstractmethod
    def parameter_count(self) -> int:
        """Trainable parameters as the framework counts them."""

    @abc.abstractmethod
    def train_epoch(self, batches: np.ndarray) -> float:
        """One optimiser step per row of training indices; returns the mean loss
        (synchronised, so the time includes all the work)."""

    # --- what every framework supplies beyond training. Not abstract, so a stand-in
    # Trainer that only trains (the tests have some) still builds; a real one overrides each.

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Take the training split once, in the layout and on the device the framework prefers."""
        raise self._missing("set_train_data")

    def canonical_weights(self) -> dict[str, np.ndarray]:
        """Every tensor of self.model (BN moving statistics included) as it is now, in
        the canonical layout, float32, in spec order (in_spec_order)."""
        raise self._missing("canonical_weights")

    def load_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set every tensor of the model from canonical weights (names and shapes of
        self.model: read_initial_weights checked them)."""
        raise self._missing("load_weights")

    def inference_input(self, x: np.ndarray) -> Any:
        """The shards' host array (NHWC float32 images, int32 tokens) as the input
        predict() takes, on the framework's device: made once, outside any timing."""
        raise self._missing("inference_input")

    def predict(self, inputs: Any) -> np.ndarray:
        """Logits [n, classes] as a float32 host array (so the work is done when it
        returns), in inference mode: BN moving statistics. Leaves training exactly as it
        was: no statistic, optimiser state or random stream updated, the mode restored."""
        raise self._missing("predict")

    def export_onnx(self, path: str) -> dict:
        """Write the model with its current weights as ONNX (docs/stack-contract.md,
        "Inference mode"): input `input` in the shards' layout and dtype, output
        `logits`, batch dimension dynamic, inference mode. Returns {"exporter": name and
        version, "opset": int}; raises ExportUnsupported(reason) where the framework cannot."""
        raise self._missing("export_onnx")

    def _missing(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not implement Trainer.{method}")

    # --- shared by every framework

    def in_spec_order(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Canonical arrays as canonical_weights returns them: spec order, float32,
        each shape checked against the model spec."""
        out = {}
        for p in self.model.params:
            a = np.ascontiguousarray(arrays[p.name], np.float32)
            if a.shape != p.shape:
                raise ValueError(f"{self.framework}: {p.name} has shape {a.shape}, the model spec says {p.shape}")
            out[p.name] = a
        return out

    def sample_input(self, batch: int) -> np.ndarray:
        """Zeros of `batch` samples in the shards' layout and dtype (tracing, exports)."""
        c = self.spec.model_config
        if self.model.model == RESNET:
            size = c.get("image_size", 32)
            return np.zeros((batch, size, size, c.get("channels", 3)), np.float32)
        return np.zeros((batch, c["maxlen"]), np.int32)

    def set_data(self, shards: Shards) -> None:
        """The training split, and the test split as inference inputs of EVAL_BATCH samples."""
        self.set_train_data(shards.x_train, shards.y_train)
        self.set_test_data(shards.x_test, shards.y_test)

    def set_test_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.test_inputs = [self.inference_input(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)]
        self.y_test = np.asarray(y)

    def test_logits(self) -> np.ndarray:
        """Logits of the whole test split, rows in its order, inference mode."""
        return np.concatenate([self.predict(x) for x in self.test_inputs])

    def evaluate(self) -> float:
        """Accuracy on the whole test split. Called between epochs; predict() leaves
        training as it was."""
        return float(np.mean(self.test_logits().argmax(axis=1) == self.y_test))


def pick_accelerator(requested: str, visible: Optional[str], framework: str) -> Optional[str]:
    """The accelerator to train on (its name), or None for the CPU. `visible` is the
    first accelerator the framework sees, if any: "auto" takes it, "gpu" fails without
    one (the launcher records the failure), "cpu" never uses it."""
    if requested == "cpu":
        return None
    if visible is None and requested == "gpu":
        raise RuntimeError(f"the run spec asks for a GPU, but {framework} sees none")
    return visible


def load_model(spec: RunSpec) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The model spec and its starting weights: the spec's bundle, or drawn by init_seed."""
    model = model_spec(spec.model, spec.model_config)
    return model, (read_initial_weights(spec.initial_weights, model) if spec.initial_weights
                   else initial_weights(model, spec.init_seed))


def load_inputs(spec: RunSpec) -> tuple[ModelSpec, dict, Shards, np.ndarray]:
    model, weights = load_model(spec)
    shards = read_shards(spec.shards)
    return model, weights, shards, read_order(spec.order, spec.epochs, len(shards.y_train))


def profile(spec: RunSpec, trainer: Trainer, order: np.ndarray) -> None:
    """Profile mode (docs/profile.md): a warm-up block of steps (compilation,
    allocation; not timed), the next block timed plain, the last timed under the
    profiler, whose trace is written beside the profile JSON. The clock runs inside the
    profiler's block, so its start, stop and export are not timed."""
    warm_up, plain, traced = profile_blocks(order, spec.batch_size, spec.check_steps)
    trainer.train_epoch(warm_up)
    with Stopwatch() as unprofiled:
        trainer.train_epoch(plain)
    with trace_block(trainer.profiler, Path(spec.measurements).parent) as block:
        with Stopwatch() as profiled:
            trainer.train_epoch(traced)
    write_json_atomic(spec.measurements, {
        "check": spec.check, "stack": spec.stack, "model": spec.model, "steps": spec.check_steps,
        "profiler": block.profiler, "unprofiled_seconds": unprofiled.seconds, "profiled_seconds": profiled.seconds,
        "trace": block.trace, "parameter_count": trainer.parameter_count(),
        "framework_version": trainer.framework_version()})


def export(trainer: Trainer, path: str) -> dict:
    """The `onnx_export` entry: ok with exporter, opset and seconds; unsupported where the
    framework cannot; failed with the error's tail (also printed for the log) otherwise."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with Stopwatch() as sw:
            done = trainer.export_onnx(path)
    except ExportUnsupported as e:
        return {"status": "unsupported", "reason": str(e)}
    except Exception:
        error = traceback.format_exc()
        print(error, file=sys.stderr, flush=True)
        return {"status": "failed", "reason": error[-REASON_TAIL:]}
    return {"status": "ok", "exporter": done["exporter"], "opset": int(done["opset"]), "seconds": sw.seconds}


def infer(spec: RunSpec, trainer: Trainer, weights: dict[str, np.ndarray], shards: Shards) -> None:
    """Inference mode (docs/stack-contract.md): time forward calls per batch size,
    compute the test logits of each bundle to evaluate, export ONNX with the stack's own
    weights; then write the inference document to the measurements path."""
    inference = spec.inference
    startup = process_age_seconds()
    n_test = len(shards.y_test)
    batches = []
    for batch_size in inference["batch_sizes"]:
        inputs = trainer.inference_input(shards.x_test[np.arange(batch_size) % n_test])
        seconds = time_calls(trainer.predict, inputs, inference["warmup_calls"], inference["min_calls"],
                             inference["max_calls"], inference["min_seconds"])
        batches.append({"batch_size": batch_size, "warmup_calls": inference["warmup_calls"],
                        "call_seconds": seconds})
        del inputs  # freed before the next batch size's input is made

    logits = None
    if inference["evaluate"]:
        trainer.set_test_data(shards.x_test, shards.y_test)
        evaluated = {}
        for entry in inference["evaluate"]:
            trainer.load_weights(read_initial_weights(entry["weights"], trainer.model))
            evaluated[entry["stack"]] = np.asarray(trainer.test_logits(), np.float32)
        logits = str(write_bundle(inference["logits"], "logits", evaluated,
                                  {"stack": spec.stack, "model": spec.model, "dataset": spec.dataset}))

    onnx_export = None
    if inference["onnx"]:
        trainer.load_weights(weights)
        onnx_export = export(trainer, inference["onnx"])

    write_json_atomic(spec.measurements, {
        "check": spec.check, "stack": spec.stack, "model": spec.model, "dataset": spec.dataset,
        "language_version": platform.python_version(), "framework_version": trainer.framework_version(),
        "device": trainer.device_name(), "parameter_count": trainer.parameter_count(),
        "startup_seconds": startup, "peak_rss_mb": peak_rss_mb(), "batches": batches, "logits": logits,
        "onnx_export": onnx_export})


def epoch_line(stack: str, epochs: int, epoch_seconds: list[float], eval_seconds: list[float], loss: float,
               accuracy: float, samples: int) -> str:
    """The progress line printed after each epoch (docs/stack-contract.md, "The epoch
    line"; `dlrosetta status` reads it). Time left: the epochs left times the mean epoch
    plus the mean evaluation so far, each over the epochs after the first once there are two."""
    def per(xs: list[float]) -> float:
        return sum(xs[1:]) / (len(xs) - 1) if len(xs) > 1 else xs[0]
    done, seconds = len(epoch_seconds), epoch_seconds[-1]
    left = (epochs - done) * (per(epoch_seconds) + per(eval_seconds))
    rate = samples / seconds if seconds > 0 else float("inf")
    return (f"[{stack}] epoch {done}/{epochs}: {seconds:.2f} s, loss {loss:.4f}, {rate:.0f} samples/s, "
            f"test accuracy {accuracy:.4f}, run time left ~{left:.0f} s")


def run(spec: RunSpec, trainer_cls: type[Trainer]) -> None:
    if spec.check == "inference":  # no training data, no epoch order
        model, weights = load_model(spec)
        shards = read_shards(spec.shards)
        infer(spec, trainer_cls(spec, model, weights), weights, shards)
        return
    model, weights, shards, order = load_inputs(spec)
    trainer = trainer_cls(spec, model, weights)
    trainer.set_data(shards)

    if spec.check == "step_losses":
        batches = epoch_batches(order, 0, spec.batch_size)[: spec.check_steps]
        losses = [trainer.train_epoch(batches[i : i + 1]) for i in range(len(batches))]
        write_json_atomic(spec.measurements, {"check": spec.check, "stack": spec.stack,
                                        "losses": losses,
                                        "parameter_count": trainer.parameter_count()})
        return
    if spec.check == "profile":
        profile(spec, trainer, order)
        return

    startup = process_age_seconds()
    epoch_seconds, losses, accuracies, eval_seconds = [], [], [], []
    for epoch in range(spec.epochs):
        batches = epoch_batches(order, epoch, spec.batch_size)
        with Stopwatch() as sw:
            losses.append(float(trainer.train_epoch(batches)))
        epoch_seconds.append(sw.seconds)
        with Stopwatch() as ev:
            accuracies.append(float(trainer.evaluate()))
        eval_seconds.append(ev.seconds)
        print(epoch_line(spec.stack, spec.epochs, epoch_seconds, eval_seconds, losses[-1], accuracies[-1],
                         batches.size), file=sys.stderr, flush=True)

    if spec.trained_weights is not None:
        write_trained_weights(spec.trained_weights, spec, model, trainer.canonical_weights(),
                              trainer.parameter_count())
    write_measurements(spec.measurements, "ok", spec.stack, spec.model, spec.dataset,
                       language_version=platform.python_version(),
                       framework_version=trainer.framework_version(), device=trainer.device_name(),
                       parameter_count=trainer.parameter_count(), epoch_seconds=epoch_seconds,
                       train_loss_per_epoch=losses, test_accuracy_per_epoch=accuracies,
                       eval_seconds_per_epoch=eval_seconds, startup_seconds=startup, peak_rss_mb=peak_rss_mb(),
                       fused_kernel=trainer.fused_kernel, kernel_notes=trainer.kernel_notes)


def main(trainer_path: str, argv: Optional[list[str]] = None) -> None:
    """Entry point of a Python stack: `python -m dlrosetta.stacks.<fw> run-spec.json`.

    The framework is imported here, lazily, so that a missing library becomes a
    `skipped` record with the reason instead of a crash; anything else that goes wrong
    propagates, and the launcher records it as `failed` with the error's tail.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit(f"usage: python -m dlrosetta.stacks.<framework> RUN_SPEC.json (got {argv})")
    spec = RunSpec.read(argv[0])
    if spec.check == "profile":  # before the framework loads: XLA reads its flags once
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla_dump_flags(Path(spec.measurements).parent)}"
    module_name, cls_name = trainer_path.split(":")
    try:
        trainer_cls = getattr(importlib.import_module(module_name), cls_name)
    except ModuleNotFoundError as e:
        reason = f"{e.name} is not installed in this stack's environment ({sys.executable}): {e}"
        write_measurements(spec.measurements, "skipped", spec.stack, spec.model, spec.dataset, reason,
                           language_version=platform.python_version())
        return
    run(spec, trainer_cls)

