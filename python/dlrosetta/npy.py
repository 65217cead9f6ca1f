"""An npy bundle: a folder of .npy files plus manifest.json listing each with its sha256.

The one on-disk format dlrosetta shares between languages (docs/shards.md): data shards
and initial-weights files are both bundles. Only NumPy format 1.0, little-endian,
C-order float32 or int32 arrays are written, so the R and Julia readers stay small and
need no package.

Twins: r/R/npy.R, julia/src/npy.jl.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from dlrosetta.checksum import sha256_file

FORMAT_VERSION = 1
DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}


class BundleError(Exception):
    """A bundle is missing, malformed, or fails its checksum."""


def write_bundle(directory: str | os.PathLike, kind: str, arrays: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any]) -> Path:
    """Write arrays (in the mapping's order) and the manifest last, so a manifest always
    describes complete files. Returns the manifest path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # An old manifest must not describe new, half-written arrays.
    (directory / "manifest.json").unlink(missing_ok=True)
    entries = []
    for name, array in arrays.items():
        dtype = str(np.asarray(array).dtype)
        if dtype not in DTYPES:
            raise BundleError(f"array {name!r} has dtype {dtype}; bundles hold only {sorted(DTYPES)}")
        path = directory / f"{name}.npy"
        np.save(path, np.ascontiguousarray(array, dtype=DTYPES[dtype]), allow_pickle=False)
        entries.append({"name": name, "file": path.name, "dtype": dtype,
                        "shape": list(np.shape(array)), "sha256": sha256_file(path)})
    manifest = {"format": f"dlrosetta.{kind}", "format_version": FORMAT_VERSION,
                "arrays": entries, "meta": dict(meta)}
    out = directory / "manifest.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(out)
    return out


def read_manifest(manifest_path: str | os.PathLike, kind: str | None = None) -> dict:
    path = Path(manifest_path)
    if not path.is_file():
        raise BundleError(f"bundle manifest not found: {path}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"bundle manifest {path} is not valid JSON: {e}") from e
    if kind is not None and manifest.get("format") != f"dlrosetta.{kind}":
        raise BundleError(f"{path} is a {manifest.get('format')!r} manifest, expected 'dlrosetta.{kind}'")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {manifest.get('format_version')!r} is not supported "
                          f"(this reader knows {FORMAT_VERSION})")
    return manifest


def read_bundle(manifest_path: str | os.PathLike, kind: str | None = None,
                names: Iterable[str] | None = None, verify: bool = True,
                mmap: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Load arrays (all, or those named), verifying sha256, shape and dtype of each."""
    manifest = read_manifest(manifest_path, kind)
    root = Path(manifest_path).parent
    entries = {e["name"]: e for e in manifest["arrays"]}
    wanted = list(entries) if names is None else list(names)
    out = {}
    for name in wanted:
        if name not in entries:
            raise BundleError(f"{manifest_path}: no array named {name!r} (has {sorted(entries)})")
        e = entries[name]
        path = root / e["file"]
        if not path.is_file():
            raise BundleError(f"shard file missing: {path} (listed in {manifest_path})")
        if verify and (digest := sha256_file(path)) != e["sha256"]:
            raise BundleError(f"checksum mismatch for {path}: manifest says {e['sha256']}, file has {digest}")
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if list(array.shape) != e["shape"] or str(array.dtype) != e["dtype"]:
            raise BundleError(f"{path}: shape/dtype {array.shape}/{array.dtype} differ from manifest "
                              f"{e['shape']}/{e['dtype']}")
        out[name] = array
    return out, manifest
