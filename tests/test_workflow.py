"""The workflow end to end: dry run, lint, the smoke study, what reruns what (every
setting, a moved checkout, edited stack code), retries of skipped, failed and deleted
records, a study on a machine without R and Julia, quoting of config values that reach
a shell, one training run at a time whatever --resources say, repeats interleaved
across stacks, thread counts and repeats in the records and the report, and no process
left behind when Snakemake is killed."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dlrosetta.checksum import sha256_file
from dlrosetta.inference import InferenceRecord
from dlrosetta.profile import ProfileRecord
from dlrosetta.record import Record, validate_record_dict
from dlrosetta.registry import STACKS
from dlrosetta.runtimes import ENV as ONNX_ENV, RUNNER_FAILED

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "config" / "smoke.yaml"


N_STACKS = len(STACKS)
NOT_PYTHON = {s.id: s.runtime for s in STACKS.values() if s.runtime != "python"}


def snakemake(workdir, *args, env=None, check=True, repo=REPO):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
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
    repeats = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["repeats"]
    assert repeats >= 3 and jobs["train"] == 2 * N_STACKS * repeats
    assert jobs["report"] == 1 and jobs["shards"] == 2
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
    records = sorted((smoke / "results" / "records").glob("*/*/*/threads*/repeat*.json"))
    assert len(records) == 2 * N_STACKS
    for path in records:
        data = json.loads(path.read_text())
        validate_record_dict(data)
        r = Record.from_dict(data)
        assert [q.name for q in path.parents[:4]][::-1] == [r.dataset, r.model, r.stack, f"threads{r.threads}"]
        assert path.stem == f"repeat{r.repeat}" == "repeat1"
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
    assert len(pd.read_parquet(smoke / "results" / "summary.parquet")) == 2 * N_STACKS
    assert len(list((smoke / "results" / "report" / "plots").glob("*.png"))) >= 5


def test_snakemake_report_packs_the_annotated_outputs(smoke):
    snakemake(smoke, "--configfile", str(SMOKE), "--report", str(smoke / "report.zip"))
    names = zipfile.ZipFile(smoke / "report.zip").namelist()
    for wanted in ("index.html", "summary.md", "summary.csv", "runs.csv", "headline.png", "time_to_accuracy.png"):
        assert any(n.endswith(wanted) for n in names), wanted


def trains(out) -> set[str]:
    """The records a dry run plans to (re)make."""
    return set(re.findall(r"^\s*output: (results/records/\S+\.json)", out.stdout, re.M))


def records(model=None, stack=None, threads=2, repeats=(1,)) -> set[str]:
    models = [model] if model else ["resnet", "lstm"]
    stacks = [stack] if stack else list(STACKS)
    return {f"results/records/{'smoke-cifar' if m == 'resnet' else 'smoke-imdb'}/{m}/{s}/threads{threads}/repeat{r}.json"
            for m in models for s in stacks for r in repeats}


@pytest.mark.parametrize("change, expected", [
    ({}, set()),
    ({"threads": 1}, records(threads=1)),
    ({"threads": [1, 2]}, records(threads=1)),  # the 2-thread runs are kept
    ({"repeats": 3}, records(repeats=(2, 3))),  # more repeats add runs, rerun none
    ({"device": "auto"}, records()),
    ({"seed": 7}, records()),
    ({"models": {"lstm": {"optimizer": {"learning_rate": 0.01}}}}, records("lstm")),
    ({"models": {"resnet": {"batch_size": 16}}}, records("resnet")),
    ({"models": {"lstm": {"units": 9}}}, records("lstm")),
    ({"datasets": {"smoke-imdb": {"seed": 4}}}, records("lstm")),
    ({"initial_weights": "per-stack"}, records()),
    ({"timeout_minutes": 3}, set()),
    ({"datasets": {"smoke-imdb": {"target_accuracy": 0.6}}}, set()),  # the summary only
    ({"venvs_dir": str(REPO / ".venvs")}, set()),  # the same folder, spelled otherwise
])
def test_a_changed_setting_reruns_exactly_the_runs_it_affects(smoke, tmp_path, change, expected):
    override = tmp_path / "change.yaml"
    override.write_text(json.dumps(change))
    out = snakemake(smoke, "-n", "--configfile", str(SMOKE), str(override))
    assert trains(out) == expected
    if not expected:
        assert "shards" not in planned_jobs(out.stdout)


def inferences(out) -> set[str]:
    """The inference records a dry run plans to (re)make (the runtimes' as their rule's log)."""
    return set(re.findall(r"^\s*output: (results/inference/\S+/native/\S+\.json)", out.stdout, re.M)) | set(
        re.findall(r"^\s*log: (results/logs/inference/\S+/onnx/\S+\.log)", out.stdout, re.M))


NATIVE = {f"results/inference/{'smoke-cifar' if m == 'resnet' else 'smoke-imdb'}/{m}/native/{s}/repeat1.json"
          for m in ("resnet", "lstm") for s in STACKS}
RUNTIMES = {f"results/logs/inference/{d}/{m}/onnx/repeat1.log" for d, m in (("smoke-cifar", "resnet"),
                                                                              ("smoke-imdb", "lstm"))}


@pytest.mark.parametrize("change, trained, inferred", [
    ({}, set(), set()),
    ({"inference": {"batch_sizes": [1, 8]}}, set(), NATIVE | RUNTIMES),
    ({"inference": {"min_calls": 20}}, set(), NATIVE | RUNTIMES),
    ({"inference": {"runtimes": ["onnxruntime"]}}, set(), RUNTIMES),
    ({"inference": {"repeats": 2}}, set(), {p.replace("repeat1", "repeat2") for p in NATIVE | RUNTIMES}),
    ({"models": {"lstm": {"units": 9}}}, records("lstm"), {p for p in NATIVE | RUNTIMES if "lstm" in p}),
])
def test_inference_settings_rerun_inference_only(smoke, tmp_path, change, trained, inferred):
    override = tmp_path / "change.yaml"
    override.write_text(json.dumps(change))
    out = snakemake(smoke, "-n", "--configfile", str(SMOKE), str(override))
    assert (trains(out), inferences(out)) == (trained, inferred)


def test_the_smoke_study_writes_trained_weights_the_matrix_and_inference_records(smoke):
    results = smoke / "results"
    for path in records():
        r = Record.read(smoke / path)
        if r.status == "ok":
            assert (smoke / r.trained_weights).is_file() and r.trained_weights.startswith(path.removesuffix(".json"))
    matrix = pd.read_csv(results / "crosseval.csv")
    assert len(matrix) == 2 * N_STACKS**2
    table = pd.read_csv(results / "inference.csv")
    assert set(table.engine) == {"native", "onnxruntime", "openvino", "openvino-bf16"}
    page = (results / "report" / "index.html").read_text()
    assert "Cross-evaluation" in page and "<h2>Inference</h2>" in page


def scratch_checkout(tmp_path: Path) -> Path:
    """A copy of the repository elsewhere: a moved checkout, or a fresh clone."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (tmp_path / "repo" / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, tmp_path / "repo" / f)
    return tmp_path / "repo"


