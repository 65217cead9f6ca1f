"""Run the ONNX runtimes on the stacks' exports and leave one inference record per
(engine, stack) behind (docs/inference.md), whatever happens.

For one (data set, model, repeat) and each configured runtime, the launcher hands the
runner (python/dlrosetta/onnx_runner.py, in its own environment `onnx`) every export
that the stacks' native repeat-1 inference runs wrote, with the exporting stack's own
logits to compare against. A stack without an export gets a record saying why: failed
where its export failed, skipped where its framework cannot export or its inference
run did not run; a missing runtime environment skipped records naming it; a runner
that crashes failed records with its log's tail. Like every run, the runner's process
group ends with a timeout or when Snakemake stops.

Twins: none (python/dlrosetta/launch.py does the same for stacks).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from dlrosetta.inference import RUNTIME_ENGINES, InferenceRecord, batch_fields
from dlrosetta.launch import Interrupted, die_with_parent, identity, log_tail, run_group
from dlrosetta.record import RecordError
from dlrosetta.registry import REPO, get_stack
from dlrosetta.threads import thread_env
from dlrosetta.venv import MANIFEST, python_of

ENV = "onnx"
#: Says, in a record's reason, that the runner's process crashed, timed out or wrote no
#: output: that may not recur, so the next snakemake runs the job again (runner_crash).
RUNNER_FAILED = "runner process failed"


def engine_of(runtime: str, precision: str) -> str:
    return runtime if precision == "f32" else f"{runtime}-{precision}"


def record_path(out_dir: Path, dataset: str, model: str, engine: str, stack: str, repeat: int) -> Path:
    return out_dir / dataset / model / engine / stack / f"repeat{repeat}.json"


def exports_of(native_records: list[Path]) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    """The runner's exports (absolute paths) and, for every stack without one, the status
    and reason of its runtime records: failed where its export failed, else skipped."""
    exports, missing = [], {}
    for path in native_records:
        r = InferenceRecord.read(path)
        export = r.onnx_export or {}
        if r.status != "ok":
            missing[r.stack] = ("skipped", f"{r.stack}'s inference run is {r.status}: {r.reason}")
        elif export.get("status") == "failed":
            missing[r.stack] = ("failed", f"{r.stack}'s ONNX export failed: {export.get('reason')}")
        elif export.get("status") != "ok":
            missing[r.stack] = ("skipped", f"{r.stack} exported no ONNX model ({export.get('status', 'not asked')}): "
                                           f"{export.get('reason')}")
        elif not r.logits:
            missing[r.stack] = ("failed", f"{r.stack} wrote no logits to compare the runtime's with")
        else:
            exports.append({"stack": r.stack, "onnx": str(Path(export["path"]).resolve()),
                            "logits": str(Path(r.logits).resolve())})
    return exports, missing


def run_runtime(runtime: str, spec: dict[str, Any], venvs: Path, work_dir: Path, log, timeout_s) -> tuple[dict, float]:
    """The runner's output document for one runtime (RuntimeError saying why not) and
    the seconds its process took."""
    manifest = venvs / ENV / MANIFEST
    info = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if info.get("status") != "ok":
        raise FileNotFoundError(info.get("reason") or f"the ONNX runtimes' environment is not built ({manifest} "
                                                       f"missing); the workflow's build_env rule creates it from "
                                                       f"envs/{ENV}.txt")
    spec_path = work_dir / f"{runtime}.spec.json"
    out = work_dir / f"{runtime}.json"
    out.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "runtime": runtime, "out": str(out)}, indent=2))
    env = {**os.environ, **thread_env(spec["threads"]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "python"), os.environ.get("PYTHONPATH")]))}
    command = [str(python_of(venvs / ENV)), "-m", "dlrosetta.onnx_runner", str(spec_path)]
    print(f"$ {' '.join(command)}", file=log, flush=True)
    start = time.perf_counter()
    rc = run_group(command, env, log, timeout_s)
    seconds = time.perf_counter() - start
    if rc != 0 or not out.is_file():
        why = f"timed out after {timeout_s:.0f} s" if rc is None else f"exit code {rc}"
        raise RuntimeError(f"the {runtime} {RUNNER_FAILED} ({why}); log tail:\n{log_tail(Path(log.name))}")
    try:
        return json.loads(out.read_text()), seconds
    except json.JSONDecodeError as e:
        raise RuntimeError(f"the {runtime} {RUNNER_FAILED}: its output {out} is not JSON ({e})") from None


def runtime_records(runtime: str, doc: Optional[dict], failure: Optional[tuple[str, str]], seconds: Optional[float],
                    stacks: list[str], missing: dict[str, tuple[str, str]],
                    case: dict[str, Any]) -> dict[tuple[str, str], InferenceRecord]:
    """Every (engine, stack) record of one runtime: the runner's rows, else the reason."""
    rows = {(r["stack"], r["precision"]): r for r in (doc or {}).get("rows", [])}
    records = {}
    for precision in ("f32", "bf16"):
        engine = engine_of(runtime, precision)
        if engine not in RUNTIME_ENGINES[runtime]:
            continue
        for stack_id in stacks:
            base = dict(identity(get_stack(stack_id), case["model"], case["dataset"], case["threads"], "cpu"),
                        engine=engine, repeat=case["repeat"], runtime=runtime, precision=precision,
                        runtime_version=(doc or {}).get("runtime_version"), run_seconds=seconds)
            row = rows.get((stack_id, precision))
            if stack_id in missing:
                status, reason = missing[stack_id]
                records[engine, stack_id] = InferenceRecord(status=status, reason=reason, **base)
            elif failure:
                records[engine, stack_id] = InferenceRecord(status=failure[0], reason=failure[1], **base)
            elif row is None:
                records[engine, stack_id] = InferenceRecord(
                    status="failed", reason=f"the {runtime} runner wrote no {precision} row for {stack_id}", **base)
            else:
                records[engine, stack_id] = InferenceRecord(
                    status=row["status"], reason=row.get("reason"), **base,
                    batches=batch_fields(row["batches"]) if row["status"] == "ok" else None,
                    onnx_sha256=row.get("onnx_sha256"), opset=row.get("opset"), agreement=row.get("agreement"),
                    max_abs_logit_diff=row.get("max_abs_logit_diff"), test_accuracy=row.get("test_accuracy"))
    return records


