"""`dlrosetta status`: where a study stands while it runs, and how long it has left.

Read-only: it looks at the study's plan, the records and the stacks' logs, writes
nothing, and can run beside Snakemake at any moment (README.md, "Follow a running study").

- The plan is `Study(config)` with the config Snakemake would use: config/config.yaml,
  then every `--configfile` in order, then `--config key=value` (parsed as Snakemake
  parses them). The workflow itself writes no plan file: a dry run must leave results/
  untouched, and the plan is cheap to rebuild here.
- A run is **done**, **skipped** or **failed** when its record says so and belongs to
  the study as configured now (the aggregation's plan check: threads, hyperparameters,
  seed, stack code, shards); a record of another configuration, or one whose schema
  cannot be read, is **waiting** (the next `snakemake` makes it again).
- A run is **running** when a launcher for its record is alive on this machine, or (a
  cluster node, where no process is visible) when its log is newer than its record, or
  has none, and was written within the staleness limit. A log that stopped earlier is an
  interrupted run: **waiting**. The running run's last epoch line
  (docs/stack-contract.md, "The epoch line") is shown under it.
- Inference (rules/inference.smk) is listed after training, a line per process: each
  stack's native inference run (`<data set>/<model>/native/<stack>/repeat<R>`) and the
  ONNX runtimes' run over every export of a (data set, model, repeat)
  (`<data set>/<model>/onnx/repeat<R>`), in the same states, from their records and logs.
- Time left: each waiting run is estimated by the median `run_seconds` of the finished
  runs (ok or skipped) of its (data set, model, stack), or else of its (data set, model);
  a running run by its last epoch line's `run time left`, less the seconds since it was
  written. An inference job likewise, from the finished jobs of its stack (or of the ONNX
  runtimes), else of its (data set, model); repeat 1, which also cross-evaluates and
  exports, apart from the others. The stack processes only: Snakemake, the GEMM probes
  around each run, aggregation and the report add a few per cent.
"""
from __future__ import annotations

import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import yaml

from dlrosetta.inference import NATIVE, InferenceRecord
from dlrosetta.record import Record, RecordError
from dlrosetta.registry import REPO
from dlrosetta.study import Run, Study

#: One line per epoch, the same in every language (docs/stack-contract.md).
EPOCH_LINE = re.compile(
    r"\[(?P<stack>[^\]\s]+)\] epoch (?P<epoch>\d+)/(?P<epochs>\d+): (?P<seconds>\S+) s, loss (?P<loss>\S+), "
    r"(?P<rate>\S+) samples/s, test accuracy (?P<accuracy>\S+), run time left ~(?P<left>\d+) s$")
STATES = ("done", "running", "waiting", "skipped", "failed")
#: The aggregation's plan check (dlrosetta.aggregate.EXPECTED_FIELDS), in words.
FIELD_NAMES = {"stack_code_sha256": "stack code", "shards_sha256": "data shards"}
STALE_MINUTES = 30.0
TAIL_BYTES = 65536


# -- the plan: the config as Snakemake merges it -------------------------------------------
def _merge(base: dict, override: dict) -> dict:
    """Snakemake's update_config: mappings are merged key by key, anything else replaced."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _config_value(text: str):
    """A `--config` value, parsed as Snakemake parses it: int, float, True/False, YAML
    (base loader: every scalar a string), else the string."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    try:
        return yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return text


def load_config(configfiles: Sequence[os.PathLike] = (), config_args: Sequence[str] = ()) -> dict:
    """config/config.yaml, each configfile over it, then `key=value` overrides; checked
    against schemas/config.schema.yaml as the workflow checks it (rules/common.smk)."""
    import jsonschema

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for path in configfiles:
        _merge(config, yaml.safe_load(Path(path).read_text()) or {})
    for entry in config_args:
        key, sep, value = entry.partition("=")
        if not sep or not re.fullmatch(r"[a-zA-Z_][\w-]*\w", key):
            raise ValueError(f"--config {entry!r}: expected key=value")
        _merge(config, {key: None if value == "" else _config_value(value)})
    if isinstance(config.get("threads"), list):  # as rules/common.smk: [1,2] arrives as strings
        config["threads"] = [int(t) if isinstance(t, str) and t.isdigit() else t for t in config["threads"]]
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(config))
    if error is not None:
        raise ValueError(f"invalid config: {'.'.join(map(str, error.path)) or '<config>'}: {error.message}")
    return config


