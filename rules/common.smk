# Config validation (before any job runs), the study plan, shared paths and the rerun
# bookkeeping (docs/configuration.md, "Incremental").
import json
import math
import os
import sys
from functools import lru_cache
from pathlib import Path

from snakemake.utils import validate

try:
    from dlrosetta.registry import get_stack  # discovers and validates every stack.yaml
except ImportError as e:
    raise WorkflowError(
        f"the dlrosetta package is not importable ({e}): run envs/setup.sh and use .venv/bin/snakemake"
    ) from None
except ValueError as e:
    raise WorkflowError(f"invalid stack manifest: {e}") from None
from dlrosetta.checksum import sha256_file
from dlrosetta.launch import workdir_relative
from dlrosetta.inference import NO_TRAINED_WEIGHTS, InferenceRecord, trained_weights_dir
from dlrosetta.profile import ProfileRecord
from dlrosetta.runtimes import ENV as ONNX_ENV, runner_crash
from dlrosetta.rerun import env_retry_reason, record_retry_reason, retry_stamp
from dlrosetta.study import ConfigError, Run, Study


# `--config threads=[1,2]` arrives as strings: Snakemake reads command-line lists with
# YAML's BaseLoader. Whole numbers are taken as numbers; anything else meets the schema.
if isinstance(config.get("threads"), list):
    config["threads"] = [int(t) if isinstance(t, str) and t.isdigit() else t for t in config["threads"]]
validate(config, os.path.join(workflow.basedir, "schemas", "config.schema.yaml"))
try:
    STUDY = Study(config)
except ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None

for name in STUDY.datasets():
    archive = config["datasets"][name].get("archive")
    if archive and not Path(archive).exists():
        raise WorkflowError(
            f"invalid config: datasets.{name}.archive: {archive} does not exist "
            f"(relative to {Path.cwd()}; the official archive is read as downloaded, see config/full.yaml)"
        )

REPO = Path(workflow.basedir)
THREAD_COUNTS = STUDY.thread_counts()
STACK_IDS = STUDY.stacks()


VENVS = Path(workdir_relative(config.get("venvs_dir") or REPO / ".venvs"))


# One training run at a time on one machine, so no two runs share cores, whatever
# --resources the command line adds (it replaces the profile's list). Cluster jobs
# (--jobs with an executor) get machines of their own and are not limited here.
if "training_slots" not in workflow.global_resources and workflow.global_resources["_nodes"].value is None:
    workflow.global_resources["training_slots"] = 1


envvars:
    "PATH",


# Rules call the `dlrosetta` command of the environment running Snakemake.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
ORCHESTRATOR_ENV = "../envs/orchestrator.yaml"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_][A-Za-z0-9_-]*",
    model=r"resnet|lstm",
    stack=r"[a-z0-9][a-z0-9-]*",
    env=r"[a-z0-9][a-z0-9-]*",
    seed=r"\d+",
    threads=r"[1-9]\d*",
    repeat=r"[1-9]\d*",
    epochs=r"\d+",


def untracked(value):
    """A parameter left out of Snakemake's rerun check: a parameter function that
    takes `threads` counts as derived (Snakemake's Rule._is_deriving_function), and
    derived parameters are not compared. For paths and limits that change nothing a
    run computes (venvs_dir, timeout_minutes)."""
    return lambda wildcards, threads: value(wildcards) if callable(value) else value


def shards_manifest(wildcards):
    return f"results/shards/{wildcards.dataset}/manifest.json"


def order_file(dataset, model):
    return f"results/orders/{dataset}/seed{config['seed']}-epochs{STUDY.epochs(model)}.npy"


def weights_manifest(dataset, model):
    return f"results/weights/{dataset}/{model}/manifest.json" if STUDY.shared_weights else []


def env_manifest_path(env):
    return str(VENVS / env / "dlrosetta-env.json")


def env_manifest(stack_id):
    env = get_stack(stack_id).env
    return env_manifest_path(env) if env else []


# Retry stamps (dlrosetta.rerun) are bookkeeping like Snakemake's own metadata, and live
# beside it: a dry run writes nothing under results/.
RETRY_STAMPS = ".snakemake/dlrosetta-retry"


def env_retry_stamp(wildcards):
    manifest = Path(env_manifest_path(wildcards.env))
    reason = env_retry_reason(manifest, REPO / "envs" / f"{wildcards.env}.txt")
    return retry_stamp(Path(f"{RETRY_STAMPS}/envs/{wildcards.env}.stamp"), manifest, reason)


def env_lock_checksum(wildcards):
    """The environment's lock's sha256 (a tracked parameter of build_env)."""
    lock = REPO / "envs" / f"{wildcards.env}.lock"
    return sha256_file(lock) if lock.is_file() else "missing"


def run_id(run):
    """The part of a run's paths that names it: one folder per stack, a file per
    thread count and repeat."""
    return f"{run.dataset}/{run.model}/{run.stack}/threads{run.threads}/repeat{run.repeat}"


def run_of(wildcards):
    return Run(wildcards.dataset, wildcards.model, wildcards.stack, int(wildcards.threads), int(wildcards.repeat))


def record_path(run):
    return f"results/records/{run_id(run)}.json"


