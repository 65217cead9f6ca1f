"""The launcher always leaves one valid record: ok, skipped (runtime missing) or failed;
it builds the record from the stack's raw measurements; and it ends the stack's whole
process group on a timeout, a signal or its parent's death, writing nothing then."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dlrosetta.launch import Interrupted, launch, resolve_command, run_group, RuntimeMissing
from dlrosetta.record import Record
from dlrosetta.registry import REPO, STACKS, Stack
from dlrosetta.threads import thread_env

OK_MEASUREMENTS = dict(language_version="3", framework_version="0", device="cpu", parameter_count=1,
                       epoch_seconds=[3.0, 1.0, 2.0], train_loss_per_epoch=[1.5, 1.0, 0.5],
                       test_accuracy_per_epoch=[0.25, 0.5, 0.625], eval_seconds_per_epoch=[0.3, 0.1, 0.2],
                       startup_seconds=0.1, peak_rss_mb=1.0)


def writes_measurements(**changes) -> str:
    """A stand-in stack (this interpreter runs it with the run spec path as argv[1]) that
    writes OK_MEASUREMENTS with `changes`; its kernel notes are the OMP_NUM_THREADS it got."""
    return f"""
import os, sys
from dlrosetta.measurements import write_measurements
from dlrosetta.runspec import RunSpec
spec = RunSpec.read(sys.argv[1])
write_measurements(spec.measurements, "ok", spec.stack, spec.model, spec.dataset,
                   kernel_notes=os.environ["OMP_NUM_THREADS"], **{ {**OK_MEASUREMENTS, **changes}!r})
"""

# A stack that, like julia-native, runs its work in a child process; the child writes
# its pid, then (if still alive after `delay` seconds) a file saying it outlived us.
SPAWNS_A_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(float(sys.argv[3]));"
    "open(sys.argv[2], 'w').write('outlived')", "{pid}", "{late}", "{delay}"])
child.wait()
"""


def fake_stack(code: str, runtime: str = sys.executable) -> Stack:
    return Stack(id="fake", language="python", framework="fake", backend=None, description="a test stand-in",
                 env=None, runtime=runtime, entry=("-c", code), folder=REPO / "tests", manifest=REPO / "tests")


def alive(pid: int, settle_s: float = 3.0) -> bool:
    """Whether the process still runs after a signal had `settle_s` to act (a zombie
    has exited; only its reaping is pending)."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def wait_for(path: Path, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def run(tiny_run, tmp_path, stack, **kw):
    spec = tiny_run("resnet", stack="fake", threads=3)
    record = launch(spec, tmp_path / "out" / "fake.json", tmp_path / "run", tmp_path / "fake.log",
                    tmp_path / "venvs", stack=stack, **kw)
    assert Record.read(tmp_path / "out" / "fake.json") == record
    return record


def test_record_is_derived_from_raw_measurements(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack(writes_measurements()))
    assert r.status == "ok" and r.threads == 3 and r.run_seconds > 0
    assert r.kernel_notes == "3"  # the thread variables reached the stack
    assert r.epoch_seconds == (3.0, 1.0, 2.0) and r.warmup_epoch_seconds == 3.0
    assert r.steady_epoch_seconds == 1.5
    assert r.train_samples_per_epoch == 48 and r.steady_samples_per_second == 32.0
    assert r.final_train_loss == 0.5
    # Accuracy after every epoch; the record's accuracy and evaluation time are the last epoch's.
    assert r.test_accuracy_per_epoch == (0.25, 0.5, 0.625)
    assert r.test_accuracy == 0.625 and r.eval_seconds == 0.2
    assert r.shards_sha256 and r.initial_weights_sha256 and len(r.stack_code_sha256) == 64 and r.host_cpu
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["stack"] == "fake" and Path(spec["shards"]).is_absolute() and spec["spec_version"] == 3


@pytest.mark.parametrize("series", ["train_loss_per_epoch", "test_accuracy_per_epoch", "eval_seconds_per_epoch"])
def test_a_per_epoch_series_of_the_wrong_length_is_failed(tiny_run, tmp_path, series):
    r = run(tiny_run, tmp_path, fake_stack(writes_measurements(**{series: OK_MEASUREMENTS[series][:2]})))
    assert r.status == "failed" and "invalid measurements" in r.reason
    assert f"{series} has 2 values for 3 epochs" in r.reason


def test_crash_becomes_failed_with_the_error_tail(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("raise RuntimeError('out of cheese')"))
    assert r.status == "failed" and "exit code 1" in r.reason and "out of cheese" in r.reason
    assert r.stack == "fake" and r.model == "resnet" and r.run_seconds is not None


def test_exit_zero_without_measurements_is_failed(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("pass"))
    assert r.status == "failed" and "without writing its measurements" in r.reason


@pytest.mark.parametrize("doc, fragment", [
    ({"status": "ok"}, "'measurements_version' is a required property"),
    ({"measurements_version": 2, "status": "ok", "stack": "fake", "model": "resnet", "dataset": "tiny-resnet",
      "steady_epoch_seconds": 1.0}, "'steady_epoch_seconds' was unexpected"),
    ({"measurements_version": 1, "status": "skipped", "stack": "fake", "model": "resnet",
      "dataset": "tiny-resnet", "reason": "x"}, "2 was expected"),  # version 1 had no per-epoch accuracy
    ({"measurements_version": 2, "status": "skipped", "stack": "other", "model": "resnet",
      "dataset": "tiny-resnet", "reason": "x"}, "measurements are for other/tiny-resnet/resnet"),
])
def test_invalid_measurements_are_failed(tiny_run, tmp_path, doc, fragment):
    code = "import sys, json; from dlrosetta.runspec import RunSpec; " \
           f"open(RunSpec.read(sys.argv[1]).measurements, 'w').write(json.dumps({doc!r}))"
    r = run(tiny_run, tmp_path, fake_stack(code))
    assert r.status == "failed" and "invalid measurements" in r.reason and fragment in r.reason


def test_stack_reported_skip_keeps_its_reason(tiny_run, tmp_path):
    code = "import sys; from dlrosetta.measurements import write_measurements; " \
           "from dlrosetta.runspec import RunSpec; s = RunSpec.read(sys.argv[1]); " \
           "write_measurements(s.measurements, 'skipped', s.stack, s.model, s.dataset, 'no torch here')"
    r = run(tiny_run, tmp_path, fake_stack(code))
    assert r.status == "skipped" and r.reason == "no torch here"


def test_timeout_ends_the_stacks_children_too(tiny_run, tmp_path):
    pid, late = tmp_path / "child.pid", tmp_path / "late"
    code = SPAWNS_A_CHILD.format(pid=pid, late=late, delay=3)
    r = run(tiny_run, tmp_path, fake_stack(code), timeout_s=1)
    assert r.status == "failed" and "timed out after 1 s" in r.reason
    assert not alive(int(pid.read_text()))
    time.sleep(3)
    assert not late.exists()


def test_a_signal_ends_the_group_and_writes_no_record(tmp_path):
    pid, late = tmp_path / "child.pid", tmp_path / "late"
    code = SPAWNS_A_CHILD.format(pid=pid, late=late, delay=3)
    killer = threading.Thread(target=lambda: (wait_for(pid), os.kill(os.getpid(), signal.SIGTERM)))
    killer.start()
    with open(tmp_path / "log", "w") as log, pytest.raises(Interrupted, match="signal 15"):
        run_group([sys.executable, "-c", code], os.environ, log, timeout_s=None)
    killer.join()
    assert not alive(int(pid.read_text()))
    time.sleep(3)
    assert not late.exists()


def test_the_parents_death_ends_the_launcher_and_the_stack(tmp_path):
    """SIGKILL of the launcher's parent (Snakemake, which execs the launcher) reaches the
    stack's re-executed child through PR_SET_PDEATHSIG and the process group."""
    pid, late = tmp_path / "child.pid", tmp_path / "late"
    stack = SPAWNS_A_CHILD.format(pid=pid, late=late, delay=4)
    launcher = ("import os, sys; from dlrosetta.launch import die_with_parent, run_group; die_with_parent(); "
                f"run_group([sys.executable, '-c', {stack!r}], os.environ, sys.stderr, None)")
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                               f"subprocess.run([sys.executable, '-c', {launcher!r}])"],
                              env={**os.environ, "PYTHONPATH": str(REPO / "python")})
    wait_for(pid)
    parent.kill()
    parent.wait()
    assert not alive(int(pid.read_text()))
    time.sleep(4.5)
    assert not late.exists()