def run_id(run: Run) -> str:
    """The part of a run's paths that names it (as rules/common.smk's run_id)."""
    return f"{run.dataset}/{run.model}/{run.stack}/threads{run.threads}/repeat{run.repeat}"


def expected_fields(study: Study, results: Path) -> dict[Run, dict]:
    """What each run's record must match to belong to the study: the aggregation's plan
    check (rules/report.smk, dlrosetta.aggregate.expected_fields)."""
    from dlrosetta.aggregate import expected_fields as fields_of
    from dlrosetta.registry import get_stack

    code = {s: get_stack(s).code_sha256() for s in study.stacks()}
    plan = {run: {**study.run_parameters(run), "shards": str(results / "shards" / run.dataset / "manifest.json"),
                  "stack_code_sha256": code[run.stack]} for run in study.runs()}
    by_key = fields_of({run_id(run): p for run, p in plan.items()})
    return {run: by_key[run_id(run)] for run in plan}


# -- what the disk and the process table say ---------------------------------------------
def live_launchers() -> set[str]:
    """Real paths of the records and logs that a launcher alive on this machine is
    writing: the `--record` and `--log` of a `dlrosetta launch` (training, profile or
    native inference) or `dlrosetta infer-onnx`, relative to its working directory."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
            if "launch" not in args and "infer-onnx" not in args:
                continue
            cwd = os.readlink(proc / "cwd")
            for i, a in enumerate(args):
                for option in ("--record", "--log"):
                    if a.startswith(f"{option}="):
                        found.add(os.path.realpath(os.path.join(cwd, a.split("=", 1)[1])))
                    elif a == option and i + 1 < len(args):
                        found.add(os.path.realpath(os.path.join(cwd, args[i + 1])))
        except OSError:
            continue
    return found


def last_epoch_line(log: Path) -> Optional[re.Match]:
    """The last epoch line of a stack's log, parsed; None before the first epoch."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        m = EPOCH_LINE.search(line.strip())
        if m:
            return m
    return None


def _mtime(path: Path) -> Optional[float]:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@dataclass(frozen=True)
class InferenceJob:
    """One inference process of rules/inference.smk: a stack's native run, or (stack
    None) the ONNX runtimes' run over every export of a (data set, model, repeat)."""
    dataset: str
    model: str
    repeat: int
    threads: int
    stack: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/{f'{NATIVE}/{self.stack}' if self.stack else 'onnx'}/repeat{self.repeat}"

    def records(self, results: Path, engines: Sequence[str], stacks: Sequence[str]) -> list[Path]:
        """Its records (rules/inference.smk's outputs): one, or one per (engine, stack)."""
        from dlrosetta.runtimes import record_path

        pairs = [(NATIVE, self.stack)] if self.stack else [(e, s) for e in engines for s in stacks]
        return [record_path(results / "inference", self.dataset, self.model, e, s, self.repeat) for e, s in pairs]

    def log(self, results: Path) -> Path:
        return results / "logs" / "inference" / f"{self.name}.log"

    def spec(self, results: Path) -> Optional[Path]:
        """The run spec a native run's launcher writes when it starts (the ONNX job has none)."""
        if not self.stack:
            return None
        run = Run(self.dataset, self.model, self.stack, self.threads, self.repeat)
        return results / "runs" / "inference" / run_id(run) / "spec.json"


def inference_jobs(study: Study) -> list[InferenceJob]:
    """The study's inference processes in plan order: the native runs, then the ONNX jobs."""
    native = [InferenceJob(r.dataset, r.model, r.repeat, r.threads, r.stack) for r in study.inference_runs()]
    onnx = [InferenceJob(j.dataset, j.model, j.repeat, j.threads) for j in native] if study.inference_engines() else []
    return native + list(dict.fromkeys(onnx))


@dataclass
class RunState:
    run: Optional[Run]                 # a training run, or None for an inference job
    state: str                         # one of STATES
    detail: str = ""                   # one line: why, how long, or what is left
    epoch_line: Optional[str] = None   # running: the stack's last epoch line
    seconds_left: Optional[float] = None
    elapsed: Optional[float] = None    # running: seconds since the launcher wrote the run spec
    record: Optional[Record] = None
    in_plan: bool = True
    job: Optional[InferenceJob] = None
    seconds: Optional[float] = None    # a finished inference job: its processes' seconds

    @property
    def name(self) -> str:
        return run_id(self.run) if self.run is not None else self.job.name


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _first_line(text: str, width: int = 110) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def at_work(records: Sequence[Path], log: Path, live: set[str]) -> Optional[str]:
    """Whether a process may be making `records`: "live" when a launcher alive on this
    machine names one of them or the log; "log" when the log is newer than one of them,
    or one is missing (running, or interrupted if the log stopped long ago); else None."""
    if any(os.path.realpath(p) in live for p in (*records, log)):
        return "live"
    log_m = _mtime(log)
    if log_m is not None and any(m is None or log_m > m for m in map(_mtime, records)):
        return "log"
    return None


