"""Prepare one data set into shards: `prepare_dataset(name, cfg, out_dir)` or

    python -m dlrosetta.data.prepare --name NAME --config-json '{"kind": ...}' --out DIR

cfg is the data set's config block: `kind` picks the source, the other keys are exactly
that source's parameters (a missing or unknown key is an error naming it):

  cifar10          archive, train_samples (null = all), test_samples (null = all)
  imdb             archive, vocab_size, maxlen, train_samples, test_samples
  synthetic-cifar  train_samples, test_samples, seed
  synthetic-imdb   train_samples, test_samples, vocab_size, maxlen, seed

Twins: none (data is prepared once, in Python; every language reads the shards).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from dlrosetta.data import DataError, Dataset, cifar10, imdb, synthetic
from dlrosetta.shards import write_shards

SOURCES: dict[str, Callable[..., Dataset]] = {
    "cifar10": cifar10.load,
    "imdb": imdb.load,
    "synthetic-cifar": synthetic.cifar,
    "synthetic-imdb": synthetic.imdb,
}


def _source_arguments(source: Callable[..., Dataset], cfg: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(source).parameters
    args = {k: v for k, v in cfg.items() if k != "kind"}
    unknown = sorted(set(args) - set(params))
    missing = sorted(k for k, p in params.items() if p.default is p.empty and k not in args)
    if unknown or missing:
        raise DataError(f"config keys: unknown {unknown}, missing {missing}; "
                        f"{cfg.get('kind')!r} takes {list(params)}")
    return args


def prepare_dataset(name: str, cfg: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Build data set `name` from its config block and write its shards into out_dir.
    Returns the manifest path."""
    kind = cfg.get("kind")
    try:
        if kind not in SOURCES:
            raise DataError(f"unknown kind {kind!r}; expected one of {sorted(SOURCES)}")
        source = SOURCES[kind]
        data = source(**_source_arguments(source, cfg))
    except DataError as e:
        raise DataError(f"data set {name!r} ({kind}): {e}") from e
    return write_shards(out_dir, data.x_train, data.y_train, data.x_test, data.y_test,
                        {"dataset": name, "kind": kind, **data.meta})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dlrosetta.data.prepare",
                                     description="Prepare one data set into npy shards.")
    parser.add_argument("--name", required=True, help="data set name (the shards' meta 'dataset')")
    parser.add_argument("--config-json", required=True, help="the data set's config block as JSON")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the shards")
    args = parser.parse_args(argv)
    try:
        cfg = json.loads(args.config_json)
        if not isinstance(cfg, dict):
            raise DataError(f"--config-json must be a JSON object, got {args.config_json!r}")
        print(prepare_dataset(args.name, cfg, args.out))
    except (DataError, json.JSONDecodeError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
