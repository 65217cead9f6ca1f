"""Run one stack for one (data set, model) and leave exactly one valid record behind.

Whatever happens, the launcher writes a record and returns normally, so the rest of
the study goes on (docs/stack-contract.md, "The launcher"):
  runtime or environment missing -> `skipped`, reason names what is missing;
  non-zero exit, timeout, no or invalid record -> `failed`, reason holds the log's tail;
  otherwise the stack's own record, validated, with `run_seconds` added.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from dlrosetta.record import Record, RecordError, validate_record_dict
from dlrosetta.registry import REPO, Stack, get_stack
from dlrosetta.runspec import RunSpec
from dlrosetta.threads import thread_env
from dlrosetta.venv import MANIFEST, python_of

TAIL_LINES = 25


class RuntimeMissing(Exception):
    """The stack's interpreter or environment is not there; the message says which."""


def default_venvs_dir() -> Path:
    return Path(os.environ.get("DLROSETTA_VENVS", REPO / ".venvs"))


def resolve_command(stack: Stack, venvs_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The stack's command line (without the spec path) and its extra environment."""
    env = dict(stack.extra_env)
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


def run_stack_process(stack: Stack, spec: RunSpec, spec_path: Path, log_path: Path,
                      venvs_dir: Path, timeout_s: Optional[float]) -> tuple[Optional[int], float]:
    """Run the entry point; stdout and stderr go to the log. Returns (exit code or None
    on timeout, wall seconds)."""
    command, extra_env = resolve_command(stack, venvs_dir)
    spec.write(spec_path)
    env = {**os.environ, **thread_env(spec.threads), **extra_env}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        print(f"$ {' '.join(command)} {spec_path}", file=log, flush=True)
        start = time.perf_counter()
        try:
            rc = subprocess.run([*command, str(spec_path)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = None
        return rc, time.perf_counter() - start


def log_tail(log_path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def status_record(spec: RunSpec, stack: Stack, status: str, reason: str,
                  run_seconds: Optional[float] = None) -> Record:
    """The record of a run that measured nothing: skipped or failed, with the reason."""
    return Record(status=status, reason=reason, stack=stack.id, language=stack.language,
                  framework=stack.framework, backend=stack.backend, model=spec.model,
                  dataset=spec.dataset, hyperparameters=spec.hyperparameters,
                  threads=spec.threads, seed=spec.seed, device=spec.device,
                  language_version=platform.python_version() if stack.language == "python" else None,
                  run_seconds=run_seconds)


def launch(spec: RunSpec, record_path: Path, work_dir: Path, log_path: Path,
           venvs_dir: Optional[Path] = None, timeout_s: Optional[float] = None,
           stack: Optional[Stack] = None) -> Record:
    """Run the stack named in the spec (or the one given) and write the final record to
    record_path; work_dir receives the stack's run spec."""
    stack = stack or get_stack(spec.stack)
    venvs_dir = venvs_dir or default_venvs_dir()
    partial = Path(spec.record)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    try:
        rc, seconds = run_stack_process(stack, spec, work_dir / "spec.json", log_path,
                                        venvs_dir, timeout_s)
    except RuntimeMissing as e:
        record = status_record(spec, stack, "skipped", str(e))
    else:
        record = _finish(spec, stack, rc, seconds, partial, log_path, timeout_s)
    validate_record_dict(record.to_dict())
    record.write(record_path)
    return record


def _finish(spec, stack, rc, seconds, partial: Path, log_path: Path, timeout_s) -> Record:
    if rc is None:
        return status_record(spec, stack, "failed", f"timed out after {timeout_s:.0f} s; log tail:\n"
                              f"{log_tail(log_path)}", seconds)
    if rc != 0:
        return status_record(spec, stack, "failed", f"exit code {rc}; log tail:\n{log_tail(log_path)}",
                              seconds)
    try:
        data = json.loads(partial.read_text())
        validate_record_dict(data)
        record = Record.from_dict(data)
    except FileNotFoundError:
        return status_record(spec, stack, "failed", f"the stack exited 0 without writing its record "
                              f"{partial}; log tail:\n{log_tail(log_path)}", seconds)
    except (json.JSONDecodeError, RecordError) as e:
        return status_record(spec, stack, "failed", f"the stack wrote an invalid record: {e}", seconds)
    if (record.stack, record.model, record.dataset) != (stack.id, spec.model, spec.dataset):
        return status_record(spec, stack, "failed", f"the stack's record is for {record.stack}/"
                              f"{record.dataset}/{record.model}, not {stack.id}/{spec.dataset}/{spec.model}",
                              seconds)
    return record.replace(run_seconds=seconds)


def resolved(spec: RunSpec) -> RunSpec:
    """The spec with absolute paths, so the stack can run from any directory."""
    def absolute(path):
        return str(Path(path).resolve()) if path else path
    return dataclasses.replace(spec, shards=absolute(spec.shards), order=absolute(spec.order),
                               initial_weights=absolute(spec.initial_weights),
                               record=absolute(spec.record))


def launch_from_json(spec_json: str, record: Path, log: Path, venvs: Optional[Path] = None,
                     timeout_minutes: Optional[float] = None) -> Record:
    """The train rule's step: the run spec as JSON, paths relative to the working
    directory."""
    spec = resolved(RunSpec(**json.loads(spec_json)))
    log = Path(log)
    log.unlink(missing_ok=True)
    record = launch(spec, Path(record), Path(spec.record).parent, log, venvs,
                    timeout_minutes * 60 if timeout_minutes else None)
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
    a = p.parse_args(argv)
    launch_from_json(a.spec_json, a.record, a.log, a.venvs, a.timeout_minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
