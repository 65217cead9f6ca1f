"""All records of a study -> one table (summary.csv and summary.parquet).

Besides the record fields, the table derives (never types in) the comparisons the report
shows: achieved training GFLOP/s and its fraction of the machine's float32 GEMM rate,
each stack's steady epoch time against the fastest Python stack on the same model and
data, and, for stacks driving a Python framework from another language (R's Keras), the
speed against their Python twin (same framework and backend).

Only records of the study as configured are compared. A record whose schema cannot be
read, or that was made with other settings (threads, hyperparameters, seed, device,
data, stack code) or on another CPU, is kept in the table with `belongs` false and the
mismatch named, never ranked (docs/configuration.md, "Incremental").
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from dlrosetta.checksum import sha256_file
from dlrosetta.model_spec import model_spec
from dlrosetta.record import Record, RecordError

COLUMNS = [
    "dataset", "model", "stack", "language", "framework", "backend", "status", "reason",
    "framework_version", "language_version", "device", "threads", "batch_size", "epochs",
    "parameter_count", "warmup_epoch_seconds", "steady_epoch_seconds",
    "steady_samples_per_second", "train_gflops", "gemm_float32_gflops", "gemm_fraction",
    "vs_fastest_python", "fastest_python_stack", "python_twin", "vs_python_twin_speed",
    "test_accuracy", "final_train_loss", "eval_seconds", "startup_seconds", "run_seconds",
    "peak_rss_mb", "fused_kernel", "kernel_notes", "shards_sha256", "initial_weights_sha256",
    "created_at", "host", "host_cpu", "belongs", "mismatch", "cause", "record_file",
]
#: Record fields that must equal the study's expectation for the record to belong.
EXPECTED_FIELDS = ("threads", "hyperparameters", "seed", "stack_code_sha256", "shards_sha256", "host_cpu")


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


def records_frame(records: Iterable[Record], gemm_gflops: float | None,
                  expected: dict[str, dict] | None = None, unreadable: Iterable[tuple[str, str]] = ()
                  ) -> pd.DataFrame:
    """`records` are (file, Record) pairs; `expected` maps a record file to the fields
    the study expects of it; `unreadable` are (file, error) pairs."""
    rows = []
    for path, r in records:
        hp = r.hyperparameters
        wrong = mismatches(r, (expected or {}).get(str(path), {}))
        flops = model_spec(r.model, hp["model"]).train_flops_per_sample
        sps = r.steady_samples_per_second
        rows.append({**{k: getattr(r, k) for k in (
            "dataset", "model", "stack", "language", "framework", "backend", "status", "reason",
            "framework_version", "language_version", "device", "threads", "parameter_count",
            "warmup_epoch_seconds", "steady_epoch_seconds", "steady_samples_per_second",
            "test_accuracy", "final_train_loss", "eval_seconds", "startup_seconds", "run_seconds",
            "peak_rss_mb", "fused_kernel", "kernel_notes", "shards_sha256",
            "initial_weights_sha256", "created_at", "host", "host_cpu")},
            "belongs": not wrong, "mismatch": "; ".join(wrong) or None, "cause": cause(r),
            "record_file": str(path),
            "batch_size": hp["training"]["batch_size"], "epochs": hp["training"]["epochs"],
            "train_gflops": sps * flops / 1e9 if sps else None,
            "gemm_float32_gflops": gemm_gflops})
    for path, error in unreadable:
        rows.append({"stack": Path(path).stem, "model": Path(path).parent.name,
                     "dataset": Path(path).parent.parent.name, "status": "unreadable", "reason": error,
                     "cause": error.splitlines()[0], "belongs": False, "mismatch": "unreadable record",
                     "record_file": str(path)})
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in (
        "gemm_fraction", "vs_fastest_python", "fastest_python_stack", "python_twin",
        "vs_python_twin_speed")])
    df["gemm_fraction"] = df["train_gflops"] / df["gemm_float32_gflops"]
    _compare(df)
    return df[COLUMNS].sort_values(["dataset", "model", "language", "stack"], ignore_index=True)


def _compare(df: pd.DataFrame) -> None:
    df["vs_fastest_python"] = float("nan")
    df["fastest_python_stack"] = None
    df["python_twin"] = None
    df["vs_python_twin_speed"] = float("nan")
    for _, group in df[df.belongs.astype(bool)].groupby(["dataset", "model"]):
        python = group[(group.language == "python") & group.steady_epoch_seconds.notna()]
        if not python.empty:
            fastest = python.loc[python.steady_epoch_seconds.idxmin()]
            df.loc[group.index, "fastest_python_stack"] = fastest["stack"]
            df.loc[group.index, "vs_fastest_python"] = group.steady_epoch_seconds / fastest.steady_epoch_seconds
        for i, row in group[group.language != "python"].iterrows():
            # fillna: a stack without a backend (NaN in the table) has a twin without one too.
            twin = python[(python.framework == row.framework)
                          & (python.backend.fillna("") == ("" if pd.isna(row.backend) else row.backend))]
            if not twin.empty:
                df.loc[i, "python_twin"] = twin.iloc[0]["stack"]
                df.loc[i, "vs_python_twin_speed"] = (row.steady_samples_per_second
                                                     / twin.iloc[0].steady_samples_per_second)


def expected_fields(plan: dict[str, dict], machine: dict) -> dict[str, dict]:
    """The study's expectation per record file: the plan's run parameters and stack
    code, the shards' current checksum and this machine's CPU."""
    out = {}
    for path, p in plan.items():
        shards = Path(p["shards"])
        out[path] = {"threads": p["threads"], "seed": p["seed"], "stack_code_sha256": p["stack_code_sha256"],
                     "hyperparameters": {"model": p["model_config"], "training": p["training"]},
                     "shards_sha256": sha256_file(shards) if shards.is_file() else None,
                     "host_cpu": machine.get("cpu_model")}
    return out


def write_summary(record_paths: Iterable[os.PathLike], machine_path: os.PathLike,
                  csv_path: Path, parquet_path: Path, plan: dict[str, dict] | None = None) -> pd.DataFrame:
    """`plan` maps each record file to its run spec (plus `stack_code_sha256`)."""
    machine = json.loads(Path(machine_path).read_text())
    records, unreadable = [], []
    for p in record_paths:
        try:
            records.append((str(p), Record.read(p)))
        except RecordError as e:
            unreadable.append((str(p), str(e)))
    df = records_frame(records, machine.get("gemm_float32_gflops"),
                       expected_fields(plan or {}, machine), unreadable)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    df.to_parquet(parquet_path, index=False)
    return df