def _interrupted(log_m: float, now: float) -> str:
    return f"interrupted: its log was last written {duration(now - log_m)} ago"


def _elapsed(spec: Optional[Path], records: Sequence[Path], now: float) -> Optional[float]:
    """Seconds since the launcher wrote the run spec, when it did so after the records."""
    spec_m = _mtime(spec) if spec is not None else None
    if spec_m is None or any(m is not None and m >= spec_m for m in map(_mtime, records)):
        return None
    return max(0.0, now - spec_m)


def run_state(run: Run, results: Path, expected: Optional[dict], now: float, stale_s: float,
              live: set[str]) -> RunState:
    record_path = results / "records" / f"{run_id(run)}.json"
    log = results / "logs" / "train" / f"{run_id(run)}.log"
    work = at_work([record_path], log, live)
    if work:
        log_m = _mtime(log)
        m = last_epoch_line(log) if log_m is not None else None
        limit = max(stale_s, 3 * float(m["seconds"])) if m and _is_number(m["seconds"]) else stale_s
        if work == "live" or now - log_m < limit:
            state = RunState(run, "running", epoch_line=m.group(0) if m else None)
            state.elapsed = _elapsed(results / "runs" / run_id(run) / "spec.json", [record_path], now)
            if m:
                state.seconds_left = max(0.0, float(m["left"]) - max(0.0, now - log_m))
            return state
        return RunState(run, "waiting", _interrupted(log_m, now))
    if _mtime(record_path) is None:
        return RunState(run, "waiting")
    try:
        record = Record.read(record_path)
    except RecordError as e:
        return RunState(run, "waiting", f"unreadable record, to be made again: {_first_line(str(e), 80)}")
    if expected is not None:
        from dlrosetta.aggregate import mismatches
        wrong = [FIELD_NAMES.get(w.split(":")[0], w.split(":")[0]) for w in mismatches(record, expected)]
        if wrong:
            return RunState(run, "waiting", f"its record is of another configuration ({', '.join(wrong)})",
                            record=record)
    if record.status == "ok":
        seconds = f"{record.run_seconds:.1f} s" if record.run_seconds is not None else ""
        return RunState(run, "done", seconds, record=record)
    from dlrosetta.aggregate import cause
    return RunState(run, record.status, _first_line(cause(record) or record.reason or ""), record=record)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def inference_state(job: InferenceJob, results: Path, engines: Sequence[str], stacks: Sequence[str],
                    code: Optional[str], now: float, stale_s: float, live: set[str]) -> RunState:
    """An inference job's state from its records and log. Its records belong to the study
    when they have its thread count and (native) its stack's code; the ONNX job is done
    when a runtime ran any export, else skipped or failed as its records say."""
    records, log = job.records(results, engines, stacks), job.log(results)
    work = at_work(records, log, live)
    if work:
        log_m = _mtime(log)
        if work == "live" or now - log_m < stale_s:
            return RunState(None, "running", job=job, elapsed=_elapsed(job.spec(results), records, now))
        return RunState(None, "waiting", _interrupted(log_m, now), job=job)
    if any(_mtime(p) is None for p in records):
        return RunState(None, "waiting", job=job)
    try:
        read = [InferenceRecord.read(p) for p in records]
    except RecordError as e:
        return RunState(None, "waiting", f"unreadable record, to be made again: {_first_line(str(e), 80)}", job=job)
    wrong = sorted({"threads" for r in read if r.threads != job.threads}
                   | {"stack code" for r in read if code is not None and r.stack_code_sha256 != code})
    if wrong:
        return RunState(None, "waiting", f"its record is of another configuration ({', '.join(wrong)})", job=job)
    # An ONNX job's records carry the seconds of their runtime's process, once per runtime.
    seconds = sum({r.runtime: r.run_seconds or 0.0 for r in read}.values())
    statuses = [r.status for r in read]
    if "ok" in statuses:  # a native job has one record
        counts = ", ".join(f"{statuses.count(k)} {k}" for k in ("ok", "skipped", "failed") if k in statuses)
        detail = f"{seconds:.1f} s" + (f"; {plural(len(read), 'record')}: {counts}" if job.stack is None else "")
        return RunState(None, "done", detail, job=job, seconds=seconds)
    state = "failed" if "failed" in statuses else "skipped"
    reason = next(r.reason for r in read if r.status == state)
    return RunState(None, state, _first_line(reason or ""), job=job, seconds=seconds)


