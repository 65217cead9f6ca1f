"""`dlrosetta status` and the epoch line it reads: one line per epoch in every language
(the same example as r/tests/testthat/test-train.R and julia/stacks/julia-native/test/runtests.jl),
runs classified from their records, logs and launchers, the time left from the records
so far, and a real launcher seen running with its last epoch line."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlrosetta.order import write_epoch_order
from dlrosetta.inference import NATIVE, InferenceRecord, batch_fields
from dlrosetta.record import Record
from dlrosetta.registry import REPO, STACKS
from dlrosetta.stacks.train import Trainer, epoch_line, run
from dlrosetta.status import EPOCH_LINE, InferenceJob, collect, records_outside, render, run_id
from dlrosetta.study import Run

GOLDEN = "[s] epoch 3/4: 2.00 s, loss 1.2346, 50 samples/s, test accuracy 0.5000, run time left ~2 s"


def test_the_epoch_line_has_one_format():
    # 1 epoch left x (mean epoch 1.5 s + mean evaluation 0.5 s, over epochs 2-3); 100 samples in 2 s.
    assert epoch_line("s", 4, [3.0, 1.0, 2.0], [0.5, 0.25, 0.75], 1.23456, 0.5, 100) == GOLDEN
    # After the first epoch, the first is all there is: 2 epochs x (2 s + 0.5 s).
    assert epoch_line("s", 3, [2.0], [0.5], 0.7, 0.25, 64) == (
        "[s] epoch 1/3: 2.00 s, loss 0.7000, 32 samples/s, test accuracy 0.2500, run time left ~5 s")
    m = EPOCH_LINE.search(GOLDEN)
    assert (m["stack"], m["epoch"], m["epochs"], m["seconds"], m["rate"], m["left"]) == ("s", "3", "4", "2.00", "50", "2")


class Sleepy(Trainer):
    """A stand-in framework: each epoch sleeps, so its samples/s is known."""
    framework = "sleep"

    def framework_version(self) -> str:
        return "0"

    def device_name(self) -> str:
        return "cpu"

    def set_data(self, shards) -> None:
        pass

    def parameter_count(self) -> int:
        return 1

    def train_epoch(self, batches) -> float:
        time.sleep(0.05)
        return 0.5

    def evaluate(self) -> float:
        return 0.25


def test_the_shared_python_loop_prints_the_line_after_every_epoch(tiny_run, capsys):
    spec = tiny_run("resnet", stack="stand-in")
    run(spec, Sleepy)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "epoch" in ln]
    matches = [EPOCH_LINE.fullmatch(ln) for ln in lines]
    assert len(lines) == spec.epochs == 2 and all(matches), lines
    assert [m["stack"] for m in matches] == ["stand-in", "stand-in"]
    assert (matches[0]["loss"], matches[0]["accuracy"]) == ("0.5000", "0.2500")
    samples = 48 // spec.batch_size * spec.batch_size
    assert all(0 < float(m["rate"]) <= samples / 0.05 for m in matches)
    assert matches[-1]["left"] == "0"


# -- classification and time left, from a results tree built here --------------------------
def write_record(results: Path, r: Run, status="ok", run_seconds=10.0, reason=None, threads=None, mtime=None):
    path = results / "records" / f"{run_id(r)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    Record(status=status, reason=reason, stack=r.stack, language="python", framework="f", backend=None,
           model=r.model, dataset=r.dataset, hyperparameters={"model": {}, "training": {}},
           threads=threads or r.threads, seed=0, device="cpu", repeat=r.repeat, run_seconds=run_seconds).write(path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def write_log(results: Path, r: Run, lines: list[str], mtime: float) -> Path:
    path = results / "logs" / "train" / f"{run_id(r)}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["$ python -m stack spec.json", *lines]) + "\n")
    os.utime(path, (mtime, mtime))
    return path


def test_runs_are_classified_and_the_time_left_adds_up(tmp_path):
    results, now = tmp_path / "results", time.time()
    runs = [Run("d", "resnet", s, 1, k) for s in ("a", "b", "c") for k in (1, 2, 3)]
    a1, a2, a3, b1, b2, b3, c1, c2, c3 = runs
    write_record(results, a1, run_seconds=10.0, mtime=now - 100)
    write_record(results, a2, run_seconds=14.0, mtime=now - 50)
    line = "[a] epoch 2/4: 3.00 s, loss 1.0000, 700 samples/s, test accuracy 0.5000, run time left ~30 s"
    write_log(results, a3, ["[a] epoch 1/4: 5.00 s, loss 2.0000, 400 samples/s, test accuracy 0.2000, "
                            "run time left ~24 s", line], mtime=now - 10)
    write_record(results, b1, "failed", None, "exit code 1; log tail:\n$ python -m stack\nValueError: boom")
    write_record(results, b2, "skipped", None, "R not found on PATH")
    write_log(results, b3, ["[b] epoch 1/4: 1.00 s, loss 2.0000, 400 samples/s, test accuracy 0.2000, "
                            "run time left ~3 s"], mtime=now - 7200)  # an interrupted run
    write_record(results, c2, threads=9)  # a record of another configuration
    live = {os.path.realpath(results / "records" / f"{run_id(c3)}.json")}  # a launcher, before its first line

    states = collect(runs, results, {r: {"threads": r.threads} for r in runs}, now=now, live=live)
    by_run = {s.run: s for s in states}
    assert [by_run[r].state for r in runs] == ["done", "done", "running", "failed", "skipped", "waiting",
                                               "waiting", "waiting", "running"]
    assert by_run[a3].epoch_line == line and by_run[a3].seconds_left == pytest.approx(20, abs=0.01)
    assert by_run[b1].detail == "ValueError: boom" and by_run[b2].detail == "R not found on PATH"
    assert "interrupted: its log was last written 2 h 00 min ago" in by_run[b3].detail
    assert by_run[b3].seconds_left == 0  # b's finished run was skipped, in no time
    assert "another configuration (threads)" in by_run[c2].detail
    # c has no finished run: the median of the model's ok runs (10 s and 14 s).
    assert by_run[c1].seconds_left == by_run[c2].seconds_left == by_run[c3].seconds_left == 12
    assert by_run[c1].detail == "~12 s (median of 2 runs)"

    text = render(states, results, "test config", now=now)
    assert "9 runs: 2 done, 2 running, 3 waiting, 1 skipped, 1 failed" in text
    assert f"running  d/resnet/a/threads1/repeat3  ~20 s left\n{'':<11}{line}\n" in text
    assert "(no epoch finished yet)" in text
    assert "time left: ~56 s (5 runs to finish" in text  # 20 + 0 + 12 + 12 + 12


def test_a_log_newer_than_its_record_is_a_rerun_and_older_one_is_done(tmp_path):
    results, now = tmp_path / "results", time.time()
    rerun, finished = Run("d", "lstm", "a", 2, 1), Run("d", "lstm", "a", 2, 2)
    write_record(results, rerun, mtime=now - 600)
    write_log(results, rerun, [], mtime=now - 5)
    write_log(results, finished, [], mtime=now - 600)
    write_record(results, finished, run_seconds=8.0, mtime=now - 599)
    states = collect([rerun, finished], results, now=now, live=set())
    assert [s.state for s in states] == ["running", "done"]
    assert states[0].seconds_left == 8 and states[1].detail == "8.0 s"


def test_a_run_outside_the_plan_is_shown_when_running(tmp_path):
    results, now = tmp_path / "results", time.time()
    planned, other = Run("d", "lstm", "a", 1, 1), Run("e", "lstm", "a", 1, 1)
    write_log(results, other, ["[a] epoch 1/2: 1.00 s, loss 0.5000, 9 samples/s, test accuracy 0.5000, "
                               "run time left ~4 s"], mtime=now - 1)
    write_record(results, Run("e", "lstm", "a", 1, 2))
    states = collect([planned], results, now=now, live=set())
    assert [(s.run, s.state, s.in_plan) for s in states] == [(planned, "waiting", True), (other, "running", False)]
    assert "not in this plan" in states[1].detail
    text = render(states, results, "x", now=now, outside_records=records_outside([planned], results))
    assert "1 run: 0 done, 0 running, 1 waiting" in text and "note: 1 record under" in text


def write_inference(path: Path, job: InferenceJob, stack: str, engine: str, status="ok", run_seconds=10.0,
                    reason=None, threads=None, mtime=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    InferenceRecord(status=status, reason=reason, stack=stack, language="python", framework="f", backend=None,
                    model=job.model, dataset=job.dataset, threads=threads or job.threads, device="cpu", engine=engine,
                    repeat=job.repeat, runtime=engine, run_seconds=run_seconds,
                    batches=batch_fields([{"batch_size": 1, "warmup_calls": 1, "call_seconds": [0.01, 0.02]}])
                    if status == "ok" else None).write(path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_inference_jobs_are_classified_and_estimated_apart_from_training(tmp_path):
    """Native runs and the ONNX runtimes' jobs, from their records and logs; a native
    repeat 1 (it also cross-evaluates and exports) is estimated from repeat-1 runs."""
    results, now = tmp_path / "results", time.time()
    jobs = [InferenceJob("d", "lstm", k, 2, s) for k in (1, 2) for s in ("a", "b", "c")]
    jobs += [InferenceJob("d", "lstm", k, 2) for k in (1, 2)]
    a1, b1, c1, a2, b2, c2, onnx1, onnx2 = jobs
    engines = ["onnxruntime", "openvino"]
    write_inference(a1.records(results, engines, [])[0], a1, "a", NATIVE, run_seconds=30.0)
    write_inference(a2.records(results, engines, [])[0], a2, "a", NATIVE, run_seconds=4.0)
    write_inference(c1.records(results, engines, [])[0], c1, "c", NATIVE, "skipped", 1.0, "R not found on PATH")
    write_inference(c2.records(results, engines, [])[0], c2, "c", NATIVE, threads=1)  # another configuration
    b1.log(results).parent.mkdir(parents=True)
    b1.log(results).write_text("$ python -m stack spec.json\n")
    b1.spec(results).parent.mkdir(parents=True)
    b1.spec(results).write_text("{}")
    os.utime(b1.spec(results), (now - 10, now - 10))
    # The ONNX job of repeat 1: one runtime's process ran a's export and skipped the rest.
    for path in onnx1.records(results, engines, ["a", "b", "c"]):
        stack, engine = path.parent.name, path.parent.parent.name
        write_inference(path, onnx1, stack, engine, "ok" if stack == "a" else "skipped",
                        12.0 if engine == "onnxruntime" else 8.0, None if stack == "a" else f"{stack} exported no ONNX")

    states = collect([], results, now=now, live=set(), jobs=jobs, engines=engines)
    by = {s.job: s for s in states}
    assert [by[j].state for j in jobs] == ["done", "running", "skipped", "done", "waiting", "waiting",
                                           "done", "waiting"]
    assert by[a1].detail == "30.0 s" and by[c1].detail == "R not found on PATH"
    assert "another configuration (threads)" in by[c2].detail
    assert by[onnx1].detail == "20.0 s; 6 records: 2 ok, 4 skipped"
    assert by[b1].elapsed == pytest.approx(10, abs=1) and by[b1].seconds_left == pytest.approx(20, abs=1)
    assert by[b2].seconds_left == by[c2].seconds_left == 4  # the later repeats' median, not repeat 1's
    assert by[onnx2].seconds_left == 20

    text = render(states, results, "test config", now=now)
    assert "0 runs: 0 done" in text and "8 inference jobs: 3 done, 1 running, 3 waiting, 1 skipped, 0 failed" in text
    assert "running  d/lstm/native/b/repeat1" in text and "waiting  d/lstm/onnx/repeat2" in text
    assert "(1 inference job" not in text and "(4 inference jobs to finish" in text


# -- the command ---------------------------------------------------------------------------
def dlrosetta(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlrosetta.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "python")}, timeout=120)


def test_the_command_plans_as_snakemake_merges_the_config(tmp_path):
    stack = next(iter(STACKS))
    out = dlrosetta("status", "--results", str(tmp_path / "results"), "--configfile",
                    str(REPO / "config" / "smoke.yaml"), "--config", f"stacks=[{stack}]", "threads=[1,2]",
                    "repeats=2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "8 runs: 0 done, 0 running, 8 waiting, 0 skipped, 0 failed" in out.stdout  # 2 models x 2 threads x 2
    # Per model: the stack's native inference run and the ONNX runtimes' job (smoke: 1 repeat).
    assert "4 inference jobs: 0 done, 0 running, 4 waiting" in out.stdout
    assert f"smoke-imdb/lstm/native/{stack}/repeat1" in out.stdout and "smoke-cifar/resnet/onnx/repeat1" in out.stdout
    assert f"smoke-imdb/lstm/{stack}/threads2/repeat2" in out.stdout
    bad = dlrosetta("status", "--config", "repeats=0", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid config: repeats" in bad.stderr


# -- a real launcher, seen while it runs ------------------------------------------------------
SLEEPY_STACK = """
import sys, time
from dlrosetta.runspec import RunSpec
from dlrosetta.stacks.train import Trainer, run
class Sleepy(Trainer):
    framework = "sleep"
    framework_version = device_name = lambda self: "0"
    set_data = lambda self, shards: None
    parameter_count = lambda self: 1
    train_epoch = lambda self, batches: (time.sleep(0.3), 0.5)[1]
    evaluate = lambda self: 0.25
