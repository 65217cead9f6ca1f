"""Stacks as plugins: a stack is one folder with a manifest, discovered; nothing else in
the repository names stack ids; every file's "Twins:" header names files that exist; R
and Julia report raw measurements and derive nothing (docs/stack-contract.md)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlrosetta.registry import REPO, STACKS, ManifestError, discover, read_manifest

CODE_SUFFIXES = {".py", ".R", ".jl", ".smk", ".sh", ".j2", ".toml"}


def repo_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files, as a fresh clone would have them."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return [REPO / f for f in out if (REPO / f).is_file()]


def stack_folders() -> set[Path]:
    return {s.folder for s in STACKS.values()}


def in_stack_folder(path: Path) -> bool:
    return any(path.is_relative_to(folder) for folder in stack_folders())


def test_every_manifest_is_valid_and_its_stacks_are_unique():
    manifests = sorted(p for p in repo_files() if p.name == "stack.yaml")
    assert manifests, "no stack.yaml found"
    ids = [s.id for m in manifests for s in read_manifest(m)]
    assert sorted(ids) == sorted(STACKS) and len(set(ids)) == len(ids)
    for stack in STACKS.values():
        assert stack.language in stack.folder.relative_to(REPO).parts[0]
        assert stack.code_paths() and all(p.is_file() for p in stack.code_paths())
        if stack.env:
            assert (REPO / "envs" / f"{stack.env}.txt").is_file(), stack.id


@pytest.mark.parametrize("change, fragment", [
    ({"language": "cobol"}, "language: 'cobol' is not one of"),
    ({"entry": []}, "entry: [] should be non-empty"),
    ({"id": "Bad Id"}, "id: 'Bad Id' does not match"),
    ({"runtime": "sh -c 'x'"}, "runtime: \"sh -c 'x'\" does not match"),
    ({"colour": "red"}, "'colour' was unexpected"),
    ({"code": ["no/such/file.py"]}, "code: 'no/such/file.py' does not exist"),
    ({"language": "r"}, "language: 'r', but the stack lives under python/"),
])
def test_a_bad_manifest_is_named_with_its_key(tmp_path, change, fragment):
    manifest = tmp_path / "python" / "mystack" / "stack.yaml"
    manifest.parent.mkdir(parents=True)
    good = {"id": "my-stack", "language": "python", "framework": "torch", "description": "a stack",
            "env": "torch", "runtime": "python", "entry": ["-m", "mystack"]}
    manifest.write_text(yaml.safe_dump({**good, **change}))
    with pytest.raises(ManifestError) as e:
        discover(tmp_path)
    assert str(e.value).startswith("python/mystack/stack.yaml: ") and fragment in str(e.value)


def test_duplicate_ids_name_both_manifests(tmp_path):
    for folder in ("a", "b"):
        manifest = tmp_path / "julia" / folder / "stack.yaml"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(yaml.safe_dump({"id": "twin", "language": "julia", "framework": "x",
                                            "description": "d", "runtime": "julia", "entry": ["run.jl"]}))
    with pytest.raises(ManifestError, match=r"julia/b/stack.yaml: id: 'twin' is already declared by julia/a/stack.yaml"):
        discover(tmp_path)


def test_a_bad_manifest_stops_the_workflow_before_any_job(tmp_path):
    scratch = scratch_repo(tmp_path)
    (scratch / "python" / "broken").mkdir()
    (scratch / "python" / "broken" / "stack.yaml").write_text("id: broken\nlanguage: python\n")
    out = snakemake_dry_run(scratch, tmp_path / "work")
    assert out.returncode != 0
    assert "python/broken/stack.yaml: <manifest>: 'framework' is a required property" in out.stdout + out.stderr
    assert not (tmp_path / "work" / "results").exists()


def scratch_repo(tmp_path: Path) -> Path:
    scratch = tmp_path / "repo"
    for f in repo_files():
        target = scratch / f.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return scratch


def snakemake_dry_run(scratch: Path, workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(scratch / "Snakefile"),
                           "--directory", str(workdir), "--cores", "2", "--config", f"venvs_dir={REPO / '.venvs'}"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(scratch / "python")})


def test_a_copied_stack_folder_is_picked_up_with_no_other_edit(tmp_path):
    """Adding a stack is one folder: the workflow's plan and the tests' parametrisation
    both grow by it, with no edit anywhere else (here: a copy of a Python stack)."""
    source = next(s for s in STACKS.values() if s.language == "python" and s.backend is None)
    scratch = scratch_repo(tmp_path)
    folder = scratch / source.folder.relative_to(REPO)
    copy = folder.with_name(folder.name + "_copy")
    shutil.copytree(folder, copy)
    manifest = yaml.safe_load((copy / "stack.yaml").read_text())
    new_id = manifest["id"] + "-copy"
    (copy / "stack.yaml").write_text(yaml.safe_dump({**manifest, "id": new_id}))

    before = snakemake_dry_run(scratch_repo(tmp_path / "orig"), tmp_path / "w0")
    after = snakemake_dry_run(scratch, tmp_path / "w1")
    assert before.returncode == 0 and after.returncode == 0, after.stdout[-2000:] + after.stderr[-2000:]
    assert f"results/records/synthetic-cifar/resnet/{new_id}/threads2/repeat1.json" in after.stdout
    repeats = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["repeats"]
    assert train_jobs(after.stdout) == train_jobs(before.stdout) + 2 * repeats  # resnet and lstm, each repeat

    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "tests/test_stacks_python.py", "tests/test_cross_stack.py"],
                               cwd=scratch, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(scratch / "python")})
    assert collected.returncode == 0, collected.stdout[-2000:]
    assert f"{new_id}]" in collected.stdout and f"lstm-{new_id}]" in collected.stdout


def train_jobs(dry_run: str) -> int:
    return int(re.search(r"^train\s+(\d+)$", dry_run.split("Job stats:")[-1], re.M).group(1))


def quoted_stack_ids() -> list[tuple[Path, int, str]]:
    """Stack ids hard-coded as string literals in code outside the stack folders.
    Framework and backend names that are also ids (tensorflow) count only where they
    name a stack: a `stack=` argument, or a registry or runtime lookup."""
    names = {s.framework for s in STACKS.values()} | {s.backend for s in STACKS.values() if s.backend}
    plain = "|".join(re.escape(i) for i in STACKS if i not in names)
    every = "|".join(re.escape(i) for i in STACKS)
    pattern = re.compile(rf"""["']({plain})["']|(?:stack\s*=\s*|STACKS\[|get_stack\(|command_or_skip\()["']({every})["']""")
    found = []
    for path in repo_files():
        rel = path.relative_to(REPO)
        if in_stack_folder(path) or rel.parts[0] in ("docs", "config") or path.suffix not in CODE_SUFFIXES | {""}:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append((rel, n, line.strip()))
    return found


