# Config validation (before any job runs), the study plan and shared paths.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

try:
    from dlrosetta.registry import get_stack
    from dlrosetta.study import ConfigError, Run, Study
    from dlrosetta.threads import thread_env
except ImportError as e:
    raise WorkflowError(
        f"the dlrosetta package is not importable ({e}): run envs/setup.sh and use .venv/bin/snakemake"
    ) from None


validate(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
try:
    STUDY = Study(config)
except ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None

REPO = Path(workflow.basedir)
VENVS = Path(config.get("venvs_dir") or REPO / ".venvs").resolve()
THREADS = config["threads"]


envvars:
    "PATH",


# Rules call the `dlrosetta` command of the environment running Snakemake.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
ORCHESTRATOR_ENV = "../envs/orchestrator.yaml"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_.-]+",
    model=r"resnet|lstm",
    stack=r"[a-z0-9-]+",
    env=r"[a-z0-9-]+",
    seed=r"\d+",
    epochs=r"\d+",


def shards_manifest(wildcards):
    return f"results/shards/{wildcards.dataset}/manifest.json"


def order_file(dataset, model):
    return f"results/orders/{dataset}/seed{config['seed']}-epochs{STUDY.epochs(model)}.npy"


def weights_manifest(dataset, model):
    return f"results/weights/{dataset}/{model}/manifest.json" if STUDY.shared_weights else []


def env_manifest(stack_id):
    env = get_stack(stack_id).env
    return str(VENVS / env / "dlrosetta-env.json") if env else []


def quoted_json(value):
    return shlex.quote(json.dumps(value, sort_keys=True))


def record_path(run):
    return f"results/records/{run.dataset}/{run.model}/{run.stack}.json"


ALL_RECORDS = [record_path(r) for r in STUDY.runs()]
ENVS_USED = sorted({get_stack(s).env for s in config["stacks"] if get_stack(s).env})