def test_a_moved_checkout_reruns_nothing_and_edited_stack_code_reruns_that_stack(smoke, tmp_path):
    moved = scratch_checkout(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(moved / "python")}
    args = ("-n", "--configfile", str(SMOKE), "--config", f"venvs_dir={REPO / '.venvs'}")
    assert trains(snakemake(smoke, *args, env=env, repo=moved)) == set()
    stack = next(iter(STACKS.values()))
    code = next(p for p in (moved / stack.folder.relative_to(REPO)).rglob("*") if p.is_file()
                and p.name != "stack.yaml" and "test" not in p.name)
    code.write_text(code.read_text() + "\n")
    sharing = [s.id for s in STACKS.values() if s.folder == stack.folder]  # one code base, several backends
    assert trains(snakemake(smoke, *args, env=env, repo=moved)) == set().union(*(records(stack=s) for s in sharing))


def built_envs(venvs: Path, repo: Path = REPO) -> Path:
    """Stand-ins for environments built from `repo`'s current specs and locks: the
    manifests the rerun checks compare (nothing installed)."""
    for spec in (repo / "envs").glob("*.txt"):
        (venvs / spec.stem).mkdir(parents=True, exist_ok=True)
        (venvs / spec.stem / "dlrosetta-env.json").write_text(json.dumps(
            {"env": spec.stem, "status": "ok", "reason": None, "requirements_sha256": sha256_file(spec),
             "lock": f"{spec.stem}.lock", "lock_sha256": sha256_file(spec.with_suffix(".lock")), "packages": []}))
    return venvs


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "# an edit\n")


