"""Run one stack for one (data set, model) and leave exactly one valid record behind.

The stack writes raw measurements (schemas/measurements.schema.json); the launcher
derives the record from them, once, in Python (record.py), whatever the language.
Whatever happens, the launcher writes a record and returns normally, so the rest of
the study goes on (docs/stack-contract.md, "The launcher"):
  runtime or environment missing -> `skipped`, reason names what is missing;
  non-zero exit, timeout, no or invalid measurements -> `failed`, reason holds the log's tail;
  otherwise the record built from the stack's measurements.
Around every run it measures the float32 GEMM rate at the run's threads (before and
after), so each record carries the speed of the machine it ran on, when it ran.

The stack runs in a process group of its own. A timeout ends the whole group (a stack
that re-executes itself, R's Python threads); so do SIGTERM/SIGINT to the launcher and
the death of its parent (Snakemake), and then no record is written at all.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from dlrosetta.checksum import sha256_file
from dlrosetta.inference import NATIVE, NO_TRAINED_WEIGHTS, InferenceRecord, batch_fields
from dlrosetta.machine import cpu_model, gemm_probe
from dlrosetta.model_spec import model_spec
from dlrosetta.npy import BundleError
from dlrosetta.profile import ProfileRecord, profile_fields
from dlrosetta.record import Record, RecordError, validate_json
from dlrosetta.registry import REPO, Stack, get_stack
from dlrosetta.runspec import RunSpec
from dlrosetta.threads import thread_env
from dlrosetta.venv import MANIFEST, env_lock_sha256, python_of
from dlrosetta.weights import read_initial_weights

TAIL_LINES = 25
KILL_GRACE_S = 5.0
POLL_S = 0.2


AnyRecord = Record | ProfileRecord | InferenceRecord


class RuntimeMissing(Exception):
    """The stack's interpreter or environment is not there; the message says which."""


class Interrupted(Exception):
    """The launcher was told to stop (signal, or its parent died): no record is written."""


def default_venvs_dir() -> Path:
    return REPO / ".venvs"


def resolve_command(stack: Stack, venvs_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The stack's command line (without the spec path) and its extra environment."""
    env = dict(stack.env_vars)
    if stack.env:
        manifest = venvs_dir / stack.env / MANIFEST
        if not manifest.is_file():
            raise RuntimeMissing(f"Python environment {stack.env!r} is not built ({manifest} missing); "
                                 f"the workflow's build_env rule creates it from envs/{stack.env}.txt")
        info = json.loads(manifest.read_text())
        if info.get("status") != "ok":
            raise RuntimeMissing(info.get("reason") or f"environment {stack.env} is unavailable")
        python = str(python_of(venvs_dir / stack.env))
        if stack.language == "r":
            env["RETICULATE_PYTHON"] = python
    if stack.runtime == "python":
        interpreter = str(python_of(venvs_dir / stack.env))
    else:
        interpreter = shutil.which(stack.runtime)
        if interpreter is None:
            raise RuntimeMissing(f"{stack.runtime} not found on PATH: the {stack.language} runtime "
                                 f"is not installed (envs/setup.sh installs it from Debian packages)")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "python"), os.environ.get("PYTHONPATH")]))
    return [interpreter, *stack.entry], env


def runtime_missing(stack: Stack, venvs_dir: Path) -> Optional[str]:
    """Why the stack cannot start here now, or None."""
    try:
        resolve_command(stack, venvs_dir)
    except RuntimeMissing as e:
        return str(e)
    return None


def die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent (Snakemake, through `exec`) dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the stack's whole process group, then SIGKILL whatever is left of it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the leader's children, or the leader itself
    except ProcessLookupError:
        pass
    proc.wait()


