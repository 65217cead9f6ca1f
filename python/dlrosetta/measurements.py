"""What a stack measured in one run, raw: the document every stack writes to the run
spec's `measurements` path (schema: schemas/measurements.schema.json). Statistics are
not computed here; the launcher derives the record from these values (record.py).

Twins: r/R/measurements.R, julia/src/measurements.jl.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

MEASUREMENTS_VERSION = 2
STATUSES = ("ok", "skipped")
OK_FIELDS = ("language_version", "framework_version", "device", "parameter_count", "epoch_seconds",
             "train_loss_per_epoch", "test_accuracy_per_epoch", "eval_seconds_per_epoch", "startup_seconds",
             "peak_rss_mb")
OPTIONAL_FIELDS = ("fused_kernel", "kernel_notes")
#: The per-epoch series: JSON arrays of floats, whatever sequence of numbers a stack gives.
SERIES = ("epoch_seconds", "train_loss_per_epoch", "test_accuracy_per_epoch", "eval_seconds_per_epoch")


def measurements(status: str, stack: str, model: str, dataset: str, reason: Optional[str] = None,
                 **fields: Any) -> dict[str, Any]:
    """The measurements document, checked as the schema checks it (stacks' environments
    have no jsonschema; the launcher validates again)."""
    if status not in STATUSES:
        raise ValueError(f"measurements status must be one of {STATUSES}, got {status!r}")
    if (status == "ok") == bool(reason):
        raise ValueError("an ok run has no reason; a skipped run needs one")
    unknown = sorted(set(fields) - set(OK_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(f"unknown measurements {unknown}")
    missing = [f for f in OK_FIELDS if fields.get(f) is None] if status == "ok" else []
    if missing:
        raise ValueError(f"an ok run must measure {missing}")
    doc = {"measurements_version": MEASUREMENTS_VERSION, "status": status, "reason": reason,
           "stack": stack, "model": model, "dataset": dataset, **fields}
    for name in SERIES:
        if doc.get(name) is not None:
            doc[name] = [float(v) for v in doc[name]]
    return doc


def write_measurements(path: str | os.PathLike, status: str, stack: str, model: str, dataset: str,
                       reason: Optional[str] = None, **fields: Any) -> None:
    write_json_atomic(path, measurements(status, stack, model, dataset, reason, **fields))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Readers never see half a file: write beside it, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