def test_missing_runtime_is_skipped_naming_it(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("pass", runtime="no-such-interpreter-xyz"))
    assert r.status == "skipped" and "no-such-interpreter-xyz not found on PATH" in r.reason
    assert r.env_lock_sha256 is None  # a stack without a Python environment


def test_the_record_names_the_lock_of_the_stacks_environment(tiny_run, tmp_path):
    """From the environment's manifest, whatever the run's outcome (here: skipped, for
    want of its runtime, though its environment is built)."""
    (tmp_path / "venvs" / "fakeenv").mkdir(parents=True)
    (tmp_path / "venvs" / "fakeenv" / "dlrosetta-env.json").write_text(
        json.dumps({"env": "fakeenv", "status": "ok", "lock_sha256": "c" * 64}))
    stack = dataclasses.replace(fake_stack("pass", runtime="no-such-interpreter-xyz"), language="r", env="fakeenv")
    r = run(tiny_run, tmp_path, stack)
    assert r.status == "skipped" and r.env_lock_sha256 == "c" * 64


@pytest.mark.parametrize("stack", [s for s in STACKS.values() if s.env], ids=lambda s: s.id)
def test_unbuilt_and_unavailable_environments_are_skipped(tmp_path, stack):
    with pytest.raises(RuntimeMissing, match=f"environment '{stack.env}' is not built"):
        resolve_command(stack, tmp_path)
    (tmp_path / stack.env).mkdir()
    (tmp_path / stack.env / "dlrosetta-env.json").write_text(
        json.dumps({"env": stack.env, "status": "unavailable", "reason": "no wheel for this platform"}))
    with pytest.raises(RuntimeMissing, match="no wheel for this platform"):
        resolve_command(stack, tmp_path)


@pytest.mark.parametrize("stack", [s for s in STACKS.values() if s.runtime != "python"], ids=lambda s: s.id)
def test_stack_is_skipped_when_its_runtime_is_not_on_path(tmp_path, monkeypatch, stack):
    if stack.env:
        (tmp_path / stack.env).mkdir()
        (tmp_path / stack.env / "dlrosetta-env.json").write_text(json.dumps({"env": stack.env, "status": "ok"}))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeMissing, match=f"{stack.runtime} not found on PATH: the {stack.language} runtime"):
        resolve_command(stack, tmp_path)


def test_thread_env_covers_every_pool():
    env = thread_env(3)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS", "JULIA_NUM_THREADS"):
        assert env[var] == "3"