run(RunSpec.read(sys.argv[1]), Sleepy)
"""
# Its command line names its record as the train rule's does (`launch ... --record PATH`).
LAUNCHER = """
import sys
from pathlib import Path
from dlrosetta.launch import launch
from dlrosetta.registry import REPO, Stack
from dlrosetta.runspec import RunSpec
a = dict(zip(sys.argv[2::2], sys.argv[3::2]))
stack = Stack(id="fake", language="python", framework="sleep", backend=None, description="a test stand-in",
              env=None, runtime=sys.executable, entry=("-c", a["--code"]), folder=REPO / "tests",
              manifest=REPO / "tests")
launch(RunSpec.read(a["--spec"]), Path(a["--record"]), Path(a["--work"]), Path(a["--log"]), stack=stack, repeat=1)
"""


def test_a_running_launcher_is_shown_with_its_last_epoch_line(tiny_run, tmp_path):
    results, r = tmp_path / "results", Run("tiny-lstm", "lstm", "fake", 1, 1)
    order = tmp_path / "order5.npy"
    write_epoch_order(order, 48, 5, seed=1)
    spec = tiny_run("lstm", stack="fake", order=str(order), training={**tiny_run("lstm").training, "epochs": 5},
                    measurements=str(results / "runs" / run_id(r) / "measurements.json"))
    work = Path(spec.measurements).parent
    work.mkdir(parents=True)
    spec.write(tmp_path / "spec.json")
    record, log = results / "records" / f"{run_id(r)}.json", results / "logs" / "train" / f"{run_id(r)}.log"
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, "launch", "--record", str(record), "--log", str(log),
                             "--spec", str(tmp_path / "spec.json"), "--work", str(work),
                             "--code", SLEEPY_STACK],
                            env={**os.environ, "PYTHONPATH": str(REPO / "python")}, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            (state,) = collect([r], results)
            if state.epoch_line or proc.poll() is not None:
                break
            assert time.monotonic() < deadline, "no epoch line within a minute"
            time.sleep(0.05)
        assert state.state == "running", (state, log.read_text() if log.exists() else "no log")
        assert EPOCH_LINE.fullmatch(state.epoch_line) and state.epoch_line.startswith("[fake] epoch ")
        assert "left" in state.detail and state.seconds_left is not None
        text = render([state], results, "test")
        assert "1 run: 0 done, 1 running" in text and state.epoch_line in text
        print(text)
    finally:
        proc.wait(timeout=60)
    (state,) = collect([r], results)
    assert state.state == "done" and state.record.epoch_seconds and len(state.record.epoch_seconds) == 5
