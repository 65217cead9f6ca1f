"""From a validated config to the study's runs and their run specs.

The JSON schema (config/schema.yaml) checks keys and types before any job runs; this
module checks what a schema cannot (a study entry naming an undefined data set, a model
paired with the wrong kind of data, an unknown stack) and derives each model's config
from its data set, with errors that name the config key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from dlrosetta.models.spec import LSTM, RESNET, model_spec
from dlrosetta.registry import STACKS
from dlrosetta.runspec import RunSpec

#: kind -> (modality, number of classes)
DATASET_KINDS = {"cifar10": ("image", 10), "synthetic-cifar": ("image", 10),
                 "imdb": ("text", 2), "synthetic-imdb": ("text", 2)}
MODEL_MODALITY = {RESNET: "image", LSTM: "text"}


class ConfigError(ValueError):
    """The config is well-formed but inconsistent; the message names the key."""


@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    stack: str


def _model_config(model: str, models: Mapping, dataset_cfg: Mapping) -> dict[str, Any]:
    m = models[model]
    _, num_classes = DATASET_KINDS[dataset_cfg["kind"]]
    if model == RESNET:
        return {"depth": m["depth"], "width": m["width"], "shortcut": m["shortcut"],
                "num_classes": num_classes, "image_size": 32, "channels": 3}
    return {"vocab_size": dataset_cfg["vocab_size"], "embedding_dim": m["embedding_dim"],
            "units": m["units"], "maxlen": dataset_cfg["maxlen"], "num_classes": num_classes}


class Study:
    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self._check()

    def _check(self) -> None:
        c = self.config
        for i, entry in enumerate(c["study"]):
            where = f"study[{i}]"
            if entry["dataset"] not in c["datasets"]:
                raise ConfigError(f"{where}.dataset: {entry['dataset']!r} is not defined under "
                                  f"'datasets' (defined: {', '.join(sorted(c['datasets']))})")
            kind = c["datasets"][entry["dataset"]]["kind"]
            if DATASET_KINDS[kind][0] != MODEL_MODALITY[entry["model"]]:
                raise ConfigError(f"{where}: model {entry['model']!r} needs {MODEL_MODALITY[entry['model']]} "
                                  f"data, but data set {entry['dataset']!r} is {kind} ({DATASET_KINDS[kind][0]})")
            if entry["model"] not in c["models"]:
                raise ConfigError(f"{where}.model: no 'models.{entry['model']}' section in the config")
            try:
                model_spec(entry["model"], self.model_config(entry["dataset"], entry["model"]))
            except ValueError as e:
                raise ConfigError(f"models.{entry['model']}: {e}") from None
        for i, stack in enumerate(c["stacks"]):
            if stack not in STACKS:
                raise ConfigError(f"stacks[{i}]: unknown stack {stack!r}; known: {', '.join(STACKS)}")
        for name, d in c["datasets"].items():
            if d["kind"] in ("cifar10", "imdb") and not d.get("archive"):
                raise ConfigError(f"datasets.{name}.archive: a {d['kind']} data set needs the path "
                                  f"of the official archive")

    # -- the plan --------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return [Run(e["dataset"], e["model"], s) for e in self.config["study"]
                for s in self.config["stacks"]]

    def datasets(self) -> list[str]:
        return sorted({e["dataset"] for e in self.config["study"]})

    def model_config(self, dataset: str, model: str) -> dict[str, Any]:
        return _model_config(model, self.config["models"], self.config["datasets"][dataset])

    def training(self, model: str) -> dict[str, Any]:
        m = self.config["models"][model]
        return {"epochs": m["epochs"], "batch_size": m["batch_size"], "optimizer": dict(m["optimizer"])}

    def epochs(self, model: str) -> int:
        return int(self.config["models"][model]["epochs"])

    @property
    def shared_weights(self) -> bool:
        return self.config["initial_weights"] == "shared"

    def run_parameters(self, run: Run, threads: int) -> dict[str, Any]:
        """What a run depends on besides its input files: Snakemake reruns it when these
        change (rerun trigger `params`). Paths are left out so a moved checkout does not
        invalidate records."""
        return {"stack": run.stack, "model": run.model, "dataset": run.dataset,
                "model_config": self.model_config(run.dataset, run.model),
                "training": self.training(run.model), "threads": threads,
                "seed": self.config["seed"], "device": self.config["device"],
                "init_seed": self.config["seed"]}

    def run_spec(self, run: Run, threads: int, shards: str, order: str,
                 weights: str | None, record: str, check: str | None = None,
                 check_steps: int = 0) -> RunSpec:
        """Paths are kept as given (relative to the working directory, so rule params
        stay valid when the checkout moves); the launcher makes them absolute."""
        return RunSpec(**self.run_parameters(run, threads), shards=str(shards), order=str(order),
                       initial_weights=str(weights) if weights else None, record=str(record),
                       check=check, check_steps=check_steps)