@pytest.mark.parametrize("edited", ["lock", "txt"])
def test_environments_are_rebuilt_on_content_not_mtime(tmp_path, edited):
    """A fresh clone has new mtimes on envs/*.txt and *.lock: nothing is rebuilt. A
    changed lock (or spec: its build then says whether the lock is stale) rebuilds its
    environment, even one Snakemake has no record of building (here: built from this
    checkout, planned from the clone)."""
    clone = scratch_checkout(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(clone / "python")}
    args = ("-n", "--configfile", str(SMOKE), "--config", f"venvs_dir={built_envs(tmp_path / 'venvs')}")
    later = time.time() + 3600
    for path in [*(clone / "envs").glob("*.txt"), *(clone / "envs").glob("*.lock")]:
        os.utime(path, (later, later))
    assert "build_env" not in planned_jobs(snakemake(tmp_path / "fresh", *args, env=env, repo=clone).stdout)
    stack = next(s for s in STACKS.values() if s.env)
    edit(clone / "envs" / f"{stack.env}.{edited}")
    out = snakemake(tmp_path / "changed", *args, env=env, repo=clone)
    assert planned_jobs(out.stdout)["build_env"] == 1
    assert f"{stack.env}.{edited} changed since the environment was built" in (
        tmp_path / "changed" / ".snakemake" / "dlrosetta-retry" / "envs" / f"{stack.env}.stamp").read_text()


def test_a_changed_lock_reruns_exactly_the_runs_of_its_stacks(tmp_path):
    """A finished study of the R stacks (skipped: R hidden from PATH; their records stay
    while it is missing) over environments built from the locks: a changed lock rebuilds
    its environment and reruns the runs of the stacks that use it, no other."""
    r_stacks = sorted(s.id for s in STACKS.values() if s.language == "r" and s.env)
    assert len({STACKS[s].env for s in r_stacks}) >= 2, r_stacks
    clone = scratch_checkout(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(clone / "python"), "PATH": path_without(tmp_path, {"R", "Rscript"})}
    args = ("--configfile", str(SMOKE), "--config", f"venvs_dir={built_envs(tmp_path / 'venvs')}",
            f"stacks=[{','.join(r_stacks)}]")
    snakemake(tmp_path / "work", *args, env=env, repo=clone)
    assert trains(snakemake(tmp_path / "work", "-n", *args, env=env, repo=clone)) == set()
    changed = STACKS[r_stacks[0]].env
    edit(clone / "envs" / f"{changed}.lock")
    out = snakemake(tmp_path / "work", "-n", *args, env=env, repo=clone)
    assert planned_jobs(out.stdout)["build_env"] == 1
    assert trains(out) == set().union(*(records(stack=s) for s in r_stacks if STACKS[s].env == changed))


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


def test_without_r_and_julia_runs_are_skipped_then_retried_once_they_are_back(smoke, tmp_path):
    """Skipped runs stick while their runtime is missing, and the next plain run retries
    them once it is there; config values reach the shell quoted (an injection attempt
    in venvs_dir is a folder name, not a command)."""
    env = dict(os.environ, PATH=path_without(tmp_path, {"R", "Rscript", "julia"}))
    rerun = sorted(p for stack in NOT_PYTHON for p in records(stack=stack))
    assert rerun
    snakemake(smoke, "--configfile", str(SMOKE), "--forcerun", *rerun, env=env)
    for path in rerun:
        r = Record.read(smoke / path)
        assert r.status == "skipped" and f"{NOT_PYTHON[r.stack]} not found on PATH" in r.reason
    inferred = sorted(smoke / "results" / "inference" / d / m / "native" / s / "repeat1.json"
                      for d, m, s in (p.split("/")[2:5] for p in rerun))
    assert all(InferenceRecord.read(p).status == "skipped" for p in inferred)
    assert "not found on PATH" in (smoke / "results" / "report" / "index.html").read_text()
    assert "retry: `snakemake --cores 2 results/records/" in (smoke / "results" / "report" / "summary.md").read_text()

    # A venvs_dir built to inject a command (and holding a space) is passed as one
    # argument: the runs of stacks without a Python environment still run and skip.
    no_env = sorted(p for stack in NOT_PYTHON if not STACKS[stack].env for p in records(stack=stack))
    if no_env:
        snakemake(smoke, "--configfile", str(SMOKE), "--config", "venvs_dir=v;touch PWNED;# x", "--forcerun",
                  *no_env, "--allowed-rules", "train", "aggregate", "report", "--", *no_env, env=env)
        assert not list(smoke.rglob("PWNED")) and not (Path.cwd() / "PWNED").exists()
        assert all(Record.read(smoke / p).status == "skipped" for p in no_env)

    # Still missing: nothing to retry. Back on the PATH: a plain run retries exactly them.
    assert trains(snakemake(smoke, "-n", "--configfile", str(SMOKE), env=env)) == set()
    assert trains(snakemake(smoke, "-n", "--configfile", str(SMOKE))) == set(rerun)
    snakemake(smoke, "--configfile", str(SMOKE))
    assert all(Record.read(smoke / p).status == "ok" for p in rerun)
    assert all(InferenceRecord.read(p).status == "ok" for p in inferred)  # their inference too


