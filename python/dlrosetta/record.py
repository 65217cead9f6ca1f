"""Result records: one typed, immutable, versioned JSON document per run.

Only the launcher writes records: it builds each from what the stack measured
(measurements.py; schemas/measurements.schema.json) and derives every statistic here,
once, whatever language ran. The schema is schemas/record.schema.json; docs/record.md
documents each field and keeps the changelog. Bump SCHEMA_VERSION with every change:
minor for added optional fields, major for anything a reader could trip on.

Twins: none (R and Julia stacks write measurements: r/R/measurements.R,
julia/src/measurements.jl).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

from dlrosetta.measurements import write_json_atomic

SCHEMA_VERSION = "2.3.0"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
STATUSES = ("ok", "skipped", "failed")
#: Per-epoch fields, tuples in Python, lists in JSON.
SERIES = ("epoch_seconds", "train_loss_per_epoch", "test_accuracy_per_epoch")


class RecordError(ValueError):
    """A record does not follow the schema."""


def check_status(status: str, reason: Optional[str], kind: str = "record") -> None:
    """A status of STATUSES; skipped and failed ones give their reason, ok ones none."""
    if status not in STATUSES:
        raise RecordError(f"status must be one of {STATUSES}, got {status!r}")
    if status != "ok" and not reason:
        raise RecordError(f"a {status} {kind} needs a reason")
    if status == "ok" and reason is not None:
        raise RecordError(f"an ok {kind} has no reason")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class RunIdentity:
    """What ran, on what and how it ended: the fields every record kind holds (training,
    profile and inference records, each with its own schema and version)."""
    status: str
    stack: str
    language: str
    framework: str
    backend: Optional[str]
    model: str
    dataset: str
    threads: int
    device: str
    reason: Optional[str] = None
    run_seconds: Optional[float] = None
    stack_code_sha256: Optional[str] = None
    host_cpu: Optional[str] = None
    host: str = field(default_factory=socket.gethostname)
    created_at: str = field(default_factory=utc_now)

    #: The kind's schema (schemas/<KIND>.schema.json) and its sequence fields: tuples
    #: here (the records are immutable), lists in JSON.
    KIND: ClassVar[str]
    SEQUENCES: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        check_status(self.status, self.reason, f"{self.KIND} record")
        for name in self.SEQUENCES:
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in self.SEQUENCES:
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    def write(self, path: str | os.PathLike) -> None:
        validate_json(self.to_dict(), self.KIND)
        write_json_atomic(path, self.to_dict())

    @classmethod
    def read(cls, path: str | os.PathLike):
        """The record at `path`, checked against its kind's schema (RecordError naming
        the file otherwise)."""
        try:
            data = json.loads(Path(path).read_text())
            validate_json(data, cls.KIND)
            return cls(**data)
        except (OSError, json.JSONDecodeError, RecordError, TypeError) as e:
            raise RecordError(f"{path}: not a {cls.KIND} record of schema "
                              f"{cls.__dataclass_fields__['schema_version'].default}: {e}") from None


@dataclass(frozen=True, kw_only=True)
class Record(RunIdentity):
    hyperparameters: Mapping[str, Any]
    seed: int
    language_version: Optional[str] = None
    framework_version: Optional[str] = None
    shards_sha256: Optional[str] = None
    initial_weights_sha256: Optional[str] = None
    parameter_count: Optional[int] = None
    train_samples_per_epoch: Optional[int] = None
    epoch_seconds: Optional[tuple[float, ...]] = None
    warmup_epoch_seconds: Optional[float] = None
    steady_epoch_seconds: Optional[float] = None
    steady_samples_per_second: Optional[float] = None
    train_loss_per_epoch: Optional[tuple[float, ...]] = None
    final_train_loss: Optional[float] = None
    test_accuracy: Optional[float] = None
    test_accuracy_per_epoch: Optional[tuple[float, ...]] = None
    eval_seconds: Optional[float] = None
    startup_seconds: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    fused_kernel: Optional[bool] = None
    kernel_notes: Optional[str] = None
    repeat: Optional[int] = None
    gemm_float32_gflops_before: Optional[float] = None
    gemm_float32_gflops_after: Optional[float] = None
    env_lock_sha256: Optional[str] = None
    trained_weights: Optional[str] = None
    trained_weights_sha256: Optional[str] = None
    schema_version: str = SCHEMA_VERSION

    KIND: ClassVar[str] = "record"
    SEQUENCES: ClassVar[tuple[str, ...]] = SERIES

    def write(self, path: str | os.PathLike) -> None:
        # The launcher validates a training record before writing it (validate_json);
        # tests write partial ones.
        write_json_atomic(path, self.to_dict())

    @staticmethod
    def timing_fields(epoch_seconds: list[float], samples_per_epoch: int) -> dict[str, Any]:
        """The derived timing fields: first epoch (warm-up/compile) kept apart from the
        steady epochs, whose mean gives seconds per epoch and samples per second."""
        steady = epoch_seconds[1:]
        steady_mean = sum(steady) / len(steady) if steady else None
        return {"epoch_seconds": tuple(epoch_seconds),
                "warmup_epoch_seconds": epoch_seconds[0],
                "steady_epoch_seconds": steady_mean,
                "steady_samples_per_second": samples_per_epoch / steady_mean if steady_mean else None,
                "train_samples_per_epoch": samples_per_epoch}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Record":
        """Strict: unknown fields and other major versions are rejected."""
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise RecordError(f"record schema_version {version!r} is not readable by schema {SCHEMA_VERSION} "
                              f"(docs/record.md, changelog); rerun the study to replace it")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecordError(f"record has unknown fields {unknown}")
        try:
            return cls(**data)
        except TypeError as e:
            raise RecordError(f"record is incomplete: {e}") from e

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Record":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise RecordError(f"cannot read record {path}: {e}") from e
        try:
            return cls.from_dict(data)
        except RecordError as e:
            raise RecordError(f"{path}: {e}") from None


@functools.lru_cache(maxsize=None)
def _validator(kind: str):
    import jsonschema  # orchestrator side only: stack environments do not need it

    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_json(data: Mapping[str, Any], kind: str) -> None:
    """Validate a document against schemas/<kind>.schema.json (record, measurements,
    runspec, stack); the error names the first offending keys."""
    errors = sorted(_validator(kind).iter_errors(dict(data)), key=lambda e: list(e.path))
    if errors:
        msgs = "; ".join(f"{'/'.join(map(str, e.path)) or '<document>'}: {e.message}" for e in errors[:5])
        version = SCHEMA_VERSION if kind == "record" else "schemas/" + kind + ".schema.json"
        raise RecordError(f"{kind} does not follow {version}: {msgs}")


def validate_record_dict(data: Mapping[str, Any]) -> None:
    validate_json(data, "record")
