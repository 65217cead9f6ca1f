"""Every stack dlrosetta knows, discovered from the stack folders' manifests.

A stack is one folder holding a manifest `stack.yaml` (schema: schemas/stack.schema.json)
and its model and training code, anywhere under its language's folder (python/, r/,
julia/). Adding a stack is adding such a folder (plus envs/<env>.txt when it needs a
Python environment); the config's default stack list, the workflow, the tests and the
report all read this registry (docs/stack-contract.md, "Add a stack").

The launcher runs a stack as `<runtime> <entry...> <run-spec.json>`, with the manifest's
env_vars and the thread variables.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
MANIFEST = "stack.yaml"
LANGUAGE_FOLDERS = ("python", "r", "julia")
#: Each language's shared stack library (repo-relative): code every stack of that
#: language runs, so a change to it reruns that language's stacks.
SHARED_LIBRARY = {
    "python": tuple(f"python/dlrosetta/{m}.py" for m in (
        "checksum", "measurements", "model_spec", "npy", "order", "profiler", "runspec", "shards",
        "stopwatch", "weights", "stacks/train")),
    "r": ("r/R", "r/DESCRIPTION"),
    "julia": ("julia/src", "julia/Project.toml"),
}
#: Never part of a stack's code fingerprint: tests and caches do not change results.
NOT_CODE = {"tests", "test", "__pycache__"}


class ManifestError(ValueError):
    """A stack manifest is invalid; the message names the file and the key."""


@dataclass(frozen=True, kw_only=True)
class Stack:
    id: str
    language: str                 # python | r | julia
    framework: str
    backend: Optional[str]
    description: str
    #: Python environment (envs/<env>.txt, built by the workflow into <venvs_dir>/<env>):
    #: the interpreter of Python stacks, the embedded Python of R's reticulate.
    env: Optional[str]
    #: "python" means the env's interpreter; anything else is a program on PATH.
    runtime: str
    entry: tuple[str, ...]        # placeholders already replaced
    env_vars: Mapping[str, str] = field(default_factory=dict)
    folder: Path
    manifest: Path
    code: tuple[str, ...] = ()    # repo-relative paths outside the folder it depends on

    def code_paths(self) -> list[Path]:
        """Every file whose content can change this stack's results: its folder, its
        language's shared library and the manifest's `code`."""
        roots = [self.folder, *(REPO / p for p in (*SHARED_LIBRARY[self.language], *self.code))]
        files = set()
        for root in roots:
            candidates = root.rglob("*") if root.is_dir() else [root]
            files.update(p for p in candidates if p.is_file() and not NOT_CODE & set(p.relative_to(REPO).parts))
        return sorted(files)

    def code_sha256(self) -> str:
        """Fingerprint of code_paths by content and repo-relative name, so a fresh clone
        or a moved checkout gives the same value and only an edit changes it."""
        h = hashlib.sha256()
        for path in self.code_paths():
            h.update(path.relative_to(REPO).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _manifest_validator():
    import jsonschema

    schema = json.loads((SCHEMAS / "stack.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _fill(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def read_manifest(path: Path, repo: Path = REPO) -> list[Stack]:
    """The stacks one manifest declares (one per backend when it lists `backends`)."""
    import yaml

    where = path.relative_to(repo) if path.is_relative_to(repo) else path
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ManifestError(f"{where}: not valid YAML: {e}") from None
    errors = sorted(_manifest_validator().iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        key = ".".join(map(str, e.absolute_path)) or "<manifest>"
        raise ManifestError(f"{where}: {key}: {e.message}")
    language_folder = where.parts[0] if not where.is_absolute() else None
    if language_folder is not None and language_folder != data["language"]:
        raise ManifestError(f"{where}: language: {data['language']!r}, but the stack lives under "
                            f"{language_folder}/")
    backends = data.get("backends") or [data.get("backend")]
    if "backends" in data and "{backend}" not in data["id"]:
        raise ManifestError(f"{where}: id: {data['id']!r} must hold {{backend}} when `backends` is given")
    for rel in data.get("code", []):
        if not (repo / rel).exists():
            raise ManifestError(f"{where}: code: {rel!r} does not exist (paths are repo-relative)")
    stacks = []
    for backend in backends:
        values = {"backend": backend or "", "stack_dir": str(path.parent), "repo": str(repo)}
        stacks.append(Stack(
            id=_fill(data["id"], values), language=data["language"], framework=data["framework"],
            backend=backend, description=_fill(data["description"], values), env=data.get("env"),
            runtime=data["runtime"], entry=tuple(_fill(a, values) for a in data["entry"]),
            env_vars={k: _fill(v, values) for k, v in data.get("env_vars", {}).items()},
            folder=path.parent, manifest=path, code=tuple(data.get("code", []))))
    return stacks


def discover(repo: Path = REPO) -> dict[str, Stack]:
    """Every manifest under the language folders, validated; ids must be unique."""
    found: dict[str, Stack] = {}
    for language in LANGUAGE_FOLDERS:
        for path in sorted((repo / language).rglob(MANIFEST)):
            if any(part.startswith(".") for part in path.relative_to(repo).parts):
                continue
            for stack in read_manifest(path, repo):
                if stack.id in found:
                    raise ManifestError(f"{path.relative_to(repo)}: id: {stack.id!r} is already declared "
                                        f"by {found[stack.id].manifest.relative_to(repo)}")
                found[stack.id] = stack
    return found


STACKS: dict[str, Stack] = discover()


def get_stack(stack_id: str) -> Stack:
    try:
        return STACKS[stack_id]
    except KeyError:
        raise KeyError(f"unknown stack {stack_id!r}; known stacks: {', '.join(STACKS)}") from None


def environments() -> list[str]:
    return sorted({s.env for s in STACKS.values() if s.env})
