"""Inference records, their statistics and the cross-evaluation matrix (docs/inference.md).

An inference record is one process's timed inference calls for one (data set, model,
engine, stack, repeat): the stack's own framework (`native`, the stack's inference mode,
docs/stack-contract.md) or an ONNX runtime running the model that stack exported
(`onnxruntime`, `openvino`, `openvino-bf16`). Records keep every call's seconds; the
tables derive the statistics, once, here: per batch size the median call with the
same two-level bootstrap interval as training (repeats, then calls within each), the p99
call, and samples per second. The cross-evaluation matrix compares, for every model,
what each stack predicts with each other stack's trained weights.

Twins: none (stacks write raw call seconds: python/dlrosetta/stacks/train.py,
r/R/train.R, julia/stacks/julia-native/src/train.jl; ONNX runtimes:
python/dlrosetta/onnx_runner.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Optional

import numpy as np

from dlrosetta.record import RunIdentity
from dlrosetta.statistics import estimate, seed_of

INFERENCE_SCHEMA_VERSION = "1.0.0"
NATIVE = "native"
#: The config's runtimes and the engines (report rows) each gives: OpenVINO runs every
#: model at f32 and, as its own row, at bf16 where the CPU has bf16 (its default there).
RUNTIME_ENGINES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino", "openvino-bf16")}
#: Cross-evaluation passes when every off-diagonal cell predicts the same class as the
#: training stack's own predictions on at least this share of the test split.
AGREEMENT_TOLERANCE = 0.995
#: How a skipped inference record whose stack has no usable trained weights starts: it is
#: made again when the training record changes (its input), not by a retry stamp.
NO_TRAINED_WEIGHTS = "no trained weights"


def trained_weights_dir(record_path: str | os.PathLike) -> Path:
    """Where a training run keeps its trained weights: beside its record."""
    path = Path(record_path)
    return path.with_name(path.name.removesuffix(".json") + ".weights")


def call_statistics(call_seconds: Iterable[float], batch_size: int) -> dict[str, float]:
    """One process's calls at one batch size: median and p99 seconds, samples per second."""
    calls = np.asarray(list(call_seconds), dtype=float)
    median = float(np.median(calls))
    return {"calls": int(calls.size), "median_seconds": median,
            "p99_seconds": float(np.quantile(calls, 0.99, method="higher")),
            "samples_per_second": batch_size / median}