def infer_onnx(case: dict[str, Any], runtimes: list[str], settings: dict[str, Any], native_records: list[Path],
               shards: Path, out_dir: Path, work_dir: Path, log_path: Path, venvs: Path,
               timeout_s: Optional[float]) -> list[InferenceRecord]:
    """Run each runtime on every export of the case and write all its records."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stacks = sorted(InferenceRecord.read(p).stack for p in native_records)
    exports, missing = exports_of(native_records)
    spec = {**settings, "model": case["model"], "dataset": case["dataset"], "threads": case["threads"],
            "shards": str(shards.resolve()), "exports": exports}
    written = []
    with open(log_path, "w") as log:
        for runtime in runtimes:
            doc = failure = seconds = None
            if exports:
                try:
                    doc, seconds = run_runtime(runtime, spec, venvs, work_dir, log, timeout_s)
                except FileNotFoundError as e:
                    failure = ("skipped", str(e))
                except RuntimeError as e:
                    failure = ("failed", str(e))
            for (engine, stack_id), record in runtime_records(runtime, doc, failure, seconds, stacks, missing,
                                                              case).items():
                record.write(record_path(out_dir, case["dataset"], case["model"], engine, stack_id, case["repeat"]))
                written.append(record)
    return written


def runner_crash(records: list[Path]) -> Optional[str]:
    """Why the ONNX job of these records (its outputs) should run again, or None: a
    runner's process failed, or a record cannot be read. A runtime's verdict on an export
    (a failed row) stands: the export and the runtime's environment are the job's inputs."""
    for path in records:
        if not path.exists():
            continue
        try:
            r = InferenceRecord.read(path)
        except RecordError as e:
            return f"unreadable record {path} ({e})"
        if r.status == "failed" and RUNNER_FAILED in (r.reason or ""):
            return r.reason.splitlines()[0]
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dlrosetta infer-onnx",
                                description="Run ONNX runtimes on the stacks' exports; write their inference records.")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--runtimes", nargs="+", required=True, choices=sorted(RUNTIME_ENGINES))
    p.add_argument("--settings-json", required=True,
                   help="batch_sizes, warmup_calls, min_calls, max_calls, min_seconds (config `inference`)")
    p.add_argument("--native", type=Path, nargs="+", required=True, help="the stacks' native repeat-1 records")
    p.add_argument("--shards", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True, help="records go to OUT/<data set>/<model>/<engine>/<stack>/")
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--venvs", type=Path, default=REPO / ".venvs")
    p.add_argument("--timeout-minutes", type=float, default=None)
    a = p.parse_args(argv)
    die_with_parent()
    case = {"dataset": a.dataset, "model": a.model, "repeat": a.repeat, "threads": a.threads}
    try:
        records = infer_onnx(case, a.runtimes, json.loads(a.settings_json), a.native, a.shards, a.out_dir,
                             a.work_dir, a.log, a.venvs, a.timeout_minutes * 60 if a.timeout_minutes else None)
    except Interrupted as e:
        print(f"stopped ({e}): the runner's process group was ended, records may be missing", file=sys.stderr)
        return 130
    except RecordError as e:
        print(f"dlrosetta infer-onnx: {e}", file=sys.stderr)
        return 1
    for r in records:
        print(f"{r.engine}/{r.stack}: {r.status} {r.reason or ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
