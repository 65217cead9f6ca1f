"""From a validated config to the study's runs and their run specs.

The JSON schema (schemas/config.schema.yaml) checks keys and types before any job runs; this
module checks what a schema cannot (a study entry naming an undefined data set, a model
paired with the wrong kind of data, an unknown stack) and derives each model's config
from its data set, with errors that name the config key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from dlrosetta.model_spec import LSTM, RESNET, model_spec
from dlrosetta.registry import STACKS
from dlrosetta.runspec import RunSpec

#: kind -> (modality, number of classes)
DATASET_KINDS = {"cifar10": ("image", 10), "synthetic-cifar": ("image", 10),
                 "imdb": ("text", 2), "synthetic-imdb": ("text", 2)}
#: Training-set sizes of the official archives, when train_samples does not cut them.
FULL_TRAIN_SAMPLES = {"cifar10": 50_000, "imdb": 25_000}
MODEL_MODALITY = {RESNET: "image", LSTM: "text"}
INFERENCE_DEFAULTS = {"enabled": False, "batch_sizes": [1, 256], "runtimes": ["onnxruntime", "openvino"],
                      "repeats": 3, "warmup_calls": 5, "min_calls": 10, "max_calls": 2000, "min_seconds": 0.3}


class ConfigError(ValueError):
    """The config is well-formed but inconsistent; the message names the key."""


@dataclass(frozen=True)
class Run:
    """One training process: a repeat of (data set, model, stack) at a thread count."""
    dataset: str
    model: str
    stack: str
    threads: int
    repeat: int = 1


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
            batch = c["models"][entry["model"]]["batch_size"]
            d = c["datasets"][entry["dataset"]]
            n_train = d.get("train_samples") or FULL_TRAIN_SAMPLES[d["kind"]]
            if batch > n_train:
                raise ConfigError(f"models.{entry['model']}.batch_size: {batch} is larger than "
                                  f"datasets.{entry['dataset']}.train_samples ({n_train}): not one full "
                                  f"batch per epoch")
        if c["stacks"] != "all":
            for i, stack in enumerate(c["stacks"]):
                if stack not in STACKS:
                    raise ConfigError(f"stacks[{i}]: unknown stack {stack!r} (no stack.yaml declares it); "
                                      f"known: {', '.join(STACKS)}")
        i = self.inference
        if i["min_calls"] > i["max_calls"]:
            raise ConfigError(f"inference.min_calls ({i['min_calls']}) is larger than inference.max_calls "
                              f"({i['max_calls']})")
        for name, d in c["datasets"].items():
            if d["kind"] in ("cifar10", "imdb") and not d.get("archive"):
                raise ConfigError(f"datasets.{name}.archive: a {d['kind']} data set needs the path "
                                  f"of the official archive")

    # -- the plan --------------------------------------------------------------------
    def stacks(self) -> list[str]:
        """The config's stack ids; `all` is every registered stack."""
        return list(STACKS) if self.config["stacks"] == "all" else list(self.config["stacks"])

    def thread_counts(self) -> list[int]:
        """`threads` as a sorted list; `all` is every count from 1 to the logical cores."""
        t = self.config["threads"]
        if t == "all":
            return list(range(1, (os.cpu_count() or 1) + 1))
        return sorted(t) if isinstance(t, list) else [t]

    @property
    def repeats(self) -> int:
        return int(self.config["repeats"])

    def runs(self) -> list[Run]:
        """Every run, round by round: repeat 1 of every (data set, model, stack, threads)
        before any repeat 2, the order the train rule's priority asks the scheduler for."""
        return [Run(e["dataset"], e["model"], s, t, r) for r in range(1, self.repeats + 1)
                for t in self.thread_counts() for e in self.config["study"] for s in self.stacks()]

    @property
    def profile_steps(self) -> int:
        return int(self.config.get("profile", {}).get("steps", 10))

    def profiles(self) -> list[Run]:
        """Profile-mode runs (docs/profile.md), none unless `profile.enabled`: every (data
        set, model, stack) once, at the study's largest thread count."""
        if not self.config.get("profile", {}).get("enabled", False):
            return []
        threads = max(self.thread_counts())
        return [Run(e["dataset"], e["model"], s, threads) for e in self.config["study"] for s in self.stacks()]

    # -- inference (docs/inference.md) ---------------------------------------------------
    @property
    def inference(self) -> dict[str, Any]:
        """The config's `inference` section with its defaults (config/config.yaml)."""
        return {**INFERENCE_DEFAULTS, **self.config.get("inference", {})}

    @property
    def inference_threads(self) -> int:
        return max(self.thread_counts())

    def inference_settings(self) -> dict[str, Any]:
        """What every inference process times: batch sizes and call counts."""
        i = self.inference
        return {k: i[k] for k in ("batch_sizes", "warmup_calls", "min_calls", "max_calls", "min_seconds")}

    def inference_runtimes(self) -> list[str]:
        return list(self.inference["runtimes"]) if self.inference["enabled"] else []

    def inference_engines(self) -> list[str]:
        """The engines (report rows) of the configured ONNX runtimes, in config order."""
        from dlrosetta.inference import RUNTIME_ENGINES

        return [e for runtime in self.inference_runtimes() for e in RUNTIME_ENGINES[runtime]]

    def inference_runs(self) -> list[Run]:
        """Native inference processes, none unless `inference.enabled`: every (data set,
        model, stack), `inference.repeats` times round by round, at the study's largest
        thread count, with the trained weights of its first training repeat there."""
        if not self.inference["enabled"]:
            return []
        return [Run(e["dataset"], e["model"], s, self.inference_threads, r)
                for r in range(1, int(self.inference["repeats"]) + 1)
                for e in self.config["study"] for s in self.stacks()]

    def trained_weights_run(self, dataset: str, model: str, stack: str) -> Run:
        """The training run whose weights inference measures and cross-evaluates."""
        return Run(dataset, model, stack, self.inference_threads, 1)

    def target_accuracy(self, dataset: str) -> float | None:
        return self.config["datasets"][dataset].get("target_accuracy")

    def data_config(self, dataset: str) -> dict[str, Any]:
        """What defines a data set's shards: its config without the keys that only the
        summary reads (a new target accuracy prepares nothing again)."""
        return {k: v for k, v in self.config["datasets"][dataset].items() if k != "target_accuracy"}

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

    def run_parameters(self, run: Run) -> dict[str, Any]:
        """What a run's result depends on besides its input files' content. The train rule
        passes these as a parameter, so Snakemake reruns the run when one changes (rerun
        trigger `params`). No path or timeout is among them: a moved checkout or another
        time limit reruns nothing; nor is the repeat, which is in the record's path."""
        return {"stack": run.stack, "model": run.model, "dataset": run.dataset,
                "model_config": self.model_config(run.dataset, run.model),
                "training": self.training(run.model), "threads": run.threads,
                "seed": self.config["seed"], "device": self.config["device"],
                "init_seed": self.config["seed"]}

    def run_spec(self, run: Run, shards: str, order: str,
                 weights: str | None, measurements: str, check: str | None = None,
                 check_steps: int = 0, trained_weights: str | None = None,
                 inference: Mapping[str, Any] | None = None) -> RunSpec:
        """Paths are kept as given (relative to the working directory, so rule params
        stay valid when the checkout moves); the launcher makes them absolute."""
        return RunSpec(**self.run_parameters(run), shards=str(shards), order=str(order),
                       initial_weights=str(weights) if weights else None,
                       measurements=str(measurements),
                       check=check, check_steps=check_steps, trained_weights=trained_weights,
                       inference=inference)