def batch_fields(batches: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The record's `batches` from raw ones ({batch_size, warmup_calls, call_seconds})."""
    return tuple({"batch_size": int(b["batch_size"]), "warmup_calls": int(b["warmup_calls"]),
                  **call_statistics(b["call_seconds"], int(b["batch_size"])),
                  "call_seconds": [float(s) for s in b["call_seconds"]]} for b in batches)


@dataclass(frozen=True, kw_only=True)
class InferenceRecord(RunIdentity):
    """Timed inference calls of one process (schemas/inference.schema.json)."""
    engine: str
    repeat: int
    runtime: Optional[str] = None          # the framework (native) or ONNX runtime that ran the calls
    runtime_version: Optional[str] = None
    precision: str = "f32"
    parameter_count: Optional[int] = None
    weights_sha256: Optional[str] = None   # the trained-weights manifest measured
    batches: Optional[tuple[Mapping[str, Any], ...]] = None
    startup_seconds: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    # Native repeat 1: the cross-evaluation logits and the ONNX export.
    logits: Optional[str] = None
    unevaluated_weights: Optional[Mapping[str, str]] = None
    onnx_export: Optional[Mapping[str, Any]] = None
    # ONNX runtimes: the file run, and its predictions against the exporting stack's.
    onnx_sha256: Optional[str] = None
    opset: Optional[int] = None
    agreement: Optional[float] = None
    max_abs_logit_diff: Optional[float] = None
    test_accuracy: Optional[float] = None
    schema_version: str = INFERENCE_SCHEMA_VERSION

    KIND: ClassVar[str] = "inference"
    SEQUENCES: ClassVar[tuple[str, ...]] = ("batches",)


# -- tables ------------------------------------------------------------------------------
INFERENCE_COLUMNS = ["dataset", "model", "engine", "stack", "language", "framework", "backend", "runtime",
                     "runtime_version", "precision", "batch_size", "threads", "device", "repeats", "calls",
                     "latency_ms_median", "latency_ms_ci_low", "latency_ms_ci_high", "latency_ms_p99",
                     "samples_per_second_median", "samples_per_second_ci_low", "samples_per_second_ci_high",
                     "agreement", "max_abs_logit_diff", "status", "reason"]


def inference_rows(records: Iterable[InferenceRecord]) -> list[dict[str, Any]]:
    """One row per (data set, model, engine, stack, batch size) over its repeats: the
    median call with its two-level bootstrap interval, the median of the repeats' p99
    calls, samples per second from the median (interval inverted). A group with no ok
    repeat is one row with the status and reason of its first record."""
    groups: dict[tuple, list[InferenceRecord]] = {}
    for r in records:
        groups.setdefault((r.dataset, r.model, r.engine, r.stack), []).append(r)
    rows = []
    for key, group in sorted(groups.items()):
        group.sort(key=lambda r: r.repeat)
        ok = [r for r in group if r.status == "ok"]
        first = (ok or group)[0]
        base = {"dataset": first.dataset, "model": first.model, "engine": first.engine, "stack": first.stack,
                "language": first.language, "framework": first.framework, "backend": first.backend,
                "runtime": first.runtime, "runtime_version": first.runtime_version, "precision": first.precision,
                "threads": first.threads, "device": first.device, "agreement": first.agreement,
                "max_abs_logit_diff": first.max_abs_logit_diff}
        if not ok:
            rows.append({**base, "status": first.status, "reason": first.reason})
            continue
        for batch_size in sorted({b["batch_size"] for r in ok for b in r.batches}):
            per_repeat = [b for r in ok for b in r.batches if b["batch_size"] == batch_size]
            est = estimate([b["call_seconds"] for b in per_repeat], seed_of(*key, batch_size))
            rows.append({**base, "batch_size": batch_size, "repeats": est.repeats, "calls": est.samples,
                         "latency_ms_median": 1e3 * est.median, "latency_ms_ci_low": 1e3 * est.ci_low,
                         "latency_ms_ci_high": 1e3 * est.ci_high,
                         "latency_ms_p99": 1e3 * float(np.median([b["p99_seconds"] for b in per_repeat])),
                         "samples_per_second_median": batch_size / est.median,
                         "samples_per_second_ci_low": batch_size / est.ci_high,
                         "samples_per_second_ci_high": batch_size / est.ci_low,
                         "status": "ok", "reason": None})
    return rows


def write_inference_table(record_paths: Iterable[str | os.PathLike], out: str | os.PathLike) -> None:
    import pandas as pd

    rows = inference_rows(InferenceRecord.read(p) for p in record_paths)
    pd.DataFrame(rows, columns=INFERENCE_COLUMNS).to_csv(out, index=False)


CROSSEVAL_COLUMNS = ["dataset", "model", "trained_by", "evaluated_by", "status", "reason", "test_accuracy",
                     "agreement", "max_abs_logit_diff", "max_rel_logit_diff"]


def _logits(manifest: str) -> dict[str, np.ndarray]:
    from dlrosetta.npy import read_bundle

    return read_bundle(manifest, "logits")[0]


def crosseval_rows(records: Iterable[InferenceRecord], labels: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The matrix trained-by x evaluated-by for each (data set, model), from the native
    repeat-1 records (their logits bundles): the test accuracy of each cell and its
    agreement with the training stack's own predictions (the diagonal cell's argmax);
    `labels` maps each data set to its test labels. A cell that could not be computed
    says why (the evaluator's record, or the weights it was not given)."""
    rows = []
    by_case: dict[tuple[str, str], list[InferenceRecord]] = {}
    for r in records:
        by_case.setdefault((r.dataset, r.model), []).append(r)
    for (dataset, model), group in sorted(by_case.items()):
        logits = {r.stack: _logits(r.logits) for r in group if r.status == "ok" and r.logits}
        stacks = sorted(r.stack for r in group)
        y = labels[dataset]
        for evaluator in sorted(group, key=lambda r: r.stack):
            for trained_by in stacks:
                cell = {"dataset": dataset, "model": model, "trained_by": trained_by,
                        "evaluated_by": evaluator.stack}
                own = logits.get(trained_by, {}).get(trained_by)
                got = logits.get(evaluator.stack, {}).get(trained_by)
                if got is None:
                    reason = (evaluator.reason if evaluator.status != "ok" else
                              (evaluator.unevaluated_weights or {}).get(trained_by)
                              or f"{evaluator.stack} wrote no logits for {trained_by}'s weights")
                    rows.append({**cell, "status": "failed" if evaluator.status == "failed" else "skipped",
                                 "reason": reason})
                    continue
                row = {**cell, "status": "ok", "reason": None,
                       "test_accuracy": float(np.mean(got.argmax(1) == y))}
                if own is not None:
                    diff = float(np.max(np.abs(got - own)))
                    row.update(agreement=float(np.mean(got.argmax(1) == own.argmax(1))), max_abs_logit_diff=diff,
                               max_rel_logit_diff=diff / max(float(np.max(np.abs(own))), 1e-30))
                rows.append(row)
    return rows


def write_crosseval_table(record_paths: Iterable[str | os.PathLike], shards: Mapping[str, str],
                          out: str | os.PathLike) -> None:
    import pandas as pd

    from dlrosetta.npy import read_bundle

    labels = {d: read_bundle(m, "shards", names=["y_test"])[0]["y_test"] for d, m in shards.items()}
    rows = crosseval_rows((InferenceRecord.read(p) for p in record_paths), labels)
    pd.DataFrame(rows, columns=CROSSEVAL_COLUMNS).to_csv(out, index=False)
