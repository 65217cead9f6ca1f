"""Where a stack's steady step goes: a framework-neutral breakdown of a profiled block.

In profile mode (docs/profile.md) a stack runs a block of steady steps under its
framework's own profiler and writes the trace as Chrome trace-event JSON. This module,
on the orchestrator side, reads that trace, maps every op name to one category, and
splits the block's wall time between the categories, once, whatever the language:

- the outermost classified event wins (an optimiser step owns the adds inside it, a
  convolution its reorders), unknown events are transparent (their classified children
  count, their own time does not);
- where several threads run classified events at once, each instant is shared equally
  between them, so the categories never sum to more than the wall time;
- `overhead` is the wall time no classified event covers: framework dispatch, the
  interpreter, the profiler's own cost.

The profile record (schemas/profile.schema.json, PROFILE_SCHEMA_VERSION) is written by
the launcher next to the training records' tree, under results/profiles/.

Twins: none (stacks write traces: python/dlrosetta/profiler.py, julia/src/kernel_timer.jl).
"""
from __future__ import annotations

import gzip
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Optional

from dlrosetta.profiler import complete_events
from dlrosetta.record import RecordError, RunIdentity

PROFILE_SCHEMA_VERSION = "1.0.0"
OVERHEAD = "overhead"
#: Checked in this order: a softmax-cross-entropy is loss before it is elementwise, a
#: fused batch-norm-ReLU normalisation, an embedding gather data.
PATTERNS: tuple[tuple[str, str], ...] = (
    ("loss", r"cross_?entropy|softmax|nll_?loss|logits"),
    ("optimiser", r"optimi[sz]er|sgd|adam|resourceapply|apply_?grad|momentum|_foreach_|_update\b"),
    ("normalisation", r"batch_?norm|fusedbatchnorm|moments|layer_?norm"),
    ("recurrent", r"lstm|rnn|gru|while|scan|recurrent"),
    ("conv_gemm", r"conv(?!ert)|matmul|gemm|(^|[:_./ ])(mm|addmm|bmm|baddbmm|dot|dot_general)\b|dot\.|"
                  r"linear|dense|einsum|inner_?product|fully_?connected"),
    ("data", r"gather|index_select|\bindex\b|take|embedding|memcpy|h2d|to_device"),
    ("elementwise", r"relu|add|mul|sub|div|sigmoid|tanh|exp|log|pow|sqrt|rsqrt|max|min|pool|pad|"
                    r"concat|\bcat\b|stack|split|slice|reshape|transpose|permute|copy|clone|fill|zero|"
                    r"select|where|cast|convert|neg|sum|mean|reduce|fusion|broadcast|clamp|threshold|"
                    r"bias|square|abs|sign|equal|greater|less|compare|iota|pack|tile|flatten|view|"
                    r"contiguous|assign|ones|empty"),
)
CATEGORIES = tuple(c for c, _ in PATTERNS) + (OVERHEAD,)
_COMPILED = tuple((c, re.compile(p)) for c, p in PATTERNS)
#: Events that wrap ops without being one, whatever their names contain: TensorFlow's
#: thread-pool regions around its executor's ops and its Python-side tensor conversion,
#: the end markers of XLA's thunks.
TRANSPARENT = re.compile(r"^threadpoollistener|^end: |^convert_to_tensor")
TOP_OPS = 12


def classify(name: str, cat: Optional[str] = None) -> Optional[str]:
    """The category of one op (None: unknown, transparent). A trace event may name its
    category itself (`cat`, one of CATEGORIES): a stack's own kernel timers do."""
    if cat in CATEGORIES and cat != OVERHEAD:
        return cat
    lowered = name.lower()
    if TRANSPARENT.search(lowered):
        return None
    for category, pattern in _COMPILED:
        if pattern.search(lowered):
            return category
    return None


def read_trace(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete events ("X", or "B"/"E" pairs made complete) of a Chrome trace-event
    file, plain or gzipped, as {name, cat, ts, dur, thread} with times in microseconds."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, EOFError) as e:
        raise RecordError(f"cannot read the profile trace {path}: {e}") from e
    raw = data.get("traceEvents", []) if isinstance(data, dict) else data
    return [{"name": str(e.get("name", "")), "cat": e.get("cat"), "ts": float(e["ts"]), "dur": float(e["dur"]),
             "thread": (e.get("pid"), e.get("tid"))}
            for e in complete_events([e for e in raw if isinstance(e, dict) and "ts" in e])
            if e.get("ph") == "X" and "dur" in e]


def classified_intervals(events: Iterable[Mapping[str, Any]]) -> list[tuple[float, float, str, str]]:
    """(start, end, category, name) of the outermost classified events of every thread.
    Events nest by time within a thread; one that overlaps its parent's end is clipped."""
    by_thread = defaultdict(list)
    for e in events:
        if e["dur"] > 0:
            by_thread[e["thread"]].append(e)
    out = []
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[tuple[float, bool]] = []  # (end, inside a classified event)
        for e in thread_events:
            start, end = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1][0] <= start:
                stack.pop()
            if stack:
                end = min(end, stack[-1][0])
            inside = bool(stack) and stack[-1][1]
            category = None if inside else classify(e["name"], e.get("cat"))
            if category:
                out.append((start, end, category, e["name"]))
            stack.append((end, inside or category is not None))
    return out


