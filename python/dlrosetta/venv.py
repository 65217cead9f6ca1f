"""Build one stack environment: .venvs/<env> from its lock envs/<env>.lock (rules/envs.smk).

Every environment is installed from a committed lock: every package at an exact version,
with the hashes of its files, compiled from the human-edited top-level spec
envs/<env>.txt by `bash envs/lock.sh` (docs/environments.md). With uv (the orchestrator
environment has it) the build is `uv venv` + `uv pip sync <lock>`: the environment then
holds exactly the lock, nothing else. Without uv it falls back to `python -m venv` +
`pip install --require-hashes --no-deps -r <lock>`, then removes what the lock does not
name. uv does not read pip's configuration: the index settings pip is given on this
machine (`pip config list`) are passed to uv as its own variables (`uv_environment`).

The rule's output is the environment's manifest (`dlrosetta-env.json`): the interpreter,
its version, the sha256 of the spec and of the lock it was built from, the installer and
its version, and every installed package at its version, so records and the report can
name what ran (the launcher copies `lock_sha256` into each record as `env_lock_sha256`).
A lock missing, or compiled from another version of the spec, is a failed build. A build
that fails (no network, no wheel for this platform, a stale lock) still writes the
manifest, with status `unavailable` and the reason: the stacks that need the environment
then write `skipped` records saying why, the rest of the study goes on, and the next run
of the workflow retries the build.

A working environment is never replaced by a failure: the last good manifest is kept
beside it, and a failed update of a working environment keeps it in use, saying so in
`update_failed`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Mapping, Optional

from dlrosetta.checksum import sha256_file
from dlrosetta.measurements import write_json_atomic

MANIFEST = "dlrosetta-env.json"
LAST_OK = "dlrosetta-env.last-ok.json"
#: The line envs/lock.sh writes into each lock: the sha256 of the spec it was compiled from.
LOCK_SOURCE = re.compile(r"^# requirements: (\S+) sha256=([0-9a-f]{64})$", re.M)
#: A pinned requirement of a lock (`name==version` at the start of a line).
LOCK_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)
#: Every installed distribution, as `name==version` lines (pip freeze's form, any installer).
LIST_PACKAGES = ("import importlib.metadata as m; print('\\n'.join(sorted("
                 "{d.metadata['Name'] + '==' + d.version for d in m.distributions()}, key=str.lower)))")


def python_of(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def lock_of(requirements: Path) -> Path:
    """envs/<env>.txt -> envs/<env>.lock."""
    return requirements.with_suffix(".lock")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lock: Path) -> dict[str, str]:
    """{canonical name: version} of every package the lock pins."""
    return {canonical(m.group(1)): m.group(2) for m in LOCK_PIN.finditer(lock.read_text())}


def stale_lock_reason(requirements: Path, lock: Path) -> Optional[str]:
    """Why the lock cannot be installed for this spec (missing, or compiled from another
    version of it), or None."""
    if not lock.is_file():
        return f"{lock.name} is missing: compile it from {requirements.name} with `bash envs/lock.sh {requirements.stem}`"
    source = LOCK_SOURCE.search(lock.read_text())
    if source and source.group(2) != sha256_file(requirements):
        return (f"{lock.name} was compiled from another version of {requirements.name}: "
                f"run `bash envs/lock.sh {requirements.stem}` and commit the lock")
    return None


# -- uv, and pip's configuration handed to it -------------------------------------------

#: `pip config list` sections that apply to `pip install`, weakest first: the PIP_*
#: variables (`:env:`) win over an `[install]` section, which wins over `[global]`.
PIP_SECTIONS = ("global", "install", ":env:")


def pip_config(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The settings `pip install` would use, {key: value}, from `pip config list` (which
    has merged the configuration files already). Empty when no pip can tell."""
    env = dict(os.environ if environ is None else environ)
    for python in (sys.executable, shutil.which("python3", path=env.get("PATH"))):
        if not python:
            continue
        try:
            out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                 env=env, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            found = []
            for line in out.stdout.splitlines():
                name, sep, value = line.partition("=")
                section, _, key = name.rpartition(".")
                if sep and section in PIP_SECTIONS:
                    found.append((PIP_SECTIONS.index(section), key, value.strip().strip("'\"")))
            return {key: value for _, key, value in sorted(found)}
    return {}


