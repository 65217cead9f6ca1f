"""All records of a study -> the tables the report reads (docs/statistics.md).

  runs.csv      one row per record (per repeat), the record's fields and its flags
  epochs.csv    one row per epoch of every compared ok run: seconds, cumulative seconds,
                training loss, test accuracy (the loss and time-to-accuracy charts)
  summary.csv   one row per (data set, model, stack, threads, hardware): the statistics
                over its repeats (dlrosetta.statistics) and the comparisons, with intervals
  noise.csv     one row per (hardware, thread count): the GEMM probes around every run
                and how far that hardware's speed drifted over the study

Everything here is derived from the records, never typed in. Only records of the study
as configured are compared: a record whose schema cannot be read, or that was made with
other settings (threads, hyperparameters, seed, data, stack code), is listed in runs.csv
with `belongs` false and the mismatch named, and never ranked (docs/configuration.md,
"Incremental"). Like hardware only: the hardware a run had (its node's CPU model, and
the accelerator when it used one, both measured where it ran) is part of every group,
so runs from different CPU or GPU models are never compared with each other.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from dlrosetta.checksum import sha256_file
from dlrosetta.model_spec import model_spec
from dlrosetta.record import Record, RecordError
from dlrosetta.statistics import DRIFT_LIMIT, NOISY_CV, Estimate, change, estimate, ratio, seed_of, windows

GROUP = ["dataset", "model", "stack", "threads", "hardware"]
#: What one comparison holds: every stack of a (data set, model) at one thread count on one kind of hardware.
CASE = ["dataset", "model", "threads", "hardware"]
#: Record fields copied into runs.csv as they are.
RECORD_COLUMNS = [
    "dataset", "model", "stack", "threads", "repeat", "language", "framework", "backend", "status", "reason",
    "framework_version", "language_version", "device", "parameter_count", "train_samples_per_epoch",
    "warmup_epoch_seconds", "steady_epoch_seconds", "steady_samples_per_second", "test_accuracy",
    "final_train_loss", "eval_seconds", "startup_seconds", "run_seconds", "peak_rss_mb", "fused_kernel",
    "kernel_notes", "gemm_float32_gflops_before", "gemm_float32_gflops_after", "shards_sha256",
    "initial_weights_sha256", "created_at", "host", "host_cpu",
]
RUN_COLUMNS = RECORD_COLUMNS + [
    "hardware", "batch_size", "epochs", "gemm_run_drift", "time_to_target_seconds", "belongs", "mismatch", "cause",
    "record_file"]
EPOCH_COLUMNS = ["dataset", "model", "stack", "language", "threads", "hardware", "repeat", "epoch", "epoch_seconds",
                 "cumulative_seconds", "train_loss", "test_accuracy"]
#: Statistics over repeats (dlrosetta.statistics.Estimate) written per measured quantity.
ESTIMATE_FIELDS = ["median", "ci_low", "ci_high", "cv", "min", "max"]
SUMMARY_COLUMNS = (
    GROUP + ["language", "framework", "backend", "status", "cause", "repeats", "runs_not_ok", "steady_epochs",
             "batch_size", "epochs", "device", "parameter_count", "framework_version", "language_version",
             "fused_kernel", "kernel_notes"]
    + [f"steady_epoch_seconds_{f}" for f in ESTIMATE_FIELDS]
    + [f"steady_samples_per_second_{f}" for f in ESTIMATE_FIELDS]
    + [f"warmup_epoch_seconds_{f}" for f in ("median", "ci_low", "ci_high")]
    + ["noisy", "rank", "indistinguishable_from",
       "fastest_stack", "vs_fastest", "vs_fastest_ci_low", "vs_fastest_ci_high", "tie_with_fastest",
       "fastest_python_stack", "vs_fastest_python", "vs_fastest_python_ci_low", "vs_fastest_python_ci_high",
       "tie_with_fastest_python",
       "python_twin", "vs_python_twin", "vs_python_twin_ci_low", "vs_python_twin_ci_high", "tie_with_python_twin",
       "target_accuracy", "time_to_target_seconds_median", "time_to_target_seconds_ci_low",
       "time_to_target_seconds_ci_high", "repeats_reaching_target",
       "test_accuracy_median", "final_train_loss_median", "startup_seconds_median", "peak_rss_mb_max",
       "train_gflops", "gemm_float32_gflops", "gemm_fraction", "gemm_run_drift_max"])
NOISE_COLUMNS = ["hardware", "threads", "probes", "windows", "start_gflops", "end_gflops", "min_window_gflops",
                 "max_window_gflops", "min_gflops", "median_gflops", "max_gflops", "drift", "drifting",
                 "slowest_window_runs"]
#: Record fields that must equal the study's expectation for the record to belong.
EXPECTED_FIELDS = ("threads", "hyperparameters", "seed", "stack_code_sha256", "shards_sha256")


def cause(record: Record) -> str | None:
    """One line saying why a run measured nothing: the error line of a crash's log
    tail (not the command line the log starts with), or the skip reason."""
    if record.reason is None:
        return None
    lines = [ln.strip() for ln in record.reason.splitlines() if ln.strip() and not ln.startswith("$ ")]
    if record.status == "failed":
        errors = [ln for ln in lines if any(w in ln for w in ("Error", "error", "Exception", "Killed"))]
        return (errors or lines)[-1] if lines else record.reason
    return lines[0] if lines else record.reason


def mismatches(record: Record, expected: dict) -> list[str]:
    """How a record differs from what the study, as configured now, would produce."""
    out = []
    for key in EXPECTED_FIELDS:
        want, got = expected.get(key), getattr(record, key)
        if want is not None and got is not None and got != want:
            out.append(f"{key}: record has {got!r}, study has {want!r}")
    return out


def hardware(record: Record) -> str:
    """The kind of hardware a run had: its node's CPU model, and the accelerator it
    trained on, if any (the stack reports it as its device, e.g. "gpu:0 (NVIDIA H200)")."""
    cpu = record.host_cpu or "unknown CPU"
    return cpu if record.device in (None, "cpu") else f"{record.device} on {cpu}"


def time_to_target(record: Record, target: Optional[float]) -> Optional[float]:
    """Training seconds (warm-up epoch included, evaluation not) until the test accuracy
    after an epoch first reaches `target`; None if it never does."""
    if target is None or not record.test_accuracy_per_epoch:
        return None
    for seconds, accuracy in zip(np.cumsum(record.epoch_seconds), record.test_accuracy_per_epoch):
        if accuracy >= target:
            return float(seconds)
    return None


def run_rows(records: Iterable[tuple[str, Record]], expected: dict[str, dict],
             targets: dict[str, float]) -> list[dict]:
    rows = []
    for path, r in records:
        wrong = mismatches(r, expected.get(str(path), {}))
        before, after = r.gemm_float32_gflops_before, r.gemm_float32_gflops_after
        rows.append({**{k: getattr(r, k) for k in RECORD_COLUMNS}, "hardware": hardware(r),
                     "batch_size": r.hyperparameters["training"]["batch_size"],
                     "epochs": r.hyperparameters["training"]["epochs"],
                     "gemm_run_drift": change([before, after]) if before and after else None,
                     "time_to_target_seconds": time_to_target(r, targets.get(r.dataset)),
                     "belongs": not wrong, "mismatch": "; ".join(wrong) or None, "cause": cause(r),
                     "record_file": str(path)})
    return rows


def epoch_rows(records: Iterable[Record]) -> list[dict]:
    rows = []
    for r in records:
        cumulative = np.cumsum(r.epoch_seconds)
        for e, seconds in enumerate(r.epoch_seconds):
            rows.append({**{k: getattr(r, k) for k in ("dataset", "model", "stack", "language", "threads",
                                                        "repeat")}, "hardware": hardware(r),
                         "epoch": e + 1, "epoch_seconds": seconds, "cumulative_seconds": float(cumulative[e]),
                         "train_loss": r.train_loss_per_epoch[e],
                         "test_accuracy": (r.test_accuracy_per_epoch[e] if r.test_accuracy_per_epoch
                                           else None)})
    return rows


def _estimate_columns(prefix: str, est: Optional[Estimate], fields=ESTIMATE_FIELDS) -> dict:
    return {f"{prefix}_{f}": (getattr(est, f) if est else None) for f in fields}


def group_row(key: tuple, runs: list[tuple[dict, Record]], target: Optional[float]
              ) -> tuple[dict, Optional[Estimate]]:
    """One summary row from a group's runs, and its steady-epoch estimate (for the comparisons)."""
    ok = [(row, r) for row, r in runs if r.status == "ok"]
    first = (ok or runs)[0][1]
    row = {**dict(zip(GROUP, key)), **{k: getattr(first, k) for k in (
        "language", "framework", "backend", "device", "parameter_count", "framework_version",
        "language_version", "fused_kernel", "kernel_notes")},
        "status": "ok" if ok else first.status, "cause": None if ok else runs[0][0]["cause"],
        "repeats": len(ok), "runs_not_ok": len(runs) - len(ok),
        "batch_size": runs[0][0]["batch_size"], "epochs": runs[0][0]["epochs"], "target_accuracy": target}
    seed = seed_of(*key)
    steady = [r.epoch_seconds[1:] for _, r in ok]
    samples = [[r.train_samples_per_epoch / s for s in r.epoch_seconds[1:]] for _, r in ok]
    times = estimate(steady, seed)
    speeds = estimate(samples, seed)
    warmup = estimate([[r.warmup_epoch_seconds] for _, r in ok], seed)
    reached = [x["time_to_target_seconds"] for x, _ in ok if x["time_to_target_seconds"] is not None]
    to_target = estimate([[t] for t in reached], seed)
    probes = [p for _, r in ok for p in (r.gemm_float32_gflops_before, r.gemm_float32_gflops_after) if p]
    run_drifts = [x["gemm_run_drift"] for x, _ in ok if x["gemm_run_drift"] is not None]
    flops = model_spec(first.model, first.hyperparameters["model"]).train_flops_per_sample
    train_gflops = speeds.median * flops / 1e9 if speeds else None
    gemm = float(np.median(probes)) if probes else None
    row.update({
        **_estimate_columns("steady_epoch_seconds", times),
        **_estimate_columns("steady_samples_per_second", speeds),
        **_estimate_columns("warmup_epoch_seconds", warmup, ("median", "ci_low", "ci_high")),
        **_estimate_columns("time_to_target_seconds", to_target, ("median", "ci_low", "ci_high")),
        "steady_epochs": times.samples if times else 0,
        "noisy": bool(times and times.cv > NOISY_CV),
        "repeats_reaching_target": len(reached) if target is not None else None,
        "test_accuracy_median": _median([r.test_accuracy for _, r in ok]),
        "final_train_loss_median": _median([r.final_train_loss for _, r in ok]),
        "startup_seconds_median": _median([r.startup_seconds for _, r in ok]),
        "peak_rss_mb_max": max((r.peak_rss_mb for _, r in ok), default=None),
        "train_gflops": train_gflops, "gemm_float32_gflops": gemm,
        "gemm_fraction": train_gflops / gemm if train_gflops and gemm else None,
        "gemm_run_drift_max": max(run_drifts, default=None)})
    return row, times


