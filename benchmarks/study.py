"""Benchmark the whole study: wall time, orchestration overhead, and each stack's
throughput next to the machine's float32 GEMM rate. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/study.py                          # default study
    .venv/bin/python benchmarks/study.py --configfile config/smoke.yaml

Runs the workflow from scratch in a temporary directory (stack environments in .venvs
are reused, not timed), serially (--cores = threads), so that
overhead = study wall time - sum of the stack processes' run_seconds
covers Snakemake, data preparation, the launcher, aggregation and the report.
Targets (issue 2): default study < 10 min, smoke < 2 min, overhead <= 5 %.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from dlrosetta.model_spec import model_spec  # noqa: E402
from dlrosetta.record import Record  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="extra config layered over config/config.yaml")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dlrosetta-bench-"))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--cores", "2", "--quiet", "all"]
    if a.configfile:
        cmd += ["--configfile", str(Path(a.configfile).resolve())]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start

    records = [Record.read(p) for p in sorted((work / "results" / "records").rglob("*.json"))]
    machine = json.loads((work / "results" / "machine.json").read_text())
    stacks_s = sum(r.run_seconds or 0.0 for r in records)
    print(f"\nstudy: {a.configfile or 'config/config.yaml'} in {work}")
    print(f"machine: {machine['cpu_model']}, {machine['threads']} threads, "
          f"float32 GEMM {machine['gemm_float32_gflops']:.1f} GFLOP/s ({machine['blas']})")
    print(f"study wall time:        {wall:8.1f} s")
    print(f"stack processes (sum):  {stacks_s:8.1f} s")
    print(f"orchestration overhead: {wall - stacks_s:8.1f} s = {100 * (wall - stacks_s) / wall:.1f} % of wall time")
    print(f"\n{'dataset/model':28} {'stack':18} {'status':8} {'steady s/ep':>11} {'warm-up s':>9} "
          f"{'samples/s':>10} {'GFLOP/s':>8} {'of GEMM':>7} {'run s':>7}")
    for r in records:
        gflops = (r.steady_samples_per_second * model_spec(r.model, r.hyperparameters["model"]).train_flops_per_sample
                  / 1e9 if r.steady_samples_per_second else None)
        cells = [r.steady_epoch_seconds, r.warmup_epoch_seconds, r.steady_samples_per_second, gflops,
                 gflops / machine["gemm_float32_gflops"] if gflops else None, r.run_seconds]
        fmt = ["{:11.2f}", "{:9.2f}", "{:10.1f}", "{:8.2f}", "{:7.3f}", "{:7.1f}"]
        print(f"{r.dataset + '/' + r.model:28} {r.stack:18} {r.status:8} "
              + " ".join(f.format(c) if c is not None else " " * (len(f.format(0)) - 1) + "-"
                         for f, c in zip(fmt, cells)))
    print(f"\nresults (report included) are in {work}/results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