def test_failed_and_deleted_records_are_made_again(smoke, tmp_path):
    work = tmp_path / "smoke"  # a copy, times kept: the study stays whole for the next tests
    shutil.copytree(smoke, work, symlinks=True)
    ok = sorted(records(stack=next(iter(STACKS))))
    failed, deleted = work / ok[0], work / ok[1]
    data = json.loads(failed.read_text())
    data.update(status="failed", reason="exit code 1; log tail:\nMemoryError")
    failed.write_text(json.dumps(data))
    deleted.unlink()
    assert trains(snakemake(work, "-n", "--configfile", str(SMOKE))) == {ok[0], ok[1]}


def test_a_crashed_onnx_runner_is_retried_and_a_runtimes_verdict_on_an_export_stands(smoke, tmp_path):
    work = tmp_path / "smoke"
    shutil.copytree(smoke, work, symlinks=True)
    # The finished study plans nothing, failed runtime rows (a runtime refusing an export) included.
    assert not planned_jobs(snakemake(work, "-n", "--configfile", str(SMOKE)).stdout)
    path = sorted((work / "results" / "inference" / "smoke-cifar" / "resnet").glob("*/*/repeat1.json"))
    path = next(p for p in path if p.parts[-3] != "native")
    data = json.loads(path.read_text())
    data.update(status="failed", batches=None, reason=f"the {data['runtime']} {RUNNER_FAILED} (timed out after 600 s)")
    path.write_text(json.dumps(data))
    jobs = planned_jobs(snakemake(work, "-n", "--configfile", str(SMOKE)).stdout)
    assert jobs["infer_onnx"] == 1 and "infer" not in jobs and "train" not in jobs, jobs


def test_a_foreign_record_is_flagged_and_not_ranked(smoke):
    path = smoke / sorted(records(stack=next(iter(STACKS))))[0]
    snakemake(smoke, "--configfile", str(SMOKE))  # make everything whole again
    data = json.loads(path.read_text())
    data.update(threads=8, host_cpu="Some Other CPU")
    path.write_text(json.dumps(data))
    snakemake(smoke, "--configfile", str(SMOKE), "--allowed-rules", "aggregate", "report")
    df = pd.read_csv(smoke / "results" / "runs.csv")
    row = df[df.record_file == str(path.relative_to(smoke))].iloc[0]
    assert not row.belongs and "threads: record has 8, study has 2" in row.mismatch
    assert "threads: record has 8, study has 2" in (smoke / "results" / "report" / "summary.md").read_text().split(
        "## Not compared")[1]