def test_no_stack_id_is_hard_coded_outside_the_stack_folders():
    assert quoted_stack_ids() == []


TWINS = re.compile(r"Twins:(.*?)(?:\n\s*\n|\"\"\"|\n[^#\s]|\Z)", re.S)
PATH = re.compile(r"(?<![\w/.-])((?:python|r|julia|tests|schemas|benchmarks)/[\w./{},+-]*[\w/}])")


def expand(token: str) -> list[str]:
    """a/{b,c}/d -> a/b/d, a/c/d"""
    m = re.search(r"\{([^{}]*)\}", token)
    if not m:
        return [token]
    return [t for alt in m.group(1).split(",") for t in expand(token[:m.start()] + alt + token[m.end():])]


def test_every_twins_header_names_files_that_exist():
    missing, headers = [], 0
    for path in repo_files():
        if path.suffix not in {".py", ".R", ".jl"}:
            continue
        for m in TWINS.finditer(path.read_text(errors="replace")):
            headers += 1
            text = re.sub(r"\n\s*(#'?|//)?", " ", m.group(1))
            for token in PATH.findall(text):
                for name in expand(token.rstrip(".,")):
                    if not (REPO / name).exists():
                        missing.append(f"{path.relative_to(REPO)} names {name}")
    assert headers > 40 and missing == []


# `warmup_calls` is a run spec key (inference mode) that stacks read and echo, not a statistic.
DERIVED = re.compile(r"steady|samples_per_second|warmup(?!_calls)|final_train_loss|train_samples_per_epoch|"
                     r"timing_fields|shards_sha256|created_at|schema_version")


@pytest.mark.parametrize("language, suffix", [("r", ".R"), ("julia", ".jl")])
def test_r_and_julia_write_raw_measurements_only(language, suffix):
    """No statistic or record field derived from others is computed outside Python (their
    tests may name such fields, to check they are refused)."""
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in repo_files()
            if p.suffix == suffix and p.relative_to(REPO).parts[0] == language
            and not {"test", "tests"} & set(p.relative_to(REPO).parts)
            for n, line in enumerate(p.read_text().splitlines(), 1) if DERIVED.search(line)]
    assert hits == []


@pytest.mark.parametrize("stack", [s for s in STACKS.values() if s.language == "python"], ids=lambda s: s.id)
def test_a_python_stacks_fingerprint_covers_every_module_it_imports(stack):
    """Whatever dlrosetta module a stack runs is in its code fingerprint, so editing it
    reruns the stack (rules/train.smk)."""
    covered = set(stack.code_paths())
    pending, seen = [p for p in covered if p.suffix == ".py"], set()
    while pending:
        path = pending.pop()
        for module in re.findall(r"^\s*from (dlrosetta(?:\.\w+)*) import", path.read_text(), re.M):
            target = REPO / "python" / (module.replace(".", "/") + ".py")
            if not target.exists():
                target = target.with_suffix("") / "__init__.py"
            if target.name == "__init__.py" and not target.read_text().strip("\n").count("\n") > 5:
                continue  # a package marker, not code
            assert target in covered, f"{path.relative_to(REPO)} imports {module}, outside {stack.id}'s fingerprint"
            if target not in seen:
                seen.add(target)
                pending.append(target)
