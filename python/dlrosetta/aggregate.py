"""All records of a study -> one table (summary.csv and summary.parquet).

Besides the record fields, the table derives (never types in) the comparisons the report
shows: achieved training GFLOP/s and its fraction of the machine's float32 GEMM rate,
each stack's steady epoch time against the fastest Python stack on the same model and
data, and, for stacks driving a Python framework from another language (R's Keras), the
speed against their Python twin (same framework and backend).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from dlrosetta.models.spec import model_spec
from dlrosetta.record import Record

COLUMNS = [
    "dataset", "model", "stack", "language", "framework", "backend", "status", "reason",
    "framework_version", "language_version", "device", "threads", "batch_size", "epochs",
    "parameter_count", "warmup_epoch_seconds", "steady_epoch_seconds",
    "steady_samples_per_second", "train_gflops", "gemm_float32_gflops", "gemm_fraction",
    "vs_fastest_python", "fastest_python_stack", "python_twin", "vs_python_twin_speed",
    "test_accuracy", "final_train_loss", "eval_seconds", "startup_seconds", "run_seconds",
    "peak_rss_mb", "fused_kernel", "kernel_notes", "shards_sha256", "initial_weights_sha256",
    "created_at", "host",
]


def records_frame(records: Iterable[Record], gemm_gflops: float | None) -> pd.DataFrame:
    rows = []
    for r in records:
        hp = r.hyperparameters
        flops = model_spec(r.model, hp["model"]).train_flops_per_sample
        sps = r.steady_samples_per_second
        rows.append({**{k: getattr(r, k) for k in (
            "dataset", "model", "stack", "language", "framework", "backend", "status", "reason",
            "framework_version", "language_version", "device", "threads", "parameter_count",
            "warmup_epoch_seconds", "steady_epoch_seconds", "steady_samples_per_second",
            "test_accuracy", "final_train_loss", "eval_seconds", "startup_seconds", "run_seconds",
            "peak_rss_mb", "fused_kernel", "kernel_notes", "shards_sha256",
            "initial_weights_sha256", "created_at", "host")},
            "batch_size": hp["training"]["batch_size"], "epochs": hp["training"]["epochs"],
            "train_gflops": sps * flops / 1e9 if sps else None,
            "gemm_float32_gflops": gemm_gflops})
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
    for _, group in df.groupby(["dataset", "model"]):
        python = group[(group.language == "python") & group.steady_epoch_seconds.notna()]
        if not python.empty:
            fastest = python.loc[python.steady_epoch_seconds.idxmin()]
            df.loc[group.index, "fastest_python_stack"] = fastest["stack"]
            df.loc[group.index, "vs_fastest_python"] = group.steady_epoch_seconds / fastest.steady_epoch_seconds
        for i, row in group[group.language != "python"].iterrows():
            twin = python[(python.framework == row.framework) & (python.backend == row.backend)]
            if not twin.empty:
                df.loc[i, "python_twin"] = twin.iloc[0]["stack"]
                df.loc[i, "vs_python_twin_speed"] = (row.steady_samples_per_second
                                                     / twin.iloc[0].steady_samples_per_second)


def write_summary(record_paths: Iterable[os.PathLike], machine_path: os.PathLike,
                  csv_path: Path, parquet_path: Path) -> pd.DataFrame:
    machine = json.loads(Path(machine_path).read_text())
    df = records_frame((Record.read(p) for p in record_paths), machine.get("gemm_float32_gflops"))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    df.to_parquet(parquet_path, index=False)
    return df