def _median(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def compare(rows: list[dict], estimates: list[Optional[Estimate]]) -> None:
    """Per (data set, model, threads, hardware): rank by median steady epoch seconds, where a rank
    counts only the stacks that are faster beyond doubt (intervals apart), and each
    stack's time against the fastest stack, the fastest Python stack and its Python twin
    (same framework and backend), each ratio with its interval and a tie flag."""
    by_case: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        if estimates[i] is not None:
            by_case.setdefault(tuple(row[k] for k in CASE), []).append(i)
    for members in by_case.values():
        times = {i: estimates[i] for i in members}
        order = {i: (times[i].median, rows[i]["stack"]) for i in members}  # the summary's sort order
        fastest = min(members, key=order.get)
        python = [i for i in members if rows[i]["language"] == "python"]
        fastest_python = min(python, key=order.get) if python else None
        for i in members:
            rows[i]["rank"] = 1 + sum(times[j].ci_high < times[i].ci_low for j in members)
            rows[i]["indistinguishable_from"] = ";".join(
                rows[j]["stack"] for j in members if j != i and times[i].overlaps(times[j])) or None
            _ratio_columns(rows[i], "fastest", rows[fastest]["stack"], times[i], times[fastest])
            if fastest_python is not None:
                _ratio_columns(rows[i], "fastest_python", rows[fastest_python]["stack"], times[i],
                               times[fastest_python])
            twins = [j for j in python if rows[i]["language"] != "python"
                     and rows[j]["framework"] == rows[i]["framework"]
                     and (rows[j]["backend"] or None) == (rows[i]["backend"] or None)]
            if twins:
                _ratio_columns(rows[i], "python_twin", rows[twins[0]]["stack"], times[i], times[twins[0]])


def _ratio_columns(row: dict, name: str, other: str, mine: Estimate, theirs: Estimate) -> None:
    value, low, high = ratio(mine, theirs)
    stack_column = "python_twin" if name == "python_twin" else f"{name}_stack"
    row.update({stack_column: other, f"vs_{name}": value, f"vs_{name}_ci_low": low,
                f"vs_{name}_ci_high": high, f"tie_with_{name}": row["stack"] != other and mine.overlaps(theirs)})


def summary_rows(compared: list[tuple[dict, Record]], targets: dict[str, float]) -> list[dict]:
    groups: dict[tuple, list[tuple[dict, Record]]] = {}
    for row, r in compared:
        groups.setdefault(tuple(row[k] for k in GROUP), []).append((row, r))
    rows, estimates = [], []
    for key, runs in groups.items():
        row, est = group_row(key, sorted(runs, key=lambda x: x[1].repeat or 0), targets.get(key[0]))
        rows.append(row)
        estimates.append(est)
    compare(rows, estimates)
    return rows


def noise_rows(compared: list[tuple[dict, Record]]) -> list[dict]:
    """The GEMM probes of every compared run, per hardware and thread count, in the order the runs
    ended, summarised by windows of consecutive probes (statistics.windows): the first
    window is the study's start, the last its end, and the drift is the change between
    the window medians."""
    rows = []
    by_kind: dict[tuple[str, int], list[Record]] = {}
    for row, r in compared:
        if r.gemm_float32_gflops_before and r.gemm_float32_gflops_after:
            by_kind.setdefault((row["hardware"], r.threads), []).append(r)
    for (kind, threads), runs in sorted(by_kind.items()):
        runs.sort(key=lambda r: r.created_at)
        probes = [p for r in runs for p in (r.gemm_float32_gflops_before, r.gemm_float32_gflops_after)]
        spans = windows(probes)
        medians = [m for _, _, m in spans]
        slowest = min(spans, key=lambda w: w[2])
        d = change(medians)
        rows.append({"hardware": kind, "threads": threads, "probes": len(probes), "windows": len(spans),
                     "start_gflops": medians[0], "end_gflops": medians[-1], "min_window_gflops": min(medians),
                     "max_window_gflops": max(medians), "min_gflops": min(probes),
                     "median_gflops": float(np.median(probes)), "max_gflops": max(probes), "drift": d,
                     "drifting": d > DRIFT_LIMIT,
                     # Two probes a run: probe i belongs to run i // 2.
                     "slowest_window_runs": ";".join(
                         f"{r.stack} {r.model} repeat {r.repeat}"
                         for r in runs[slowest[0] // 2: (slowest[1] + 1) // 2])})
    return rows


def expected_fields(plan: dict[str, dict]) -> dict[str, dict]:
    """The study's expectation per record file: the plan's run parameters and stack
    code, and the shards' current checksum."""
    out = {}
    for path, p in plan.items():
        shards = Path(p["shards"])
        out[path] = {"threads": p["threads"], "seed": p["seed"], "stack_code_sha256": p["stack_code_sha256"],
                     "hyperparameters": {"model": p["model_config"], "training": p["training"]},
                     "shards_sha256": sha256_file(shards) if shards.is_file() else None}
    return out


def summarize(records: Iterable[tuple[str, Record]], expected: dict[str, dict] | None = None,
              unreadable: Iterable[tuple[str, str]] = (), targets: dict[str, float] | None = None
              ) -> dict[str, pd.DataFrame]:
    """`records` are (file, Record) pairs; `expected` maps a record file to the fields
    the study expects of it; `unreadable` are (file, error) pairs; `targets` maps a data
    set to its target accuracy. Returns the four tables by name."""
    records = list(records)
    targets = targets or {}
    runs = run_rows(records, expected or {}, targets)
    for path, error in unreadable:
        p = Path(path)
        runs.append({"stack": p.parent.parent.name, "model": p.parent.parent.parent.name,
                     "dataset": p.parent.parent.parent.parent.name, "status": "unreadable", "reason": error,
                     "cause": error.splitlines()[0], "belongs": False, "mismatch": "unreadable record",
                     "record_file": str(path)})
    compared = [(row, r) for row, (_, r) in zip(runs, records) if row["belongs"]]
    ok = [r for _, r in compared if r.status == "ok"]
    tables = {
        "runs": pd.DataFrame(runs, columns=RUN_COLUMNS),
        "epochs": pd.DataFrame(epoch_rows(ok), columns=EPOCH_COLUMNS),
        "summary": pd.DataFrame(summary_rows(compared, targets), columns=SUMMARY_COLUMNS),
        "noise": pd.DataFrame(noise_rows(compared), columns=NOISE_COLUMNS),
    }
    # Unreadable records have no thread count or repeat: keep the column whole numbers.
    tables["runs"] = tables["runs"].astype({"threads": "Int64", "repeat": "Int64"})
    tables["runs"] = tables["runs"].sort_values(["dataset", "model", "stack", "threads", "repeat"],
                                                ignore_index=True, na_position="last")
    tables["summary"] = tables["summary"].sort_values(
        [*CASE, "steady_epoch_seconds_median", "stack"], ignore_index=True)
    return tables


def write_summary(record_paths: Iterable[os.PathLike], out_dir: Path, plan: dict[str, dict] | None = None,
                  targets: dict[str, float] | None = None) -> dict[str, pd.DataFrame]:
    """Reads the records and writes <out_dir>/{summary,runs,epochs,noise}.csv and
    summary.parquet. `plan` maps each record file to its run parameters (plus
    `stack_code_sha256`)."""
    records, unreadable = [], []
    for p in record_paths:
        try:
            records.append((str(p), Record.read(p)))
        except RecordError as e:
            unreadable.append((str(p), str(e)))
    tables = summarize(records, expected_fields(plan or {}), unreadable, targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out_dir / f"{name}.csv", index=False)
    tables["summary"].to_parquet(out_dir / "summary.parquet", index=False)
    return tables
