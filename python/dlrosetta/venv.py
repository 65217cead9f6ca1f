"""Build one stack environment: .venvs/<env> from envs/<env>.txt (rules/envs.smk).

The rule's output is the environment's manifest (`dlrosetta-env.json`): the interpreter,
its version, the requirement file's sha256 and `pip freeze`, so records and the report
can name every package version. A build that fails (no network, no wheel for this
platform) still writes the manifest, with status `unavailable` and the reason: the
stacks that need the environment then write `skipped` records saying why, and the rest
of the study goes on, and the next run of the workflow retries the build.

A working environment is never replaced by a failure: the last good manifest is kept
beside it, and a failed update of a working environment keeps it in use, saying so in
`update_failed`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from dlrosetta.checksum import sha256_file
from dlrosetta.measurements import write_json_atomic

MANIFEST = "dlrosetta-env.json"
LAST_OK = "dlrosetta-env.last-ok.json"


def python_of(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def build(requirements: Path, env_dir: Path, log) -> dict:
    info = {"env": env_dir.name, "requirements": requirements.name,
            "requirements_sha256": sha256_file(requirements), "python": str(python_of(env_dir))}
    try:
        if not python_of(env_dir).exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        for cmd in ([str(python_of(env_dir)), "-m", "pip", "install", "-q", "--upgrade", "pip"],
                    [str(python_of(env_dir)), "-m", "pip", "install", "-q", "-r", str(requirements)]):
            print("+", " ".join(cmd), file=log, flush=True)
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        freeze = subprocess.run([str(python_of(env_dir)), "-m", "pip", "freeze"], check=True,
                                capture_output=True, text=True).stdout.split()
        version = subprocess.run([str(python_of(env_dir)), "-c", "import platform; print(platform.python_version())"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        return {**info, "status": "ok", "reason": None, "python_version": version, "packages": freeze}
    except (subprocess.CalledProcessError, OSError) as e:
        return {**info, "status": "unavailable", "packages": [], "python_version": None,
                "reason": f"building environment {env_dir.name} from {requirements.name} failed: {e} "
                          f"(details in the rule's log)"}


def build_keeping_last_ok(requirements: Path, env_dir: Path, log) -> dict:
    """Build, then write the manifest: the new one, or the last good one when the build
    failed but the environment it describes still runs."""
    last_ok = env_dir / LAST_OK
    info = build(requirements, env_dir, log)
    previous = json.loads(last_ok.read_text()) if last_ok.is_file() else None
    if info["status"] != "ok" and previous and python_of(env_dir).exists():
        info = {**previous, "update_failed": info["reason"]}
    write_json_atomic(env_dir / MANIFEST, info)
    if info["status"] == "ok" and "update_failed" not in info:
        shutil.copy2(env_dir / MANIFEST, last_ok)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requirements", type=Path, required=True)
    p.add_argument("--env-dir", type=Path, required=True)
    a = p.parse_args(argv)
    info = build_keeping_last_ok(a.requirements, a.env_dir, sys.stderr)
    print(f"environment {a.env_dir.name}: {info['status']} {info.get('update_failed') or info.get('reason') or ''}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
