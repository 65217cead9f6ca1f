"""The training loop every Python stack shares; frameworks supply a Trainer.

It writes raw measurements (dlrosetta.measurements); the launcher derives the record.
What is timed (docs/stack-contract.md): each epoch's wall seconds from its first batch
gather to the synchronised mean loss, covering data gathering, forward, backward and the
optimiser step. Every epoch is reported, the first (graph tracing, XLA/JIT compile,
allocator warm-up) included. After every epoch the whole test split is evaluated in
inference mode, outside the epoch's stopwatch and timed on its own (time to accuracy).
Check mode runs the first steps alone; profile mode times blocks of steps with and
without the framework's profiler and keeps its trace (profile()).

Twins: r/stacks/r-keras/R/train.R, julia/stacks/julia-native/src/train.jl.
"""
from __future__ import annotations

import abc
import importlib
import os
import platform
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from dlrosetta.measurements import write_json_atomic, write_measurements
from dlrosetta.model_spec import ModelSpec, initial_weights, model_spec
from dlrosetta.order import epoch_batches, profile_blocks, read_order
from dlrosetta.profiler import trace_block, xla_dump_flags
from dlrosetta.runspec import RunSpec
from dlrosetta.stopwatch import Stopwatch, peak_rss_mb, process_age_seconds
from dlrosetta.shards import Shards, read_shards
from dlrosetta.weights import read_initial_weights


class Trainer(abc.ABC):
    """One framework's model, optimiser and steps. Built with the canonical weights."""

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
        self.weights = weights

    @abc.abstractmethod
    def framework_version(self) -> str: ...

    @abc.abstractmethod
    def device_name(self) -> str: ...

    @abc.abstractmethod
    def set_data(self, shards: Shards) -> None:
        """Take the data once, in the layout and on the device the framework prefers."""

    @abc.abstractmethod
    def parameter_count(self) -> int:
        """Trainable parameters as the framework counts them."""

    @abc.abstractmethod
    def train_epoch(self, batches: np.ndarray) -> float:
        """One optimiser step per row of training indices; returns the mean loss
        (synchronised, so the time includes all the work)."""

    @abc.abstractmethod
    def evaluate(self) -> float:
        """Accuracy on the whole test split (inference mode: BN running statistics).
        Called between epochs, so it leaves training as it was: no statistic, optimiser
        state or random stream updated, the training mode back for the next epoch."""


def pick_accelerator(requested: str, visible: Optional[str], framework: str) -> Optional[str]:
    """The accelerator to train on (its name), or None for the CPU. `visible` is the
    first accelerator the framework sees, if any: "auto" takes it, "gpu" fails without
    one (the launcher records the failure), "cpu" never uses it."""
    if requested == "cpu":
        return None
    if visible is None and requested == "gpu":
        raise RuntimeError(f"the run spec asks for a GPU, but {framework} sees none")
    return visible


def load_inputs(spec: RunSpec) -> tuple[ModelSpec, dict, Shards, np.ndarray]:
    model = model_spec(spec.model, spec.model_config)
    weights = (read_initial_weights(spec.initial_weights, model) if spec.initial_weights
               else initial_weights(model, spec.init_seed))
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