def _like(s: RunState) -> tuple[tuple, tuple]:
    """The keys of the finished runs whose times estimate s's: of its stack, then of its
    (data set, model). Inference jobs apart from training runs, ONNX jobs apart from
    native ones, and a native repeat 1 (it also cross-evaluates and exports) apart."""
    if s.run is not None:
        return (s.run.dataset, s.run.model, s.run.stack), (s.run.dataset, s.run.model)
    j = s.job
    kind = ("inference", j.dataset, j.model, j.stack is None, j.stack is not None and j.repeat == 1)
    return (*kind, j.stack), kind


def estimate(states: list[RunState]) -> None:
    """Fill in seconds_left: a waiting run's from the finished runs (ok or skipped) of
    its (data set, model, stack), else of its (data set, model), else, before any such
    run, from the records of an older configuration on the same paths (inference jobs
    likewise, from like jobs: `_like`); a running run's
    from its last epoch line, or before its first epoch from those medians less its
    elapsed time."""
    tables: dict[tuple, list[float]] = {}
    for s in states:
        if not s.in_plan or s.state not in ("done", "skipped", "waiting"):
            continue
        if s.run is not None and s.record is not None and s.record.status in ("ok", "skipped"):
            seconds, ok = s.record.run_seconds or 0.0, s.record.status == "ok"
        elif s.run is None and s.seconds is not None:
            seconds, ok = s.seconds, s.state == "done"
        else:
            continue
        tier = 0 if s.state != "waiting" else 2  # waiting with a record: another configuration's
        own, model = _like(s)
        tables.setdefault((tier, *own), []).append(seconds)
        if ok:  # another stack's skips say nothing of this one's time
            tables.setdefault((tier + 1, *model), []).append(seconds)

    def median_of(s: RunState) -> Optional[tuple[float, int, bool]]:
        own, model = _like(s)
        for key in ((0, *own), (1, *model), (2, *own), (3, *model)):
            if tables.get(key):
                return statistics.median(tables[key]), len(tables[key]), key[0] >= 2
        return None

    for s in states:
        if s.state == "waiting":
            m = median_of(s)
            if m is not None:
                s.seconds_left = m[0]
                what = f"~{duration(m[0])} (median of {plural(m[1], 'older run' if m[2] else 'run')})"
            else:
                what = "no estimate yet"
            s.detail = f"{what}; {s.detail}" if s.detail else what
        elif s.state == "running" and s.seconds_left is None:
            m = median_of(s)
            if m is not None:
                s.seconds_left = max(0.0, m[0] - (s.elapsed or 0.0))
        if s.state == "running":
            parts = [f"for {duration(s.elapsed)}" if s.elapsed is not None else "",
                     f"~{duration(s.seconds_left)} left" if s.seconds_left is not None else "no estimate yet",
                     "" if s.in_plan else "not in this plan (give status snakemake's --configfile and --config)"]
            s.detail = ", ".join(p for p in parts if p)


def collect(runs: Iterable[Run], results: Path, expected: Optional[dict[Run, dict]] = None,
            now: Optional[float] = None, stale_s: float = STALE_MINUTES * 60,
            live: Optional[set[str]] = None, jobs: Sequence[InferenceJob] = (), engines: Sequence[str] = (),
            codes: Optional[dict[str, str]] = None) -> list[RunState]:
    """The state of every planned run, in plan order; then the runs that are running
    outside the plan (a study of another config); then every inference job of `jobs`
    (its ONNX records: one per engine of `engines` and stack of its native jobs; a native
    record belongs when it has the stack code of `codes`, if given). Estimates filled in."""
    now = time.time() if now is None else now
    live = live_launchers() if live is None else live
    runs = list(runs)
    states = [run_state(r, results, None if expected is None else expected.get(r), now, stale_s, live)
              for r in runs]
    planned = {run_id(r) for r in runs}
    logs = results / "logs" / "train"
    for log in sorted(logs.glob("*/*/*/threads*/repeat*.log")) if logs.is_dir() else []:
        parts = log.relative_to(logs).with_suffix("").parts
        m = re.fullmatch(r"threads(\d+)", parts[3]), re.fullmatch(r"repeat(\d+)", parts[4])
        if "/".join(parts) in planned or not all(m):
            continue
        other = run_state(Run(*parts[:3], int(m[0][1]), int(m[1][1])), results, None, now, stale_s, live)
        if other.state == "running":
            other.in_plan = False
            states.append(other)
    stacks: dict[tuple, list[str]] = {}
    for j in jobs:
        if j.stack:
            stacks.setdefault((j.dataset, j.model, j.repeat), []).append(j.stack)
    states += [inference_state(j, results, engines, stacks.get((j.dataset, j.model, j.repeat), []),
                               (codes or {}).get(j.stack), now, stale_s, live) for j in jobs]
    estimate(states)
    return states


