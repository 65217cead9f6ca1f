"""The workflow end to end: dry run, lint, the smoke study, incremental reruns, and a
study on a machine without R and Julia (skipped records, report still made)."""
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "config" / "smoke.yaml"


def snakemake(workdir, *args, env=None, check=True):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--cores", "2", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts from Snakemake's 'Job stats' table."""
    table = output.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def expected_unavailable(stack_id: str, venvs: Path, path: str | None = None) -> str | None:
    """Why a stack can't run here (then it must be skipped), or None (then it must be ok)."""
    stack = STACKS[stack_id]
    if stack.env:
        manifest = venvs / stack.env / "dlrosetta-env.json"
        if not manifest.is_file() or json.loads(manifest.read_text())["status"] != "ok":
            return f"environment {stack.env}"
    if stack.runtime != "python" and not any(Path(d, stack.runtime).exists()
                                             for d in (path or os.environ["PATH"]).split(os.pathsep)):
        return f"{stack.runtime} not found on PATH"
    return None


def test_dry_run_plans_every_stack_and_model(tmp_path):
    out = snakemake(tmp_path, "-n")
    jobs = planned_jobs(out.stdout)
    assert jobs["train"] == 2 * 7 and jobs["report"] == 1 and jobs["shards"] == 2
    assert not (tmp_path / "results").exists()


def test_lint_is_clean():
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    snakemake(workdir, "--configfile", str(SMOKE))
    return workdir


def test_smoke_study_writes_a_valid_record_for_every_run(smoke):
    records = sorted((smoke / "results" / "records").rglob("*.json"))
    assert len(records) == 2 * 7
    for path in records:
        data = json.loads(path.read_text())
        validate_record_dict(data)
        r = Record.from_dict(data)
        assert (path.parent.parent.name, path.parent.name, path.stem) == (r.dataset, r.model, r.stack)
        why = expected_unavailable(r.stack, REPO / ".venvs")
        if why:
            assert r.status == "skipped" and why in r.reason, (r.stack, r.reason)
            continue
        assert r.status == "ok", f"{r.stack} {r.model}: {r.status}: {r.reason}"
        assert r.threads == 2 and len(r.epoch_seconds) == 2 and r.steady_samples_per_second > 0
        assert r.initial_weights_sha256 is not None and r.run_seconds >= r.startup_seconds


def test_every_ok_stack_counts_the_same_parameters(smoke):
    df = pd.read_csv(smoke / "results" / "summary.csv")
    ok = df[df.status == "ok"]
    assert ok.groupby("model").parameter_count.nunique().eq(1).all(), ok[["stack", "model", "parameter_count"]]


def test_smoke_report_shows_every_run(smoke):
    page = (smoke / "results" / "report" / "index.html").read_text()
    md = (smoke / "results" / "report" / "summary.md").read_text()
    for stack in STACKS:
        assert stack in page and f"| {stack} |" in md
    assert len(pd.read_parquet(smoke / "results" / "summary.parquet")) == 14
    assert len(list((smoke / "results" / "report" / "plots").glob("*.png"))) >= 5


def test_snakemake_report_packs_the_annotated_outputs(smoke):
    snakemake(smoke, "--configfile", str(SMOKE), "--report", str(smoke / "report.zip"))
    names = zipfile.ZipFile(smoke / "report.zip").namelist()
    for wanted in ("index.html", "summary.md", "summary.csv", "steady_epoch_seconds.png"):
        assert any(n.endswith(wanted) for n in names), wanted


def test_rerun_is_incremental(smoke, tmp_path):
    assert "Nothing to be done" in snakemake(smoke, "-n", "--configfile", str(SMOKE)).stdout
    # A changed LSTM hyperparameter reruns the LSTM runs only.
    change = tmp_path / "lstm-units.yaml"
    change.write_text("models: {lstm: {units: 9}}\n")
    out = snakemake(smoke, "-n", "--configfile", str(SMOKE), str(change))
    jobs = planned_jobs(out.stdout)
    assert jobs["train"] == 7 and "shards" not in jobs
    assert "output: results/records/smoke-cifar" not in out.stdout


def path_without(tmp_path: Path, hidden: set[str]) -> str:
    """A PATH holding every program of the current PATH except the hidden ones."""
    shim = tmp_path / "bin"
    shim.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name not in hidden and not (shim / name).exists():
                (shim / name).symlink_to(Path(d, name))
    return str(shim)


def test_study_without_r_and_julia_skips_them_and_still_reports(smoke, tmp_path):
    env = dict(os.environ, PATH=path_without(tmp_path, {"R", "Rscript", "julia"}))
    rerun = [str(p.relative_to(smoke)) for stack in ("r-keras", "julia-native")
             for p in (smoke / "results" / "records").rglob(f"{stack}.json")]
    assert len(rerun) == 4
    snakemake(smoke, "--configfile", str(SMOKE), "--forcerun", *rerun, env=env)
    for stack, runtime in (("r-keras", "Rscript"), ("julia-native", "julia")):
        for model in ("resnet", "lstm"):
            dataset = "smoke-cifar" if model == "resnet" else "smoke-imdb"
            r = Record.read(smoke / "results" / "records" / dataset / model / f"{stack}.json")
            assert r.status == "skipped" and f"{runtime} not found on PATH" in r.reason
    assert "not found on PATH" in (smoke / "results" / "report" / "index.html").read_text()


def test_missing_archive_is_named_before_anything_runs(tmp_path):
    out = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "full.yaml"), check=False)
    assert out.returncode != 0
    assert "data/cifar-10-python.tar.gz" in out.stdout + out.stderr