def test_repeats_and_thread_counts_reach_the_summary_and_the_report(tmp_path):
    """Acceptance of the statistics on real stacks: a record per repeat, the summary's
    interval columns, the headline, the speed-up and the time-to-accuracy charts."""
    stacks = [s.id for s in STACKS.values() if s.language == "python"][:2]
    override = tmp_path / "stats.yaml"
    # Inference off (the smoke study above measures it): a study without it runs and reports.
    override.write_text(json.dumps({"stacks": stacks, "threads": [1, 2], "repeats": 3,
                                    "study": [{"model": "lstm", "dataset": "smoke-imdb"}],
                                    "datasets": {"smoke-imdb": {"target_accuracy": 0.5}},
                                    "inference": {"enabled": False}}))
    work = tmp_path / "work"
    snakemake(work, "--configfile", str(SMOKE), str(override))
    assert not (work / "results" / "inference").exists() and not (work / "results" / "crosseval.csv").exists()
    for stack in stacks:
        for threads in (1, 2):
            found = sorted((work / "results" / "records" / "smoke-imdb" / "lstm" / stack / f"threads{threads}").glob("*.json"))
            assert [p.name for p in found] == ["repeat1.json", "repeat2.json", "repeat3.json"]
    df = pd.read_csv(work / "results" / "summary.csv")
    assert len(df) == 4 and set(df.threads) == {1, 2}
    ok = df[df.status == "ok"]
    assert (ok.repeats == 3).all()
    assert (ok.steady_epoch_seconds_ci_low <= ok.steady_epoch_seconds_median).all()
    assert (ok.steady_epoch_seconds_median <= ok.steady_epoch_seconds_ci_high).all()
    assert ok.time_to_target_seconds_median.notna().any()
    page = (work / "results" / "report" / "index.html").read_text()
    assert "Fastest: " in page and "<h2>Thread scaling</h2>" in page and "<h2>Inference</h2>" not in page
    for chart in ("headline", "speedup", "time_to_accuracy", "loss_per_epoch"):
        assert (work / "results" / "report" / "plots" / f"{chart}.png").is_file()
    noise = pd.read_csv(work / "results" / "noise.csv")
    assert list(noise.threads) == [1, 2] and (noise.probes == 2 * 3 * len(stacks)).all()


def test_profile_mode_runs_once_per_stack_and_model_and_reaches_the_report(tmp_path):
    """Profiles at the largest thread count only, a profile record per (model, stack), the
    profiles table and the report's stacked bars; off by default (the dry run above)."""
    stack = next(s.id for s in STACKS.values() if s.language == "python")
    override = tmp_path / "profile.yaml"
    override.write_text(json.dumps({"stacks": [stack], "threads": [1, 2], "profile": {"enabled": True, "steps": 3},
                                    "inference": {"enabled": False}}))
    work = tmp_path / "work"
    jobs = planned_jobs(snakemake(work, "-n", "--configfile", str(SMOKE), str(override)).stdout)
    assert jobs["profile"] == 2 and jobs["profiles"] == 1 and jobs["train"] == 4 and "infer" not in jobs
    snakemake(work, "--configfile", str(SMOKE), str(override))
    found = sorted((work / "results" / "profiles").rglob("*.json"))
    assert [p.relative_to(work / "results" / "profiles").as_posix() for p in found] == [
        f"smoke-cifar/resnet/{stack}/threads2.json", f"smoke-imdb/lstm/{stack}/threads2.json"]
    for path in found:
        r = ProfileRecord.read(path)
        assert r.status == "ok" and r.steps == 3 and r.threads == 2, r.reason
        by = r.step_seconds_by_category
        assert by["conv_gemm" if r.model == "resnet" else "recurrent"] > 0
        assert sum(by.values()) == pytest.approx(r.profiled_step_seconds)
    table = pd.read_csv(work / "results" / "profiles.csv")
    assert list(table["stack"]) == [stack, stack] and (table["status"] == "ok").all()
    assert "<h2>Where a step's time goes</h2>" in (work / "results" / "report" / "index.html").read_text()
    assert (work / "results" / "report" / "plots" / "profile.png").is_file()


def test_missing_archive_is_named_with_its_config_key_before_anything_runs(tmp_path):
    out = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "full.yaml"), check=False)
    assert out.returncode != 0
    assert "datasets.cifar10.archive: data/cifar-10-python.tar.gz does not exist" in out.stdout + out.stderr


SLEEPER = """
# A stand-in stack for workflow tests: logs its start and end, re-executes itself once.
import os, subprocess, sys, time
if os.environ.get("SLEEPER_CHILD") is None:
    sys.exit(subprocess.run([sys.executable, *sys.argv], env={**os.environ, "SLEEPER_CHILD": "1"}).returncode)
log = os.environ["SLEEPER_LOG"]
run = sys.argv[1].split("/runs/")[1].rsplit("/", 1)[0]  # <dataset>/<model>/<stack>/threads<T>/repeat<R>
with open(log, "a") as f:
    f.write(f"start {os.getpid()} {time.time()} {run}\\n")
time.sleep(float(os.environ.get("SLEEPER_SECONDS", "2")))
with open(log, "a") as f:
    f.write(f"end {os.getpid()} {time.time()} {run}\\n")
"""