# -- the table ---------------------------------------------------------------------------
def render(states: list[RunState], results: Path, config_label: str, now: Optional[float] = None,
           outside_records: int = 0) -> str:
    now = time.time() if now is None else now
    planned = [s for s in states if s.in_plan]
    width = max((len(s.name) for s in states), default=0)
    lines = [f"dlrosetta status: {results} ({config_label}), {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}"]
    for noun, section in (("run", [s for s in states if s.run is not None]),
                          ("inference job", [s for s in states if s.run is None])):
        if noun == "inference job" and not section:
            continue
        counts = {k: sum(s.state == k and s.in_plan for s in section) for k in STATES}
        lines += [f"{plural(sum(s.in_plan for s in section), noun)}: " + ", ".join(f"{counts[k]} {k}" for k in STATES),
                  ""]
        for s in section:
            lines.append(f"{s.state:<8} {s.name:<{width}}  {s.detail}".rstrip())
            if s.state == "running" and s.run is not None:
                lines.append(f"{'':<8}   {s.epoch_line or '(no epoch finished yet)'}")
        lines.append("")
    pending = [s for s in planned if s.state in ("waiting", "running")]
    known = [s.seconds_left for s in pending if s.seconds_left is not None]
    unknown = len(pending) - len(known)
    if not pending:
        lines.append("time left: none, every run and inference job has its records (the next snakemake aggregates "
                     "and reports)")
    else:
        left = f"~{duration(sum(known))}" if known else "unknown"
        note = f" + {unknown} with no estimate yet" if unknown and known else ""
        runs, jobs = sum(s.run is not None for s in pending), sum(s.run is None for s in pending)
        what = " and ".join(plural(n, noun) for n, noun in ((runs, "run"), (jobs, "inference job")) if n)
        lines.append(f"time left: {left}{note} ({what} to finish; stack processes only, "
                     f"from the median run time of like runs so far)")
    if outside_records:
        lines.append(f"note: {plural(outside_records, 'record')} under {results}/records "
                     f"{'are' if outside_records > 1 else 'is'} not in this plan (another --configfile or --config?)")
    return "\n".join(lines)


def records_outside(runs: Iterable[Run], results: Path) -> int:
    planned = {f"{run_id(r)}.json" for r in runs}
    records = results / "records"
    return sum(str(p.relative_to(records)) not in planned
               for p in records.glob("*/*/*/threads*/repeat*.json")) if records.is_dir() else 0


def status_text(study: Study, results: Path, config_label: str, stale_s: float = STALE_MINUTES * 60) -> str:
    from dlrosetta.registry import get_stack

    runs = study.runs()
    states = collect(runs, results, expected_fields(study, results), stale_s=stale_s, jobs=inference_jobs(study),
                     engines=study.inference_engines(), codes={s: get_stack(s).code_sha256() for s in study.stacks()})
    return render(states, results, config_label, outside_records=records_outside(runs, results))


def main(results: Path, configfiles: Sequence[Path] = (), config_args: Sequence[str] = (),
         watch: Optional[float] = None, stale_minutes: float = STALE_MINUTES) -> int:
    from dlrosetta.study import ConfigError

    try:
        study = Study(load_config(configfiles, config_args))
    except (ValueError, ConfigError, OSError, yaml.YAMLError) as e:
        print(f"dlrosetta status: {e}", file=sys.stderr)
        return 2
    label = " + ".join(["config/config.yaml", *map(str, configfiles), *(f"--config {c}" for c in config_args)])
    while True:
        text = status_text(study, results, label, stale_minutes * 60)
        if watch is None:
            print(text)
            return 0
        # On a terminal, redraw in place; into a file or a pipe, one block after another.
        print(("\033[H\033[2J" if sys.stdout.isatty() else "\n") + text, flush=True)
        time.sleep(watch)