def run_group(command: list[str], env: Mapping[str, str], log, timeout_s: Optional[float]) -> Optional[int]:
    """Run `command` in a new process group; returns its exit code, or None on timeout.
    Raises Interrupted (after ending the group) on SIGTERM/SIGINT or the parent's death."""
    parent = os.getppid()
    stop: list[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: stop.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        proc = subprocess.Popen(command, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while True:
            try:
                # Returns within milliseconds of the stack's exit (a sleep between polls
                # would add up to POLL_S to every run's time); wakes every POLL_S to look
                # at signals, the parent and the deadline.
                proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop or os.getppid() != parent:
                _end_group(proc)
                raise Interrupted(f"signal {stop[0]}" if stop else "parent process died")
            if deadline is not None and time.monotonic() > deadline:
                _end_group(proc)
                return None
        _end_group(proc)  # stray children of a stack that has exited
        return proc.returncode
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def log_tail(log_path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def identity(stack: Stack, model: str, dataset: str, threads: int, device: str) -> dict[str, Any]:
    """What ran, and on what: the fields every record kind holds whatever the stack did."""
    return dict(stack=stack.id, language=stack.language, framework=stack.framework, backend=stack.backend,
                model=model, dataset=dataset, threads=threads, device=device,
                stack_code_sha256=stack.code_sha256(), host_cpu=cpu_model())


def _identity(spec: RunSpec, stack: Stack) -> dict[str, Any]:
    return identity(stack, spec.model, spec.dataset, spec.threads, spec.device)


def _context(spec: RunSpec, stack: Stack, repeat: Optional[int]) -> dict[str, Any]:
    """The training record's fields the launcher knows whatever the stack did."""
    return dict(_identity(spec, stack), hyperparameters=spec.hyperparameters, seed=spec.seed, repeat=repeat)


def _profile_context(spec: RunSpec, stack: Stack) -> dict[str, Any]:
    """The profile record's fields the launcher knows whatever the stack did."""
    return dict(_identity(spec, stack), batch_size=spec.batch_size)


def _inference_context(spec: RunSpec, stack: Stack, repeat: Optional[int]) -> dict[str, Any]:
    """The inference record's fields the launcher knows whatever the stack did."""
    return dict(_identity(spec, stack), engine=NATIVE, repeat=repeat or 1, runtime=stack.framework)


def status_record(spec: RunSpec, stack: Stack, status: str, reason: str,
                  run_seconds: Optional[float] = None, repeat: Optional[int] = None) -> AnyRecord:
    """The record of a run that measured nothing: skipped or failed, with the reason (a
    profile record in profile mode, an inference record in inference mode)."""
    if spec.check == "profile":
        return ProfileRecord(status=status, reason=reason, run_seconds=run_seconds, **_profile_context(spec, stack))
    if spec.check == "inference":
        return InferenceRecord(status=status, reason=reason, run_seconds=run_seconds,
                               **_inference_context(spec, stack, repeat))
    return Record(status=status, reason=reason, run_seconds=run_seconds, **_context(spec, stack, repeat))


def checked_bundle(manifest: str, spec: RunSpec) -> Optional[str]:
    """Why a trained-weights bundle cannot be used for the spec's model (missing,
    failing its checksums, not fitting the model spec), or None."""
    try:
        read_initial_weights(manifest, model_spec(spec.model, spec.model_config))
    except BundleError as e:
        return str(e)
    return None


def workdir_relative(path: str | os.PathLike) -> str:
    """Relative to the working directory when inside it: records name files so that a
    moved checkout still finds them."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def train_samples_per_epoch(spec: RunSpec) -> int:
    """Full batches only: every stack drops the last partial batch (docs/stack-contract.md)."""
    n = json.loads(Path(spec.shards).read_text())["meta"]["train_samples"]
    return n // spec.batch_size * spec.batch_size


def record_from_measurements(spec: RunSpec, stack: Stack, data: Mapping[str, Any],
                             run_seconds: float, repeat: Optional[int] = None) -> Record:
    validate_json(data, "measurements")
    if (data["stack"], data["model"], data["dataset"]) != (stack.id, spec.model, spec.dataset):
        raise RecordError(f"the measurements are for {data['stack']}/{data['dataset']}/{data['model']}, "
                          f"not {stack.id}/{spec.dataset}/{spec.model}")
    context = _context(spec, stack, repeat)
    if data["status"] == "skipped":
        return Record(status="skipped", reason=data["reason"], run_seconds=run_seconds,
                      language_version=data.get("language_version"), **context)
    for series in ("train_loss_per_epoch", "test_accuracy_per_epoch", "eval_seconds_per_epoch"):
        if len(data[series]) != len(data["epoch_seconds"]):
            raise RecordError(f"{series} has {len(data[series])} values for {len(data['epoch_seconds'])} epochs")
    context["device"] = data["device"]
    measured = {k: data.get(k) for k in (
        "language_version", "framework_version", "parameter_count", "train_loss_per_epoch",
        "test_accuracy_per_epoch", "startup_seconds", "peak_rss_mb", "fused_kernel", "kernel_notes")}
    trained = trained_weights_fields(spec)
    return Record(status="ok", **context, **measured, **trained, run_seconds=run_seconds,
                  final_train_loss=data["train_loss_per_epoch"][-1],
                  test_accuracy=data["test_accuracy_per_epoch"][-1],
                  eval_seconds=data["eval_seconds_per_epoch"][-1],
                  shards_sha256=sha256_file(spec.shards),
                  initial_weights_sha256=sha256_file(spec.initial_weights) if spec.initial_weights else None,
                  **Record.timing_fields(data["epoch_seconds"], train_samples_per_epoch(spec)))


def trained_weights_fields(spec: RunSpec) -> dict[str, Any]:
    """The record's trained-weights fields, once the bundle the stack wrote reads back
    against the model spec (RecordError naming it otherwise: the run is failed)."""
    if not spec.trained_weights:
        return {}
    manifest = Path(spec.trained_weights) / "manifest.json"
    if (problem := checked_bundle(str(manifest), spec)) is not None:
        raise RecordError(f"no valid trained-weights bundle: {problem}")
    return {"trained_weights": workdir_relative(manifest), "trained_weights_sha256": sha256_file(manifest)}


def inference_record(spec: RunSpec, stack: Stack, data: Mapping[str, Any], run_seconds: float,
                     repeat: Optional[int], unevaluated: Mapping[str, str]) -> InferenceRecord:
    """The inference record from a stack's inference-mode output (docs/inference.md)."""
    if (data.get("check"), data.get("stack"), data.get("model")) != ("inference", stack.id, spec.model):
        raise RecordError(f"the inference output is for {data.get('stack')}/{data.get('model')} "
                          f"(check {data.get('check')!r}), not {stack.id}/{spec.model}")
    asked = spec.inference["batch_sizes"]
    if [b.get("batch_size") for b in data["batches"]] != asked or not all(b["call_seconds"] for b in data["batches"]):
        raise RecordError(f"the inference output's batches {[b.get('batch_size') for b in data['batches']]} "
                          f"are not the batch sizes asked for, {asked}, each with timed calls")
    export = data.get("onnx_export")
    if export and export.get("status") == "ok":
        onnx = Path(spec.inference["onnx"])
        if not onnx.is_file():
            raise RecordError(f"the stack says it exported ONNX, but {onnx} does not exist")
        export = {**export, "path": workdir_relative(onnx), "sha256": sha256_file(onnx)}
    return InferenceRecord(
        status="ok", run_seconds=run_seconds, **_inference_context(spec, stack, repeat),
        runtime_version=data.get("framework_version"), parameter_count=data.get("parameter_count"),
        weights_sha256=sha256_file(spec.initial_weights), batches=batch_fields(data["batches"]),
        startup_seconds=data.get("startup_seconds"), peak_rss_mb=data.get("peak_rss_mb"),
        logits=workdir_relative(data["logits"]) if data.get("logits") else None,
        unevaluated_weights=dict(unevaluated) or None, onnx_export=export)


def profile_record(spec: RunSpec, stack: Stack, data: Mapping[str, Any], run_seconds: float,
                   trace_dir: Path) -> ProfileRecord:
    """The profile record from a stack's profile output and trace (docs/profile.md)."""
    if (data.get("check"), data.get("stack"), data.get("model")) != ("profile", stack.id, spec.model):
        raise RecordError(f"the profile output is for {data.get('stack')}/{data.get('model')} "
                          f"(check {data.get('check')!r}), not {stack.id}/{spec.model}")
    return ProfileRecord(status="ok", run_seconds=run_seconds, **_profile_context(spec, stack),
                         **profile_fields(data, trace_dir))


def usable_weights(spec: RunSpec) -> tuple[RunSpec, dict[str, str]]:
    """Inference mode: the spec with only the trained-weights bundles to evaluate that
    read back (checksums, model fit), and why each other one was left out. Raises
    RuntimeMissing when the stack's own trained weights are unusable."""
    if (problem := checked_bundle(spec.initial_weights, spec)) is not None:
        raise RuntimeMissing(f"{NO_TRAINED_WEIGHTS} of {spec.stack} to run: {problem}")
    usable, unevaluated = [], {}
    for entry in spec.inference["evaluate"]:
        if (problem := checked_bundle(entry["weights"], spec)) is None:
            usable.append(entry)
        else:
            unevaluated[entry["stack"]] = f"trained weights unusable: {problem}"
    return dataclasses.replace(spec, inference={**spec.inference, "evaluate": usable}), unevaluated


def launch(spec: RunSpec, record_path: Path, work_dir: Path, log_path: Path,
           venvs_dir: Optional[Path] = None, timeout_s: Optional[float] = None,
           stack: Optional[Stack] = None, repeat: Optional[int] = None) -> AnyRecord:
    """Run the stack named in the spec (or the one given) and write the final record to
    record_path; work_dir receives the stack's run spec; `repeat` is the run's 1-based
    repeat. In profile mode (spec.check == "profile") the record is a profile record, in
    inference mode an inference record. Raises Interrupted, writing nothing, when
    stopped from outside."""
    stack = stack or get_stack(spec.stack)
    venvs_dir = venvs_dir or default_venvs_dir()
    measurements = Path(spec.measurements)
    measurements.parent.mkdir(parents=True, exist_ok=True)
    measurements.unlink(missing_ok=True)
    # An earlier run's trained weights go first: inference and cross-evaluation must never
    # read weights that this run's record does not vouch for.
    if spec.trained_weights:
        shutil.rmtree(spec.trained_weights, ignore_errors=True)
    unevaluated: dict[str, str] = {}
    try:
        command, extra_env = resolve_command(stack, venvs_dir)
        if spec.check == "inference":
            spec, unevaluated = usable_weights(spec)
    except RuntimeMissing as e:
        record = status_record(spec, stack, "skipped", str(e), repeat=repeat)
    else:
        spec_path = work_dir / "spec.json"
        spec.write(spec_path)
        env = {**os.environ, **thread_env(spec.threads), **extra_env}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            print(f"$ {' '.join(command)} {spec_path}", file=log, flush=True)
            # Training only: the noise detector compares training rates; a profile's
            # figures are shares, and inference runs are short and repeated.
            probe = spec.check is None
            gemm_before = gemm_probe(spec.threads) if probe else None
            start = time.perf_counter()
            rc = run_group([*command, str(spec_path)], env, log, timeout_s)
            seconds = time.perf_counter() - start
            gemm_after = gemm_probe(spec.threads) if probe else None
        record = _finish(spec, stack, rc, seconds, measurements, log_path, timeout_s, repeat, unevaluated)
        if probe:
            record = record.replace(gemm_float32_gflops_before=gemm_before, gemm_float32_gflops_after=gemm_after)
    if isinstance(record, Record):
        # The lock the stack's environment was built from: did two studies run the same software?
        record = record.replace(env_lock_sha256=env_lock_sha256(venvs_dir, stack.env))
        validate_json(record.to_dict(), "record")
    if spec.trained_weights and record.status != "ok":  # written before a crash, or invalid
        shutil.rmtree(spec.trained_weights, ignore_errors=True)
    record.write(record_path)
    return record


def _finish(spec, stack, rc, seconds, measurements: Path, log_path: Path, timeout_s, repeat,
            unevaluated: Mapping[str, str]) -> AnyRecord:
    if rc is None:
        return status_record(spec, stack, "failed", f"timed out after {timeout_s:.0f} s; log tail:\n"
                             f"{log_tail(log_path)}", seconds, repeat)
    if rc != 0:
        return status_record(spec, stack, "failed", f"exit code {rc}; log tail:\n{log_tail(log_path)}",
                             seconds, repeat)
    try:
        data = json.loads(measurements.read_text())
        if spec.check == "profile":
            return profile_record(spec, stack, data, seconds, measurements.parent)
        if spec.check == "inference" and data.get("status") != "skipped":
            return inference_record(spec, stack, data, seconds, repeat, unevaluated)
        if spec.check == "inference":
            return status_record(spec, stack, "skipped", data["reason"], seconds, repeat)
        return record_from_measurements(spec, stack, data, seconds, repeat)
    except FileNotFoundError:
        return status_record(spec, stack, "failed", f"the stack exited 0 without writing its measurements "
                             f"{measurements}; log tail:\n{log_tail(log_path)}", seconds, repeat)
    except (json.JSONDecodeError, RecordError) as e:
        kind = {"profile": "profile output", "inference": "inference output"}.get(spec.check, "measurements")
        return status_record(spec, stack, "failed", f"the stack wrote invalid {kind}: {e}", seconds, repeat)


def resolved(spec: RunSpec) -> RunSpec:
    """The spec with absolute paths, so the stack can run from any directory."""
    def absolute(path):
        return str(Path(path).resolve()) if path else path
    inference = spec.inference and {
        **spec.inference, "logits": absolute(spec.inference["logits"]), "onnx": absolute(spec.inference["onnx"]),
        "evaluate": [{**e, "weights": absolute(e["weights"])} for e in spec.inference["evaluate"]]}
    return dataclasses.replace(spec, shards=absolute(spec.shards), order=absolute(spec.order),
                               initial_weights=absolute(spec.initial_weights),
                               measurements=absolute(spec.measurements),
                               trained_weights=absolute(spec.trained_weights), inference=inference)


def launch_from_json(spec_json: str, record: Path, log: Path, venvs: Optional[Path] = None,
                     timeout_minutes: Optional[float] = None, repeat: Optional[int] = None) -> Record:
    """The train rule's step: the run spec as JSON, paths relative to the working
    directory."""
    spec = resolved(RunSpec(**json.loads(spec_json)))
    log = Path(log)
    log.unlink(missing_ok=True)
    record = launch(spec, Path(record), Path(spec.measurements).parent, log, venvs,
                    timeout_minutes * 60 if timeout_minutes else None, repeat=repeat)
    print(f"{record.stack}: {record.status} {record.reason or ''}", file=sys.stderr)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dlrosetta launch",
                                description="Run one stack from a run spec and write its record.")
    p.add_argument("--spec-json", required=True, help="the run spec (docs/stack-contract.md) as JSON")
    p.add_argument("--record", type=Path, required=True, help="where the final record goes")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--venvs", type=Path, default=None, help="stack environments (default .venvs)")
    p.add_argument("--timeout-minutes", type=float, default=None)
    p.add_argument("--repeat", type=int, default=None, help="1-based repeat of this run, for the record")
    a = p.parse_args(argv)
    die_with_parent()
    try:
        launch_from_json(a.spec_json, a.record, a.log, a.venvs, a.timeout_minutes, a.repeat)
    except Interrupted as e:
        print(f"launcher stopped ({e}): the stack's process group was ended, no record written",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