def trained_weights_manifest(dataset, model, stack):
    """The trained weights inference measures: those of the stack's first training repeat
    at the largest thread count (beside its record)."""
    record = record_path(STUDY.trained_weights_run(dataset, model, stack))
    return str(trained_weights_dir(record) / "manifest.json")


def run_spec_json(run, measurements, check=None, check_steps=0, inference=None):
    """A run's spec as JSON, the launcher's input: a training run keeps its trained
    weights beside its record; an inference run loads the trained ones."""
    spec = STUDY.run_spec(
        run,
        f"results/shards/{run.dataset}/manifest.json",
        order_file(run.dataset, run.model),
        (
            trained_weights_manifest(run.dataset, run.model, run.stack)
            if check == "inference"
            else weights_manifest(run.dataset, run.model) or None
        ),
        measurements,
        check,
        check_steps,
        str(trained_weights_dir(record_path(run))) if check is None else None,
        inference,
    )
    return json.dumps(spec.to_dict(), sort_keys=True)


def record_retry_stamp(wildcards):
    record = Path(record_path(wildcards))
    reason = record_retry_reason(record, get_stack(wildcards.stack), VENVS)
    return retry_stamp(Path(f"{RETRY_STAMPS}/records/{run_id(wildcards)}.stamp"), record, reason)


@lru_cache(maxsize=None)
def stack_code_sha256(stack_id):
    return get_stack(stack_id).code_sha256()


def profile_path(run):
    return f"results/profiles/{run.dataset}/{run.model}/{run.stack}/threads{run.threads}.json"


def profile_retry_stamp(wildcards):
    record = Path(profile_path(wildcards))
    reason = record_retry_reason(record, get_stack(wildcards.stack), VENVS, ProfileRecord.read)
    return retry_stamp(Path(f"{RETRY_STAMPS}/profiles/{record.relative_to('results/profiles')}.stamp"), record, reason)


def inference_path(run, engine="native"):
    return f"results/inference/{run.dataset}/{run.model}/{engine}/{run.stack}/repeat{run.repeat}.json"


def inference_run(wildcards):
    return Run(wildcards.dataset, wildcards.model, wildcards.stack, STUDY.inference_threads, int(wildcards.repeat))


def inference_retry_stamp(wildcards):
    """A native inference record is retried like a training record, except one skipped
    for want of trained weights: the training record is its input, and makes it again."""
    record = Path(inference_path(inference_run(wildcards)))
    reason = record_retry_reason(record, get_stack(wildcards.stack), VENVS, InferenceRecord.read, NO_TRAINED_WEIGHTS)
    stamp = Path(f"{RETRY_STAMPS}/inference/{record.relative_to('results/inference')}.stamp")
    return retry_stamp(stamp, record, reason)


def onnx_retry_stamp(wildcards):
    """The ONNX runtimes' job is made again when its runner's process failed (a crash or
    timeout may not recur), not for a runtime's verdict on an export (dlrosetta.runtimes)."""
    d, m, repeat = wildcards.dataset, wildcards.model, int(wildcards.repeat)
    records = [
        Path(inference_path(Run(d, m, s, STUDY.inference_threads, repeat), e)) for e in ONNX_ENGINES for s in STACK_IDS
    ]
    newest = max(records, key=lambda p: p.stat().st_mtime if p.exists() else 0)
    return retry_stamp(Path(f"{RETRY_STAMPS}/inference/{d}/{m}/onnx/repeat{repeat}.stamp"), newest, runner_crash(records))


def inference_spec_json(wildcards):
    run = inference_run(wildcards)
    first = run.repeat == 1
    native = Path(inference_path(run)).parent
    inference = {
        **STUDY.inference_settings(),
        "evaluate": (
            [{"stack": s, "weights": trained_weights_manifest(run.dataset, run.model, s)} for s in STACK_IDS]
            if first
            else []
        ),
        "logits": str(native / "logits") if first else None,
        "onnx": str(native / "model.onnx") if first and STUDY.inference_runtimes() else None,
    }
    measurements = f"results/runs/inference/{run_id(run)}/inference.json"
    return run_spec_json(run, measurements, "inference", inference=inference)


def trained_records(wildcards, stacks):
    return [record_path(STUDY.trained_weights_run(wildcards.dataset, wildcards.model, s)) for s in stacks]


ALL_RECORDS = [record_path(r) for r in STUDY.runs()]
ALL_PROFILES = [profile_path(r) for r in STUDY.profiles()]
INFERENCE_RUNS = STUDY.inference_runs()
ONNX_ENGINES = STUDY.inference_engines()
ALL_INFERENCE = [inference_path(r) for r in INFERENCE_RUNS] + [
    inference_path(r, engine) for r in INFERENCE_RUNS for engine in ONNX_ENGINES
]
NATIVE_REPEAT1 = [inference_path(r) for r in INFERENCE_RUNS if r.repeat == 1]


# On a cluster, only training and the machine probe go to compute nodes; environment
# builds (pip needs the network), data preparation, aggregation and the report run where
# Snakemake runs. Locally this changes nothing.
localrules:
    all,
    environments,
    build_env,
    shards,
    epoch_order,
    initial_weights,
    aggregate,
    profiles,
    inference_table,
    crosseval,
    report,
ENVS_USED = sorted(
    {get_stack(s).env for s in STACK_IDS if get_stack(s).env} | ({ONNX_ENV} if STUDY.inference_runtimes() else set())
)
