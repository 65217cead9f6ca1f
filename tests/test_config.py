"""Config validation: the schema and the study checks name the offending key."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from dlrosetta.registry import STACKS
from dlrosetta.study import ConfigError, Run, Study

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def load(*names):
    config = {}
    for name in names:
        update_config(config, yaml.safe_load((REPO / "config" / name).read_text()))
    return config


def checked(config):
    validate(copy.deepcopy(config), SCHEMA)
    return Study(config)


@pytest.mark.parametrize("files", [("config.yaml",), ("config.yaml", "smoke.yaml"), ("config.yaml", "full.yaml"),
                                   ("config.yaml", "scaling.yaml")])
def test_shipped_configs_are_valid(files):
    study = checked(load(*files))
    assert len(study.runs()) == (len(study.config["study"]) * len(study.stacks()) * len(study.thread_counts())
                                 * study.repeats)


def test_thread_counts_and_repeats():
    config = load("config.yaml")
    assert checked(config).thread_counts() == [2] and checked(config).repeats >= 3
    config["threads"] = [4, 1, 2]
    assert checked(config).thread_counts() == [1, 2, 4]
    assert checked(load("config.yaml", "scaling.yaml")).thread_counts() == list(range(1, os.cpu_count() + 1))


def test_runs_come_round_by_round():
    """Repeat 1 of every (data set, model, stack, threads) before any repeat 2: the
    order the train rule's priority gives the scheduler."""
    config = load("config.yaml")
    config.update(repeats=3, threads=[1, 2])
    runs = checked(config).runs()
    rounds = [r.repeat for r in runs]
    assert rounds == sorted(rounds) and set(rounds) == {1, 2, 3}
    per_round = len(runs) // 3
    assert {(r.dataset, r.model, r.stack, r.threads) for r in runs[:per_round]} == \
        {(r.dataset, r.model, r.stack, r.threads) for r in runs[-per_round:]}


def test_default_study_covers_every_model_and_registered_stack():
    study = checked(load("config.yaml"))
    assert study.config["stacks"] == "all"
    assert {r.model for r in study.runs()} == {"resnet", "lstm"}
    assert {r.stack for r in study.runs()} == set(STACKS)


@pytest.mark.parametrize("path, value, fragment", [
    (("models", "resnet", "epoch"), 3, "'epoch' was unexpected"),
    (("device",), "tpu", "'tpu' is not one of"),
    (("threads",), 0, "0 is not valid under any of the given schemas"),
    (("threads",), [1, 1], "is not valid under any of the given schemas"),
    (("threads",), "most", "'most' is not valid under any of the given schemas"),
    (("repeats",), 0, "0 is less than the minimum"),
    (("datasets", "synthetic-cifar", "target_accuracy"), 1.5, "1.5 is greater than the maximum"),
    (("models", "resnet", "shortcut"), "C", "'C' is not one of"),
    (("datasets", "synthetic-imdb", "maxlen"), "long", "'long' is not of type 'integer'"),
    (("datasets", "synthetic-cifar", "colour"), True, "'colour' was unexpected"),
    (("stacks",), ["py;torch"], "'py;torch' does not match"),
    (("stacks",), "every", "'all' was expected"),
    (("venvs_dir",), "", "should be non-empty"),
    (("inference", "runtimes"), ["tensorrt"], "'tensorrt' is not one of"),
    (("inference", "batch_sizes"), [1, 1], "has non-unique elements"),
    (("inference", "batch_sizes"), [0], "0 is less than the minimum"),
    (("inference", "min_seconds"), -1, "-1 is less than the minimum"),
    (("inference", "latency"), True, "'latency' was unexpected"),
])
def test_schema_names_the_bad_key_or_value(path, value, fragment):
    config = load("config.yaml")
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(WorkflowError, match=fragment):
        validate(config, SCHEMA)


@pytest.mark.parametrize("change, fragment", [
    (lambda c: c["study"].append({"model": "lstm", "dataset": "synthetic-cifar"}),
     r"study\[2\]: model 'lstm' needs text data"),
    (lambda c: c["study"].append({"model": "resnet", "dataset": "nowhere"}),
     r"study\[2\].dataset: 'nowhere' is not defined"),
    (lambda c: c.update(stacks=[*STACKS][:1] + ["cobol-native"]), r"stacks\[1\]: unknown stack 'cobol-native'"),
    (lambda c: c["models"]["resnet"].update(batch_size=4096),
     r"models.resnet.batch_size: 4096 is larger than datasets.synthetic-cifar.train_samples \(2048\)"),
    (lambda c: c["datasets"].update({"synthetic-imdb": {"kind": "imdb", "archive": "a.tgz", "vocab_size": 5000,
                                                        "maxlen": 80}}) or c["models"]["lstm"].update(batch_size=30000),
     r"models.lstm.batch_size: 30000 is larger than datasets.synthetic-imdb.train_samples \(25000\)"),
    (lambda c: c["models"]["resnet"].update(depth=9), r"models.resnet: .*6n\+2"),
    (lambda c: c["inference"].update(min_calls=50, max_calls=10),
     r"inference.min_calls \(50\) is larger than inference.max_calls \(10\)"),
])
def test_study_checks_name_the_key(change, fragment):
    config = load("config.yaml")
    change(config)
    with pytest.raises(ConfigError, match=fragment):
        checked(config)


def test_run_parameters_leave_paths_out_and_derive_model_config():
    study = checked(load("config.yaml"))
    params = study.run_parameters(Run("synthetic-imdb", "lstm", next(iter(STACKS)), threads=2, repeat=3))
    assert params["threads"] == 2 and "repeat" not in params  # the repeat is in the record's path
    assert params["model_config"]["vocab_size"] == study.config["datasets"]["synthetic-imdb"]["vocab_size"]
    assert params["model_config"]["num_classes"] == 2
    assert not any("/" in str(v) for v in params.values())


def test_bad_config_fails_before_any_job_runs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  lstm:\n    unitz: 3\n")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                          "--directory", str(tmp_path), "--configfile", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "'unitz' was unexpected" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["..", "a/b", "x;touch PWNED", ".hidden", "a b"])
def test_dataset_names_are_safe_identifiers(name):
    config = load("config.yaml")
    config["datasets"][name] = config["datasets"].pop("synthetic-cifar")
    config["study"][0]["dataset"] = name
    with pytest.raises(WorkflowError, match="does not match"):
        validate(config, SCHEMA)