def breakdown(events: Iterable[Mapping[str, Any]], wall_seconds: float) -> dict[str, float]:
    """Seconds per category over a block of `wall_seconds`: classified time shared
    equally between the events running at each instant, the rest overhead."""
    intervals = classified_intervals(events)
    points = sorted({t for s, e, _, _ in intervals for t in (s, e)})
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    if points:
        # Sweep: between consecutive points, the active set is fixed.
        starts, ends = defaultdict(list), defaultdict(list)
        for s, e, c, _ in intervals:
            starts[s].append(c)
            ends[e].append(c)
        active: dict[str, int] = defaultdict(int)
        for left, right in zip(points, points[1:]):
            for c in ends[left]:
                active[c] -= 1
            for c in starts[left]:
                active[c] += 1
            total = sum(active.values())
            if total:
                for c, n in active.items():
                    seconds[c] += (right - left) * 1e-6 * n / total
    covered = sum(seconds.values())
    seconds[OVERHEAD] = max(0.0, wall_seconds - covered)
    if covered > wall_seconds > 0:  # the trace's span outran the stopwatch: keep the shares
        for c in CATEGORIES[:-1]:
            seconds[c] *= wall_seconds / covered
    return seconds


def top_ops(events: Iterable[Mapping[str, Any]], steps: int, n: int = TOP_OPS) -> list[dict[str, Any]]:
    """The classified ops that took longest, seconds per step (outermost events only)."""
    total = defaultdict(float)
    for s, e, c, name in classified_intervals(events):
        total[(name, c)] += (e - s) * 1e-6
    ranked = sorted(total.items(), key=lambda kv: -kv[1])[:n]
    return [{"name": name, "category": c, "seconds_per_step": t / steps} for (name, c), t in ranked]


@dataclass(frozen=True, kw_only=True)
class ProfileRecord(RunIdentity):
    """One stack's profiled block for one (data set, model, threads); per-step seconds
    by category sum to `profiled_step_seconds`."""
    batch_size: int
    profiler: Optional[str] = None
    framework_version: Optional[str] = None
    steps: Optional[int] = None
    unprofiled_step_seconds: Optional[float] = None
    profiled_step_seconds: Optional[float] = None
    step_seconds_by_category: Optional[Mapping[str, float]] = None
    top_ops: Optional[tuple[Mapping[str, Any], ...]] = None
    trace: Optional[str] = None
    trace_events: Optional[int] = None
    schema_version: str = PROFILE_SCHEMA_VERSION

    KIND: ClassVar[str] = "profile"
    SEQUENCES: ClassVar[tuple[str, ...]] = ("top_ops",)


def profile_fields(data: Mapping[str, Any], trace_dir: Path) -> dict[str, Any]:
    """The measured fields of a profile record, from the stack's profile output
    (docs/profile.md) and its trace."""
    for key in ("steps", "unprofiled_seconds", "profiled_seconds", "trace", "profiler"):
        if key not in data:
            raise RecordError(f"the profile output lacks {key!r}")
    steps = int(data["steps"])
    if steps < 1 or data["profiled_seconds"] <= 0 or data["unprofiled_seconds"] <= 0:
        raise RecordError(f"the profile output has no measured block: {dict(data)}")
    trace = trace_dir / data["trace"]
    events = read_trace(trace)
    if not events:
        raise RecordError(f"the profile trace {trace} holds no complete events")
    by_category = breakdown(events, float(data["profiled_seconds"]))
    return dict(profiler=data["profiler"], framework_version=data.get("framework_version"), steps=steps,
                unprofiled_step_seconds=data["unprofiled_seconds"] / steps,
                profiled_step_seconds=data["profiled_seconds"] / steps,
                step_seconds_by_category={c: s / steps for c, s in by_category.items()},
                top_ops=tuple(top_ops(events, steps)), trace=str(trace), trace_events=len(events))


def profile_table(paths: Iterable[str | os.PathLike]):
    """One row per profile record: per-step seconds by category (`<category>_seconds`),
    the profiled and unprofiled step, and the three longest ops."""
    import pandas as pd

    rows = []
    for path in paths:
        r = ProfileRecord.read(path)
        row = {k: getattr(r, k) for k in ("dataset", "model", "stack", "language", "framework", "backend",
                                          "threads", "device", "batch_size", "status", "reason", "profiler",
                                          "steps", "unprofiled_step_seconds", "profiled_step_seconds")}
        for c in CATEGORIES:
            row[f"{c}_seconds"] = (r.step_seconds_by_category or {}).get(c)
        row["top_ops"] = "; ".join(f"{o['name']} ({o['category']}, {1e3 * o['seconds_per_step']:.1f} ms)"
                                   for o in (r.top_ops or ())[:3])
        row["trace"] = r.trace
        rows.append(row)
    columns = ["dataset", "model", "stack", "language", "framework", "backend", "threads", "device", "batch_size",
               "status", "reason", "profiler", "steps", "unprofiled_step_seconds", "profiled_step_seconds",
               *(f"{c}_seconds" for c in CATEGORIES), "top_ops", "trace"]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "model", "stack"], kind="stable")


def write_profile_table(paths: Iterable[str | os.PathLike], out: str | os.PathLike) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    profile_table(paths).to_csv(out, index=False)
