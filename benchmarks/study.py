"""Benchmark the whole study: wall time, orchestration overhead, and each stack's median
steady epoch with its interval next to the float32 GEMM rate. Prints figures; asserts
nothing.

    .venv/bin/python benchmarks/study.py                          # default study
    .venv/bin/python benchmarks/study.py --configfile config/smoke.yaml

Runs the workflow from scratch in a temporary directory (stack environments in .venvs
are reused, not timed), serially (--cores 2, one training run at a time), so that
overhead = study wall time - sum of the stack processes' run_seconds
covers Snakemake, data preparation, the launcher and its GEMM probes, aggregation and
the report. Targets (issue 9): default study (3 repeats) within 15 min on 2 cores,
smoke within 2 min, overhead under 5 %.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from dlrosetta.inference import NATIVE, InferenceRecord  # noqa: E402
from dlrosetta.record import Record  # noqa: E402


def run_study(configfile: str | None, label: str = "bench") -> tuple[Path, float]:
    """The workflow from scratch in a new temporary directory: (that directory, wall s)."""
    work = Path(tempfile.mkdtemp(prefix=f"dlrosetta-{label}-"))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--cores", "2", "--quiet", "all"]
    if configfile:
        cmd += ["--configfile", str(Path(configfile).resolve())]
    started, start = time.time(), time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    (work / "benchmark.json").write_text(json.dumps({"started": started, "wall_seconds": wall}))
    return work, wall


def inference_records(work: Path) -> list[InferenceRecord]:
    folder = work / "results" / "inference"
    return [InferenceRecord.read(p) for p in folder.rglob("repeat*.json")] if folder.is_dir() else []


def process_seconds(work: Path) -> float:
    """Seconds of the stack processes: training, native inference, and the ONNX
    runners (one process per runtime writes the records of every export)."""
    records = inference_records(work)
    runners = {(r.dataset, r.model, r.runtime, r.repeat): r.run_seconds or 0.0 for r in records if r.engine != NATIVE}
    training = (work / "results" / "records").glob("*/*/*/threads*/repeat*.json")
    return (sum(Record.read(p).run_seconds or 0.0 for p in training)
            + sum(r.run_seconds or 0.0 for r in records if r.engine == NATIVE) + sum(runners.values()))


def overhead(work: Path, wall: float) -> tuple[float, float]:
    """(seconds of the stack processes, orchestration overhead in seconds)."""
    stacks_s = process_seconds(work)
    return stacks_s, wall - stacks_s


def export_and_crosseval_seconds(work: Path) -> dict[str, float]:
    """Per (data set/model/stack): what its repeat-1 inference process, which also
    cross-evaluates and exports, took beyond the median of its other repeats (timed
    calls only): the cost of cross-evaluation and export (docs/inference.md)."""
    runs: dict[str, dict[int, float]] = {}
    for r in inference_records(work):
        if r.engine == NATIVE and r.run_seconds:
            runs.setdefault(f"{r.dataset}/{r.model}/{r.stack}", {})[r.repeat] = r.run_seconds
    return {k: v[1] - float(pd.Series([s for rep, s in v.items() if rep != 1]).median())
            for k, v in runs.items() if 1 in v and len(v) > 1}


#: Where a rule's time goes in the breakdown (rules not named: their own line).
RULE_GROUPS = {"shards": "data (shards, order, weights)", "epoch_order": "data (shards, order, weights)",
               "initial_weights": "data (shards, order, weights)", "machine": "machine probe",
               "aggregate": "aggregation", "profiles": "aggregation", "inference_table": "aggregation",
               "crosseval": "aggregation", "report": "report",
               "build_env": "environment checks"}


def overhead_breakdown(work: Path) -> dict[str, float]:
    """Where the study's wall time went, from Snakemake's job metadata (start and end of
    every job) and the records' run_seconds: Snakemake's start-up until the first job,
    each light rule, the launcher's own time around the stack processes (its start-up,
    the GEMM probes, the record), and the time no job ran (scheduling, job start-up,
    shutdown). Snakemake stamps a job's start and end around its own bookkeeping too, so
    the parts can sum to a little more than the overhead."""
    bench = json.loads((work / "benchmark.json").read_text())
    jobs = {}
    for f in (work / ".snakemake" / "metadata").iterdir():
        m = json.loads(f.read_text())
        if m.get("starttime") and m.get("endtime"):
            jobs[(m["rule"], m["starttime"])] = m["endtime"]
    first = min(start for _, start in jobs)
    parts = {"snakemake start-up (parse, DAG) until the first job": first - bench["started"]}
    stacks_s, _ = overhead(work, bench["wall_seconds"])
    for (rule, start), end in jobs.items():
        name = "launcher around the stacks (start-up, GEMM probes, record)" if rule in (
            "train", "profile", "infer", "infer_onnx") else RULE_GROUPS.get(rule, rule)
        parts[name] = parts.get(name, 0.0) + end - start
    parts["launcher around the stacks (start-up, GEMM probes, record)"] -= stacks_s
    # Light jobs may run beside a training run (--cores 2): idle time is what no job covers.
    busy, reach = 0.0, first
    for start, end in sorted((start, end) for (_, start), end in jobs.items()):
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    parts["no job running (scheduling, job start-up, shutdown)"] = bench["wall_seconds"] - (first - bench["started"]) - busy
    return parts


def print_inference(work: Path, wall: float) -> None:
    """Inference's share of the study, and export + cross-evaluation against the rest."""
    # One metadata file per output: a job with many outputs (infer_onnx) counts once.
    jobs = {(m["rule"], m["starttime"], m["endtime"]) for m in
            (json.loads(f.read_text()) for f in (work / ".snakemake" / "metadata").iterdir()) if m.get("endtime")}
    per_rule = {rule: sum(end - start for r, start, end in jobs if r == rule) for rule in ("train", "infer", "infer_onnx")}
    print(f"training jobs:          {per_rule['train']:8.1f} s")
    print(f"native inference jobs:  {per_rule['infer']:8.1f} s")
    print(f"ONNX runtime jobs:      {per_rule['infer_onnx']:8.1f} s")
    extra = export_and_crosseval_seconds(work)
    if extra:
        total = sum(extra.values())
        print(f"export + cross-evaluation (repeat 1 beyond the other repeats, {len(extra)} processes): "
              f"{total:.1f} s = {100 * total / (wall - total):.1f} % of the study without them (target <= 15 %)")
        for k, v in sorted(extra.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {k:50} {v:6.2f} s")


def print_study(work: Path, wall: float, name: str) -> pd.DataFrame:
    machine = json.loads((work / "results" / "machine.json").read_text())
    summary = pd.read_csv(work / "results" / "summary.csv")
    noise = pd.read_csv(work / "results" / "noise.csv")
    stacks_s, over = overhead(work, wall)
    print(f"\nstudy: {name} in {work}")
    print(f"machine: {machine['cpu_model']}, float32 GEMM {machine['gemm_float32_gflops']:.1f} GFLOP/s at "
          f"{machine['threads']} threads ({machine['blas']})")
    for n in noise.to_dict("records"):
        print(f"GEMM probes at {n['threads']} threads: {n['probes']}, {n['min_gflops']:.0f}-{n['max_gflops']:.0f} "
              f"GFLOP/s, drift {100 * n['drift']:.1f} %{' (FLAGGED)' if n['drifting'] else ''}")
    print(f"study wall time:        {wall:8.1f} s")
    print(f"stack processes (sum):  {stacks_s:8.1f} s")
    print(f"orchestration overhead: {over:8.1f} s = {100 * over / wall:.1f} % of wall time (target < 5 %)")
    for part, seconds in overhead_breakdown(work).items():
        print(f"  {part:62} {seconds:7.1f} s")
    print_inference(work, wall)
    print(f"\n{'dataset/model':26} {'stack':17} {'thr':>3} {'n':>2} {'steady s/epoch [95 % CI]':>26} {'CV %':>5} "
          f"{'warm-up s':>9} {'vs fastest':>10} {'of GEMM':>7} {'acc.':>5}")
    for r in summary.to_dict("records"):
        if r["status"] != "ok":
            print(f"{r['dataset'] + '/' + r['model']:26} {r['stack']:17} {r['threads']:3} {r['status']}: {r['cause']}")
            continue
        ci = (f"{r['steady_epoch_seconds_median']:.3f} [{r['steady_epoch_seconds_ci_low']:.3f}, "
              f"{r['steady_epoch_seconds_ci_high']:.3f}]")
        print(f"{r['dataset'] + '/' + r['model']:26} {r['stack']:17} {r['threads']:3} {r['repeats']:2} {ci:>26} "
              f"{100 * r['steady_epoch_seconds_cv']:5.1f} {r['warmup_epoch_seconds_median']:9.2f} "
              f"{r['vs_fastest']:10.2f} {r['gemm_fraction']:7.3f} {r['test_accuracy_median']:5.3f}")
    print(f"\nresults (report included) are in {work}/results")
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="extra config layered over config/config.yaml")
    a = p.parse_args()
    work, wall = run_study(a.configfile)
    print_study(work, wall, a.configfile or "config/config.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
