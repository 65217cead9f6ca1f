"""The study on a real SLURM cluster: a single node on this machine (envs/slurm-single-node.sh,
Debian's munge, slurmctld, slurmd and slurm-client, no accounting database) running the
smoke study through profiles/slurm, unedited, with no extra flag. Training and the probe go
through sbatch; environment builds, data preparation, aggregation and the report stay on
this (login) node.

Needs root (or password-less sudo) and the Debian archive, as CI has; without them the
test fails and says so. DLROSETTA_SKIP_SLURM=1 skips it (tests/README.md). It prints the
wall time through SLURM next to the same study run locally.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dlrosetta.inference import InferenceRecord
from dlrosetta.record import Record
from dlrosetta.registry import STACKS

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "envs" / "slurm-single-node.sh"
SMOKE = REPO / "config" / "smoke.yaml"

pytestmark = pytest.mark.skipif(os.environ.get("DLROSETTA_SKIP_SLURM") == "1",
                                reason="DLROSETTA_SKIP_SLURM=1 (tests/README.md)")


def two_stacks() -> list[str]:
    """A native Python stack and a stack of another language: two kinds of job."""
    python = next(s.id for s in STACKS.values() if s.language == "python" and s.backend is None)
    other = next(s.id for s in STACKS.values() if s.language != "python")
    return [python, other]


@pytest.fixture(scope="module")
def cluster():
    was_up = _has("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    out = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"could not bring up the single-node SLURM cluster (needs root and the Debian archive; "
                    f"DLROSETTA_SKIP_SLURM=1 skips this test):\n{out.stderr[-2000:]}")
    yield
    if not was_up:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True)


def _has(program: str) -> bool:
    return any(Path(d, program).exists() for d in os.environ["PATH"].split(os.pathsep))


def study(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(SMOKE), "--config", f"stacks=[{','.join(two_stacks())}]", *args]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    return out, time.perf_counter() - start


def test_the_smoke_study_runs_through_slurm(cluster, tmp_path):
    out, through_slurm = study(tmp_path / "slurm", "--workflow-profile", str(REPO / "profiles" / "slurm"))
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    # Every training run and the probe went through sbatch; the rest stayed local.
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    records = sorted((tmp_path / "slurm" / "results" / "records").glob("*/*/*/threads*/repeat*.json"))
    assert len(records) == 2 * len(two_stacks())
    # Inference too: a native run per (data set, model, stack), a runtimes job per (data set, model).
    native = sorted((tmp_path / "slurm" / "results" / "inference").glob("*/*/native/*/repeat*.json"))
    assert len(native) == len(records)
    assert all(InferenceRecord.read(p).status == "ok" for p in native)
    assert len(submitted) == len(records) + 1 + len(native) + 2, log[-4000:]  # + the machine probe
    for rule in ("shards", "epoch_order", "initial_weights", "aggregate", "crosseval", "inference_table", "report"):
        assert f"localrule {rule}:" in log
    assert "localrule train:" not in log and "localrule machine:" not in log
    for path in records:
        r = Record.read(path)
        assert r.status == "ok", (path, r.reason)
        assert r.threads == 2 and r.gemm_float32_gflops_before > 0
    assert (tmp_path / "slurm" / "results" / "report" / "index.html").is_file()
    summary = pd.read_csv(tmp_path / "slurm" / "results" / "summary.csv")
    assert (summary.status == "ok").all() and len(summary) == len(records)

    out, local = study(tmp_path / "local", "--cores", "2")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    print(f"\nsmoke study, {len(records)} runs of {', '.join(two_stacks())}: {through_slurm:.0f} s through SLURM, "
          f"{local:.0f} s locally")
