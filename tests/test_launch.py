"""The launcher always leaves one valid record: ok, skipped (runtime missing) or failed."""
import json
import sys
from pathlib import Path

import pytest

from dlrosetta.launch import launch, resolve_command, RuntimeMissing
from dlrosetta.record import Record
from dlrosetta.registry import STACKS, Stack
from dlrosetta.threads import thread_env

# A stand-in stack: this interpreter runs a snippet with the run spec path as argv[1].
WRITE_OK_RECORD = """
import json, sys
from dlrosetta.record import Record
from dlrosetta.runspec import RunSpec
spec = RunSpec.read(sys.argv[1])
import os
Record(status="ok", stack=spec.stack, language="python", framework="fake", backend=None,
       model=spec.model, dataset=spec.dataset, hyperparameters=spec.hyperparameters,
       threads=int(os.environ["OMP_NUM_THREADS"]), seed=spec.seed, device="cpu",
       language_version="3", framework_version="0", shards_sha256="b" * 64, parameter_count=1,
       train_loss_per_epoch=[1.0, 1.0], final_train_loss=1.0, test_accuracy=0.5, eval_seconds=0.1,
       startup_seconds=0.1, peak_rss_mb=1.0,
       **Record.timing_fields([1.0, 1.0], 32)).write(spec.record)
"""


def fake_stack(code: str, runtime: str = sys.executable) -> Stack:
    return Stack("fake", "python", "fake", None, None, runtime, ("-c", code))


def run(tiny_run, tmp_path, stack, **kw):
    spec = tiny_run("resnet", stack="fake", threads=3)
    record = launch(spec, tmp_path / "out" / "fake.json", tmp_path / "run", tmp_path / "fake.log",
                    tmp_path / "venvs", stack=stack, **kw)
    assert Record.read(tmp_path / "out" / "fake.json") == record
    return record


def test_ok_record_gets_run_seconds_and_threads_reach_the_stack(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack(WRITE_OK_RECORD))
    assert r.status == "ok" and r.threads == 3 and r.run_seconds > 0
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["stack"] == "fake" and Path(spec["shards"]).is_absolute()


def test_crash_becomes_failed_with_the_error_tail(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("raise RuntimeError('out of cheese')"))
    assert r.status == "failed" and "exit code 1" in r.reason and "out of cheese" in r.reason
    assert r.stack == "fake" and r.model == "resnet" and r.run_seconds is not None


def test_exit_zero_without_record_is_failed(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("pass"))
    assert r.status == "failed" and "without writing its record" in r.reason


def test_invalid_record_is_failed(tiny_run, tmp_path):
    code = "import sys, json; from dlrosetta.runspec import RunSpec; " \
           "open(RunSpec.read(sys.argv[1]).record, 'w').write(json.dumps({'status': 'ok'}))"
    r = run(tiny_run, tmp_path, fake_stack(code))
    assert r.status == "failed" and "invalid record" in r.reason


def test_timeout_is_failed(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("import time; time.sleep(30)"), timeout_s=1)
    assert r.status == "failed" and "timed out after 1 s" in r.reason


def test_missing_runtime_is_skipped_naming_it(tiny_run, tmp_path):
    r = run(tiny_run, tmp_path, fake_stack("pass", runtime="no-such-interpreter-xyz"))
    assert r.status == "skipped" and "no-such-interpreter-xyz not found on PATH" in r.reason


def test_unbuilt_and_unavailable_environments_are_skipped(tmp_path):
    stack = STACKS["pytorch"]
    with pytest.raises(RuntimeMissing, match="environment 'torch' is not built"):
        resolve_command(stack, tmp_path)
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "dlrosetta-env.json").write_text(
        json.dumps({"env": "torch", "status": "unavailable", "reason": "no wheel for this platform"}))
    with pytest.raises(RuntimeMissing, match="no wheel for this platform"):
        resolve_command(stack, tmp_path)


def test_r_stack_is_skipped_when_r_is_not_on_path(tmp_path, monkeypatch):
    (tmp_path / "r-keras").mkdir()
    (tmp_path / "r-keras" / "dlrosetta-env.json").write_text(json.dumps({"env": "r-keras", "status": "ok"}))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeMissing, match="Rscript not found on PATH: the r runtime"):
        resolve_command(STACKS["r-keras"], tmp_path)
    with pytest.raises(RuntimeMissing, match="julia not found on PATH"):
        resolve_command(STACKS["julia-native"], tmp_path)


def test_thread_env_covers_every_pool():
    env = thread_env(3)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS", "JULIA_NUM_THREADS"):
        assert env[var] == "3"