def sleeper_checkout(tmp_path: Path, n: int) -> Path:
    repo = scratch_checkout(tmp_path)
    for k in range(n):
        folder = repo / "python" / f"sleeper{k}"
        folder.mkdir()
        (folder / "sleeper.py").write_text(SLEEPER)
        (folder / "stack.yaml").write_text(json.dumps({
            "id": f"sleeper-{k}", "language": "python", "framework": "sleep", "description": "test stand-in",
            "runtime": "python3", "entry": ["{stack_dir}/sleeper.py"]}))
    return repo


def test_training_runs_never_overlap_whatever_resources_the_command_line_adds(tmp_path):
    repo = sleeper_checkout(tmp_path, 2)
    log = tmp_path / "sleeper.log"
    env = {**os.environ, "PYTHONPATH": str(repo / "python"), "SLEEPER_LOG": str(log)}
    snakemake(tmp_path / "work", "--configfile", str(SMOKE), "--cores", "4", "--resources", "mem_mb=16000",
              "--config", "stacks=[sleeper-0,sleeper-1]", "study=[{model: lstm, dataset: smoke-imdb}]",
              env=env, repo=repo)
    events = sorted((float(t), kind) for kind, _, t, _ in (line.split() for line in log.read_text().splitlines()))
    assert [kind for _, kind in events] == ["start", "end", "start", "end"]


def test_repeats_run_round_by_round_across_stacks(tmp_path):
    """A B C A B C: every stack's repeat 1 before any repeat 2, so a slow spell of the
    machine hits every stack alike."""
    repo = sleeper_checkout(tmp_path, 3)
    log = tmp_path / "sleeper.log"
    env = {**os.environ, "PYTHONPATH": str(repo / "python"), "SLEEPER_LOG": str(log), "SLEEPER_SECONDS": "0.2"}
    snakemake(tmp_path / "work", "--configfile", str(SMOKE), "--config", "stacks=[sleeper-0,sleeper-1,sleeper-2]",
              "study=[{model: lstm, dataset: smoke-imdb}]", "repeats=3", env=env, repo=repo)
    starts = sorted((float(t), run) for kind, _, t, run in (line.split() for line in log.read_text().splitlines())
                    if kind == "start")
    rounds = [int(run.rsplit("repeat", 1)[1]) for _, run in starts]
    assert rounds == [1, 1, 1, 2, 2, 2, 3, 3, 3], starts
    assert all(len({run.split("/")[2] for _, run in starts[i:i + 3]}) == 3 for i in (0, 3, 6))


def test_killing_snakemake_leaves_no_process_and_no_record(tmp_path):
    repo = sleeper_checkout(tmp_path, 1)
    log = tmp_path / "sleeper.log"
    env = {**os.environ, "PYTHONPATH": str(repo / "python"), "SLEEPER_LOG": str(log), "SLEEPER_SECONDS": "6"}
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
                             "--directory", str(work), "--cores", "2", "--configfile", str(SMOKE), "--config",
                             "stacks=[sleeper-0]", "study=[{model: lstm, dataset: smoke-imdb}]"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (log.exists() and "start" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "the stack never started"
        time.sleep(0.2)
    pid = int(log.read_text().split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(8)  # longer than the stack would have slept
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    assert "end" not in log.read_text()
    assert not list((work / "results" / "records").rglob("*.json"))


@pytest.mark.parametrize("status, rebuilt", [("ok", False), ("unavailable", True)])
def test_an_environment_whose_build_failed_is_rebuilt_on_the_next_run(tmp_path, status, rebuilt):
    stack = next(s for s in STACKS.values() if s.env)
    venvs = tmp_path / "venvs"
    # The ONNX runtimes' environment is built and current, so only the stack's can be planned.
    for env, env_status in ((stack.env, status), (ONNX_ENV, "ok")):
        (venvs / env).mkdir(parents=True)
        (venvs / env / "dlrosetta-env.json").write_text(json.dumps(
            {"env": env, "status": env_status, "reason": None if env_status == "ok" else "pip: no network",
             "requirements_sha256": sha256_file(REPO / "envs" / f"{env}.txt"),
             "lock_sha256": sha256_file(REPO / "envs" / f"{env}.lock")}))
    out = snakemake(tmp_path / "work", "-n", "--configfile", str(SMOKE), "--config", f"venvs_dir={venvs}",
                    f"stacks=[{stack.id}]")
    assert ("build_env" in planned_jobs(out.stdout)) == rebuilt
