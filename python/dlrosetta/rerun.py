"""Reruns that Snakemake's own triggers cannot see (docs/configuration.md, "Incremental").

Snakemake reruns a job when an output is missing, an input is newer, or a tracked
parameter changed. A `skipped` or `failed` record, or an environment whose build failed,
is none of these: it exists and is up to date, yet its cause may have gone. Each such
output therefore has a retry stamp as an input: a small file created empty with the
mtime 0 (older than anything), and rewritten when the output should be retried, so that
Snakemake's mtime trigger reruns exactly that job. The new content names the output's
own mtime, because Snakemake also compares small inputs' checksums and ignores a newer
file whose content it has seen. A good output never has its stamp rewritten, so nothing
already computed is lost.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

from dlrosetta.checksum import sha256_file
from dlrosetta.launch import runtime_missing
from dlrosetta.record import Record, RecordError
from dlrosetta.registry import Stack
from dlrosetta.venv import lock_of


def retry_stamp(stamp: Path, output: Path, retry: Optional[str]) -> str:
    """Ensure the stamp exists; make it newer than `output`, with new content, when
    `retry` gives a reason."""
    stamp.parent.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        stamp.touch()
        os.utime(stamp, (0, 0))
    if retry and output.exists() and stamp.stat().st_mtime <= output.stat().st_mtime:
        stamp.write_text(f"retry {output} (mtime {output.stat().st_mtime_ns}): {retry}\n")
    return str(stamp)


def record_retry_reason(record: Path, stack: Stack, venvs: Path, read: Callable[[Path], Any] = Record.read,
                        kept_skip: Optional[str] = None) -> Optional[str]:
    """Why an existing record (a training record, or what `read` reads: a profile or
    inference record) should be made again, or None to keep it. A skipped record whose
    reason holds `kept_skip` is kept: what it lacked is an input, which makes it again."""
    if not record.exists():
        return None
    try:
        record = read(record)  # the reader's own check: schema version, fields
    except RecordError as e:
        return f"unreadable record ({e})"
    if record.status == "failed":
        return "failed: a crash or timeout may not recur"
    if record.status == "ok" and (getattr(record, "onnx_export", None) or {}).get("status") == "failed":
        return "its ONNX export failed: a crash may not recur"  # a native inference record
    if record.status == "skipped" and kept_skip is not None and kept_skip in (record.reason or ""):
        return None
    if record.status == "skipped" and runtime_missing(stack, venvs) != record.reason:
        return "skipped, and what was missing has changed"
    return None


def env_retry_reason(manifest: Path, requirements: Path, lock: Optional[Path] = None) -> Optional[str]:
    """Why an existing environment manifest should be built again, or None. The lock's
    and the spec's content are compared with those the environment was built from
    (recorded in the manifest), so a change is seen even where Snakemake has no record
    of the build (an environment built from another checkout, a fresh clone). A changed
    spec whose lock was not compiled again is tried too: the build then fails, saying so
    (dlrosetta.venv.stale_lock_reason), and the working environment is kept."""
    lock = lock or lock_of(requirements)
    try:
        info = json.loads(manifest.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        return f"unreadable manifest ({e})"
    if info.get("status") != "ok":
        return f"build failed: {info.get('reason')}"
    failed = f" (and the last rebuild failed: {info['update_failed']})" if info.get("update_failed") else ""
    if not info.get("lock_sha256"):
        return f"built without a lock (before {lock.name} existed)"
    if not lock.is_file():
        return f"{lock.name} is missing"
    if info["lock_sha256"] != sha256_file(lock):
        return f"{lock.name} changed since the environment was built" + failed
    if info.get("requirements_sha256") != sha256_file(requirements):
        return f"{requirements.name} changed since the environment was built" + failed
    return None