def uv_variables(config: Mapping[str, str]) -> dict[str, str]:
    """uv's variables for pip's settings (uv reads no pip configuration): find-links,
    index-url, extra-index-url (and `unsafe-best-match`, so that uv looks in every index as
    pip does, not only in the first that has a package), no-index, constraint, cert."""
    out = {}
    if config.get("find-links"):
        out["UV_FIND_LINKS"] = ",".join(config["find-links"].split())
    if config.get("index-url"):
        out["UV_DEFAULT_INDEX"] = config["index-url"]
    if config.get("extra-index-url"):
        out["UV_EXTRA_INDEX_URL"] = " ".join(config["extra-index-url"].split())
        out["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    if config.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        out["UV_NO_INDEX"] = "1"
    if config.get("constraint"):
        out["UV_CONSTRAINT"] = " ".join(config["constraint"].split())
    if config.get("cert"):
        out["SSL_CERT_FILE"] = config["cert"]
    return out


def uv_environment(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment to run uv in: `environ` plus pip's settings as uv variables,
    except those the caller has set already."""
    env = dict(os.environ if environ is None else environ)
    return {**uv_variables(pip_config(env)), **env}


def find_uv(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The uv beside this interpreter (the orchestrator environment's), else on PATH;
    None when there is none or DLROSETTA_INSTALLER=pip asks for pip."""
    env = os.environ if environ is None else environ
    if env.get("DLROSETTA_INSTALLER", "").lower() == "pip":
        return None
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("uv", path=env.get("PATH"))


def _run(cmd: list[str], log, env: Optional[Mapping[str, str]] = None, capture: bool = False) -> str:
    print("+", " ".join(map(shlex.quote, cmd)), file=log, flush=True)
    if capture:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return ""


def install_with_uv(uv: str, lock: Path, env_dir: Path, log) -> str:
    """`uv venv` (when there is none) + `uv pip sync`: exactly the lock. Returns the installer."""
    env = uv_environment()
    if not python_of(env_dir).exists():
        _run([uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(env_dir)], log, env)
    _run([uv, "pip", "sync", "--quiet", "--python", str(python_of(env_dir)), str(lock)], log, env)
    return " ".join(_run([uv, "--version"], log, capture=True).split()[:2])  # "uv 0.13.9"


def install_with_pip(lock: Path, env_dir: Path, log) -> str:
    """The fallback without uv: `python -m venv` + pip, hash-checked, then what the lock
    does not name is removed (pip itself excepted). Returns the installer."""
    python = str(python_of(env_dir))
    if not python_of(env_dir).exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    elif subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        _run([python, "-m", "ensurepip", "--upgrade"], log)  # an environment uv made has no pip
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--require-hashes", "-r", str(lock)], log)
    pins = lock_pins(lock)
    extra = [p.split("==")[0] for p in installed_packages(env_dir) if canonical(p.split("==")[0]) not in pins]
    if extra:
        _run([python, "-m", "pip", "uninstall", "-q", "-y", *extra], log)
    return "pip " + _run([python, "-m", "pip", "--version"], log, capture=True).split()[1]


def installed_packages(env_dir: Path) -> list[str]:
    """Every distribution installed in the environment as `name==version`, but pip
    (isolated mode: no PYTHONPATH, no user site)."""
    out = subprocess.run([str(python_of(env_dir)), "-I", "-c", LIST_PACKAGES], check=True, capture_output=True,
                         text=True).stdout.split()
    return [p for p in out if canonical(p.split("==")[0]) != "pip"]


def build(requirements: Path, env_dir: Path, log, lock: Optional[Path] = None) -> dict:
    lock = lock or lock_of(requirements)
    info = {"env": env_dir.name, "requirements": requirements.name,
            "requirements_sha256": sha256_file(requirements), "lock": lock.name,
            "lock_sha256": sha256_file(lock) if lock.is_file() else None, "installer": None,
            "python": str(python_of(env_dir))}
    start = time.perf_counter()
    try:
        stale = stale_lock_reason(requirements, lock)
        if stale:
            raise ValueError(stale)
        uv = find_uv()
        installer = install_with_uv(uv, lock, env_dir, log) if uv else install_with_pip(lock, env_dir, log)
        version = subprocess.run([str(python_of(env_dir)), "-c", "import platform; print(platform.python_version())"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        return {**info, "installer": installer, "status": "ok", "reason": None, "python_version": version,
                "packages": installed_packages(env_dir), "build_seconds": round(time.perf_counter() - start, 1)}
    except ValueError as e:
        return {**info, "status": "unavailable", "packages": [], "python_version": None,
                "reason": f"environment {env_dir.name} not built: {e}"}
    except (subprocess.CalledProcessError, OSError) as e:
        return {**info, "status": "unavailable", "packages": [], "python_version": None,
                "reason": f"building environment {env_dir.name} from {lock.name} failed: {e} "
                          f"(details in the rule's log)"}


def build_keeping_last_ok(requirements: Path, env_dir: Path, log, lock: Optional[Path] = None) -> dict:
    """Build, then write the manifest: the new one, or the last good one when the build
    failed but the environment it describes still runs."""
    last_ok = env_dir / LAST_OK
    info = build(requirements, env_dir, log, lock)
    previous = json.loads(last_ok.read_text()) if last_ok.is_file() else None
    if info["status"] != "ok" and previous and python_of(env_dir).exists():
        info = {**previous, "update_failed": info["reason"]}
    write_json_atomic(env_dir / MANIFEST, info)
    if info["status"] == "ok" and "update_failed" not in info:
        shutil.copy2(env_dir / MANIFEST, last_ok)
    return info


def env_lock_sha256(venvs_dir: Path, env: Optional[str]) -> Optional[str]:
    """The sha256 of the lock the environment in use was built from (its manifest's, the
    last good build's after a failed update), or None: no environment, none built."""
    if not env:
        return None
    try:
        info = json.loads((venvs_dir / env / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info.get("lock_sha256") if info.get("status") == "ok" else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requirements", type=Path, help="the environment's spec, envs/<env>.txt")
    p.add_argument("--lock", type=Path, default=None, help="its lock (default: the spec's name with .lock)")
    p.add_argument("--env-dir", type=Path)
    p.add_argument("--uv-env", action="store_true",
                   help="print `export` lines that hand pip's configuration to uv (envs/lock.sh, envs/setup.sh)")
    a = p.parse_args(argv)
    if a.uv_env:
        for key, value in uv_variables(pip_config()).items():
            if key not in os.environ:
                print(f"export {key}={shlex.quote(value)}")
        return 0
    if not (a.requirements and a.env_dir):
        p.error("--requirements and --env-dir are required")
    info = build_keeping_last_ok(a.requirements, a.env_dir, sys.stderr, a.lock)
    print(f"environment {a.env_dir.name}: {info['status']} {info.get('installer') or ''} "
          f"{info.get('update_failed') or info.get('reason') or ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
