"""Benchmark building every Python environment from nothing: the old way (pip from each
top-level spec, envs/<env>.txt) against the new one (uv from each committed lock,
envs/<env>.lock), and what that makes of the time from a fresh clone to a finished
default study. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/envs.py --study-seconds 750   # a default study's wall time
    .venv/bin/python benchmarks/envs.py --run-study           # ... measured (benchmarks/study.py)
    .venv/bin/python benchmarks/envs.py --envs torch jax      # some environments only

Every environment is built into a new temporary folder (never .venvs) with empty pip and
uv caches, as on a fresh machine, one build after another (both ways download and unpack
GBs). The stack environments: the old way is what dlrosetta.venv did before locks (`python
-m venv`, `pip install --upgrade pip`, `pip install -r envs/<env>.txt`); the new way is
dlrosetta.venv.build itself (`uv venv`, `uv pip sync envs/<env>.lock`). The orchestrator
environment (.venv, envs/setup.sh; with rpy2 where R is installed): the old way is `pip
install -r` of orchestrator.txt (uv left out) and rpy2.txt; the new way installs uv with
pip, then `uv pip sync` of orchestrator.lock and rpy2.lock. The editable dlrosetta
package (a few seconds either way) is left out, so that nothing is written into the
checkout. uv is also timed again with its cache warm (a rebuild after a lock change).

fresh clone to report = envs/setup.sh's orchestrator environment + every stack
environment + the default study (R and Julia from Debian packages are the same either way
and left out). Target (issue 14): environment builds at least 2x faster.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv as stdlib_venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from dlrosetta import venv  # noqa: E402

STACK_ENVS = sorted(p.stem for p in (REPO / "envs").glob("*.txt") if p.stem not in ("orchestrator", "rpy2"))


def run(cmd: list[str], log, env=None) -> None:
    print("+", " ".join(map(str, cmd)), file=log, flush=True)
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)


def pip_from_spec(env_dir: Path, specs: list[Path], log) -> None:
    """The old way: a venv with pip, pip upgraded, then each spec resolved and installed."""
    stdlib_venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = str(venv.python_of(env_dir))
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], log)
    for spec in specs:
        run([python, "-m", "pip", "install", "-q", "-r", str(spec)], log)


def uv_orchestrator(env_dir: Path, locks: list[Path], log) -> None:
    """envs/setup.sh's way: a venv, uv installed by pip at the lock's version, uv pip sync."""
    stdlib_venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = str(venv.python_of(env_dir))
    run([python, "-m", "pip", "install", "-q", f"uv=={venv.lock_pins(locks[0])['uv']}"], log)
    run([str(env_dir / "bin" / "uv"), "pip", "sync", "-q", "--python", python, *map(str, locks)], log,
        env=venv.uv_environment())


def timed(label: str, build, log) -> float:
    start = time.perf_counter()
    try:
        build()
    except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
        print(f"  {label}: FAILED ({e}); see the log", flush=True)
        return float("nan")
    seconds = time.perf_counter() - start
    print(f"  {label:40} {seconds:7.1f} s", flush=True)
    return seconds


def uv_stack_env(name: str, env_dir: Path, log) -> None:
    info = venv.build(REPO / "envs" / f"{name}.txt", env_dir, log)
    if info["status"] != "ok":
        raise RuntimeError(info["reason"])
    if not (info["installer"] or "").startswith("uv "):
        raise RuntimeError(f"built with {info['installer']}, not uv")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="*", default=STACK_ENVS, help=f"stack environments (default: {' '.join(STACK_ENVS)})")
    p.add_argument("--no-orchestrator", action="store_true", help="leave the orchestrator environment out")
    p.add_argument("--study-seconds", type=float, default=None,
                   help="a default study's wall time, for the fresh-clone estimate (README: 747-752 s on 2 cores)")
    p.add_argument("--run-study", action="store_true", help="measure the default study (benchmarks/study.py)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = p.parse_args()
    if not venv.find_uv():
        print("uv not found: run bash envs/setup.sh (it installs uv into .venv)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="dlrosetta-envs-bench-"))
    log_path = work / "build.log"
    os.environ["PIP_CACHE_DIR"] = str(work / "pip-cache")
    os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")
    r = shutil.which("R") is not None
    orchestrator_specs = [work / "orchestrator-without-uv.txt"] + ([REPO / "envs" / "rpy2.txt"] if r else [])
    orchestrator_specs[0].write_text("".join(line for line in (REPO / "envs" / "orchestrator.txt").open()
                                             if not line.startswith("uv==")))
    orchestrator_locks = [REPO / "envs" / "orchestrator.lock"] + ([REPO / "envs" / "rpy2.lock"] if r else [])
    names = ([] if a.no_orchestrator else ["orchestrator" + (" + rpy2" if r else "")]) + list(a.envs)
    times = {"pip": {}, "uv": {}, "uv, warm cache": {}}
    print(f"building in {work} (log: {log_path}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with open(log_path, "w") as log:
        for way in times:
            print(f"{way}:", flush=True)
            venvs = work / way.replace(", ", "-").replace(" ", "-")
            for name in names:
                env_dir = venvs / name.split()[0]
                if name.startswith("orchestrator"):
                    if way == "pip":
                        build = lambda: pip_from_spec(env_dir, orchestrator_specs, log)  # noqa: E731
                    else:
                        build = lambda: uv_orchestrator(env_dir, orchestrator_locks, log)  # noqa: E731
                elif way == "pip":
                    build = lambda: pip_from_spec(env_dir, [REPO / "envs" / f"{name}.txt"], log)  # noqa: E731
                else:
                    build = lambda: uv_stack_env(name, env_dir, log)  # noqa: E731
                times[way][name] = timed(name, build, log)
            shutil.rmtree(venvs, ignore_errors=True)  # GBs; the uv cache stays for the warm run
    print(f"load average after: {os.getloadavg()[0]:.1f}")

    print(f"\n{'environment':24} {'pip (.txt)':>11} {'uv (.lock)':>11} {'speed-up':>9} {'uv, warm':>9}")
    for name in names:
        pip_s, uv_s, warm_s = (times[w][name] for w in times)
        print(f"{name:24} {pip_s:9.1f} s {uv_s:9.1f} s {pip_s / uv_s:8.1f}x {warm_s:7.1f} s")
    totals = {w: sum(t.values()) for w, t in times.items()}
    print(f"{'total':24} {totals['pip']:9.1f} s {totals['uv']:9.1f} s {totals['pip'] / totals['uv']:8.1f}x "
          f"{totals['uv, warm cache']:7.1f} s   (target: at least 2x)")

    study = a.study_seconds
    if a.run_study:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from study import run_study  # noqa: E402
        study = run_study(None, "envs-bench")[1]
    if study:
        print(f"\nfresh clone to a finished default study (environments + a {study:.0f} s study):")
        for way in ("pip", "uv"):
            print(f"  {way:4} {totals[way] + study:8.1f} s = {(totals[way] + study) / 60:5.1f} min")
        print(f"  saved: {totals['pip'] - totals['uv']:.0f} s")
    if a.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
