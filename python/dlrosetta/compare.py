"""Several studies, one page: the same runs timed on several machines, side by side
(docs/compare.md).

A study is a results directory as the workflow leaves it, here or copied from another
machine: `records/<dataset>/<model>/<stack>/threads<T>/repeat<R>.json`, `machine.json`
and, where the study was aggregated, `runs.csv` (which records belonged to it). Each
study's figures are derived exactly as its own report derives them
(aggregate.run_rows, aggregate.group_row: the median steady epoch over every repeat
with its two-level bootstrap interval), and a machine's speed-up over the first is
statistics.ratio of the two estimates.

A machine is a study's hardware kind (aggregate.hardware: the CPU model of the node, and
the accelerator where a run used one): one per study, or several where a study spans
node types. Two machines are compared only on what both ran, (data set, model, stack,
threads); the rest is listed as left out. And only when both trained the same thing:
the same model and training config (every hyperparameter, epochs, batch size, optimiser),
seed, data (shards checksum) and initial weights. Anything else is refused, naming both
record files and the field (ComparisonError).
"""
from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import jinja2
import numpy as np
import pandas as pd

from dlrosetta.aggregate import GROUP, group_row, run_rows
from dlrosetta.checksum import sha256_file
from dlrosetta.record import Record, RecordError
from dlrosetta.report import TEMPLATES, _fmt, _panels, _png
from dlrosetta.statistics import NOISY_CV, Estimate, estimate, ratio, seed_of

#: A record's place in a results directory (the workflow's rules/common.smk record_path).
RECORD_GLOB = "records/*/*/*/threads*/repeat*.json"
#: What two machines are compared on.
KEY = ["dataset", "model", "stack", "threads"]
#: Fields every compared record must share with the first study's, beside each leaf of
#: `hyperparameters` (model config; training: epochs, batch size, optimiser).
SAME_FIELDS = ("seed", "shards_sha256", "initial_weights_sha256")
#: Of those, the ones only an ok run is sure to have measured.
OK_ONLY_FIELDS = ("shards_sha256", "initial_weights_sha256")
#: Per machine, per compared row, in compare.csv (`<label>_<column>`).
MACHINE_COLUMNS = ["status", "cause", "repeats", "steady_epochs", "median", "ci_low", "ci_high", "cv",
                   "framework_version"]
SPEEDUP_COLUMNS = ["speedup", "speedup_ci_low", "speedup_ci_high", "speedup_tie"]
COLORS = ["#2b7bba", "#e66101", "#1a9850", "#7b3294", "#c51b7d", "#8c510a", "#01665e", "#4d4d4d"]


class ComparisonError(ValueError):
    """The studies cannot be compared (or not found); the message names the files."""


@dataclass
class Study:
    """One results directory: its records (those that belong to it), machine file and
    the records left out of it."""
    directory: Path
    machine: Optional[dict]
    records: list[tuple[str, Record]]
    excluded: list[tuple[str, str]] = field(default_factory=list)   # (file, why)

    @property
    def machine_file(self) -> Path:
        return self.directory / "machine.json"


@dataclass
class Group:
    """One (data set, model, stack, threads) on one machine: the aggregation's summary
    row, its steady-epoch estimate, the samples it rests on and its record files."""
    row: dict
    estimate: Optional[Estimate]
    steady: list[list[float]]
    records: list[tuple[str, Record]]


@dataclass
class Machine:
    label: str
    study: Study
    hardware: str
    groups: dict[tuple, Group]
    facts: dict[str, Any] = field(default_factory=dict)


def _record_key(path: str) -> Optional[tuple[str, ...]]:
    """A record file's last five parts (data set, model, stack, threads<T>, repeat<R>.json),
    whatever directory the study was run or copied into."""
    parts = Path(path).parts
    return tuple(parts[-5:]) if len(parts) >= 5 else None


def load_study(directory: Path) -> Study:
    """A results directory as it is. Where it holds runs.csv (the study's aggregation),
    only the records that belonged to the study then are taken: records of another
    configuration, or left over from more repeats or other thread counts, are listed
    as excluded, as the study's own report lists them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ComparisonError(f"{directory}: no such results directory")
    files = sorted(directory.glob(RECORD_GLOB))
    if not files:
        raise ComparisonError(f"{directory}: no records ({directory / RECORD_GLOB}); is it a results directory?")
    machine_file = directory / "machine.json"
    try:
        machine = json.loads(machine_file.read_text()) if machine_file.is_file() else None
    except json.JSONDecodeError as e:
        raise ComparisonError(f"{machine_file}: not valid JSON: {e}") from None
    belongs: Optional[dict[tuple, tuple[bool, Optional[str]]]] = None
    runs_file = directory / "runs.csv"
    if runs_file.is_file():
        try:
            runs = pd.read_csv(runs_file, usecols=["record_file", "belongs", "mismatch"])
        except ValueError as e:
            raise ComparisonError(f"{runs_file}: not the runs table of a study: {e}") from None
        runs = runs.astype(object).where(runs.notna(), None)
        belongs = {_record_key(r["record_file"]): (str(r["belongs"]).lower() == "true", r["mismatch"])
                   for r in runs.to_dict("records")}
    study = Study(directory, machine, [])
    for path in files:
        name = str(path)
        if belongs is not None:
            member = belongs.get(_record_key(name))
            if member is None:
                study.excluded.append((name, f"not among the study's runs when it was last aggregated ({runs_file})"))
                continue
            if not member[0]:
                study.excluded.append((name, f"not compared in its own study: {member[1]}"))
                continue
        try:
            study.records.append((name, Record.read(path)))
        except RecordError as e:
            study.excluded.append((name, f"unreadable: {e}"))
    if not study.records:
        raise ComparisonError(f"{directory}: no record belongs to the study "
                              f"({len(study.excluded)} excluded, e.g. {study.excluded[0][0]}: {study.excluded[0][1]})")
    return study


def study_groups(study: Study) -> dict[str, dict[tuple, Group]]:
    """Per hardware kind, per (data set, model, stack, threads): the study's own figures,
    from aggregate's functions, so they equal its summary.csv."""
    rows = run_rows(study.records, {}, {})
    by_group: dict[tuple, list[tuple[dict, Record, str]]] = {}
    for row, (path, r) in zip(rows, study.records):
        by_group.setdefault(tuple(row[k] for k in GROUP), []).append((row, r, path))
    out: dict[str, dict[tuple, Group]] = {}
    for key, runs in sorted(by_group.items(), key=lambda kv: tuple(map(str, kv[0]))):
        runs.sort(key=lambda x: x[1].repeat or 0)
        row, est = group_row(key, [(x, r) for x, r, _ in runs], None)
        steady = [list(r.epoch_seconds[1:]) for _, r, _ in runs if r.status == "ok"]
        kind = key[GROUP.index("hardware")]
        out.setdefault(kind, {})[key[:4]] = Group(row, est, steady, [(p, r) for _, r, p in runs])
    return out


# ---------------------------------------------------------------------------- machines

def _machine_file_describes(study: Study, kind: str, kinds: int) -> bool:
    """Whether the study's machine.json describes this hardware kind: its CPU is the
    kind's, or the study ran on one kind only."""
    if study.machine is None:
        return False
    return kinds == 1 or kind.endswith(str(study.machine.get("cpu_model")))


def _facts(study: Study, kind: str, groups: dict[tuple, Group], described: bool) -> dict[str, Any]:
    """What the page says about a machine: the machine file's facts where it describes
    this kind, and what the records themselves say (CPU, accelerator, probes, versions)."""
    records = [r for g in groups.values() for _, r in g.records]
    ok = [r for r in records if r.status == "ok"]
    m = study.machine if described else {}
    gpus = sorted({r.device for r in ok if r.device not in (None, "cpu")})
    probes: dict[int, list[float]] = {}
    for r in ok:
        probes.setdefault(r.threads, []).extend(
            p for p in (r.gemm_float32_gflops_before, r.gemm_float32_gflops_after) if p)
    created = sorted(r.created_at for r in records if r.created_at)
    return {
        "cpu": next((r.host_cpu for r in records if r.host_cpu), None) or m.get("cpu_model"),
        "cores": m.get("logical_cores"),
        "memory_gib": m.get("memory_gib"),
        "gpu": ", ".join(gpus) or None,
        "gemm_gflops": m.get("gemm_float32_gflops"),
        "gemm_threads": m.get("threads"),
        "gemm_n": m.get("gemm_n"),
        # The launcher's probes around the runs, on the node, at each thread count.
        "run_gemm_gflops": {t: float(np.median(v)) for t, v in sorted(probes.items()) if v},
        "blas": m.get("blas"), "os": m.get("os"), "python": m.get("python"), "numpy": m.get("numpy"),
        "r": m.get("r"), "julia": m.get("julia"),
        "hosts": ", ".join(sorted({r.host for r in records if r.host})) or None,
        "runs": len(records), "ok_runs": len(ok),
        "first_run": created[0] if created else None, "last_run": created[-1] if created else None,
        "directory": str(study.directory),
        "machine_file": str(study.machine_file) if study.machine is not None else None,
    }


def _short(directories: Sequence[Path]) -> list[str]:
    """The shortest trailing parts of each directory that tell them apart
    (`laptop/results`, `node/results`)."""
    parts = [Path(d).resolve().parts for d in directories]
    for k in range(1, max(map(len, parts)) + 1):
        names = ["/".join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(d) for d in directories]


def machines(studies: Sequence[Study], labels: Sequence[Optional[str]] = ()) -> list[Machine]:
    """Each study's hardware kinds as machines, in the order given. A machine's label is
    the study's `labels` entry (with its hardware appended where the study spans
    several kinds), else its CPU model and cores (and accelerator), with the study's
    directory added where that would not tell two machines apart."""
    labels = list(labels) + [None] * (len(studies) - len(labels))
    dirs = _short([s.directory for s in studies])
    out: list[tuple[Machine, bool, str]] = []   # (machine, labelled, directory name)
    for study, label, dirname in zip(studies, labels, dirs):
        kinds = study_groups(study)
        for kind, groups in kinds.items():
            facts = _facts(study, kind, groups, _machine_file_describes(study, kind, len(kinds)))
            if label:
                name = label if len(kinds) == 1 else f"{label}: {kind}"
            else:
                name = f"{facts['cpu'] or 'unknown CPU'}" + (f" ({facts['cores']} cores)" if facts["cores"] else "")
                name += f", {facts['gpu']}" if facts["gpu"] else ""
            out.append((Machine(name, study, kind, groups, facts), bool(label), dirname))
    names = [m.label for m, _, _ in out]
    for m, labelled, dirname in out:
        if names.count(m.label) > 1:
            if labelled:
                raise ComparisonError(f"the label {m.label!r} is given to two results directories")
            m.label = f"{m.label} [{dirname}]"
    names = [m.label for m, _, _ in out]
    for i, (m, _, _) in enumerate(out):  # one study listed twice under other paths, say
        if names.count(m.label) > 1:
            m.label = f"{m.label} #{i + 1}"
    return [m for m, _, _ in out]


# ---------------------------------------------------------------------- comparability

def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """A nested mapping as {dotted.key: leaf}."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def _trained(r: Record) -> dict[str, Any]:
    """What a record must share with another to be compared with it."""
    out = _leaves(dict(r.hyperparameters), "hyperparameters")
    for name in SAME_FIELDS:
        if r.status == "ok" or name not in OK_ONLY_FIELDS:
            out[name] = getattr(r, name)
    return out


def _data_identity(directory: Path, dataset: str, recorded: str) -> Optional[str]:
    """The study's shards manifest without where the archive was read from (a real data
    set's manifest names the archive's path, which differs between machines), if it is
    there and is the one the records used; else None."""
    manifest = directory / "shards" / dataset / "manifest.json"
    if not manifest.is_file() or sha256_file(manifest) != recorded:
        return None
    data = json.loads(manifest.read_text())
    source = data.get("meta", {}).get("source")
    if isinstance(source, dict):
        source.pop("archive", None)
    return json.dumps(data, sort_keys=True)


def check_comparable(compared: Sequence[Machine], keys: Iterable[tuple]) -> list[str]:
    """Every record of the compared keys against the first machine's first record of its
    (data set, model): the same hyperparameters, seed, data and initial weights. Raises
    ComparisonError naming both files and each differing field; returns notes (data
    that differ only in the archive's path)."""
    keys = list(keys)
    # Per (data set, model): the first ok record, in the order the machines were given.
    reference: dict[tuple, tuple[str, Record, Machine]] = {}
    for m in compared:
        for key in keys:
            for path, r in m.groups[key].records:
                ref = reference.get(key[:2])
                if ref is None or (ref[1].status != "ok" and r.status == "ok"):
                    reference[key[:2]] = (path, r, m)
    problems: dict[tuple, str] = {}
    notes: set[str] = set()
    for m in compared:
        for key in keys:
            for path, r in m.groups[key].records:
                ref_path, ref, ref_m = reference[key[:2]]
                want, got = _trained(ref), _trained(r)
                # A hyperparameter one record lacks is a difference; a checksum a failed
                # run never measured is not.
                names = (set(want) & set(got)) | ((set(want) ^ set(got)) - set(OK_ONLY_FIELDS))
                for name in sorted(names):
                    a, b = want.get(name), got.get(name)
                    if a == b:
                        continue
                    if name == "shards_sha256" and a and b:
                        ours = _data_identity(ref_m.study.directory, r.dataset, a)
                        theirs = _data_identity(m.study.directory, r.dataset, b)
                        if ours is not None and ours == theirs:
                            notes.add(f"{r.dataset}: the shards of {ref_m.study.directory} and "
                                      f"{m.study.directory} hold the same data and differ only in the path "
                                      f"the archive was read from.")
                            continue
                    where = (name, key[:2], m.study.directory)
                    problems.setdefault(where, (
                        f"{key[1]} on {key[0]}: {name} is {_show(a)} in {ref_path} but {_show(b)} in {path}"))
    if problems:
        lines = sorted(problems.values())
        raise ComparisonError(
            "the studies did not train the same thing, so their times cannot be compared "
            "(the same model and training config, seed, data and initial weights are needed):\n  "
            + "\n  ".join(lines))
    return sorted(notes)


def _show(value: Any) -> str:
    return "absent" if value is None else json.dumps(value)


# ------------------------------------------------------------------------- comparison

def _independent(m: Machine, key: tuple, reference: Machine) -> Optional[Estimate]:
    """The machine's estimate for a ratio with the reference's. Each bootstrap is seeded
    from its (data set, model, stack, threads, hardware): two studies on the same kind
    of hardware would draw the very same resamples, which would make the ratio's interval
    too narrow. Such a machine's estimate is drawn again from its label's seed (same
    median, independent draws)."""
    est = m.groups[key].estimate
    if est is None or m.hardware != reference.hardware:
        return est
    return estimate(m.groups[key].steady, seed_of(*key, m.hardware, m.label))


def comparison(compared: Sequence[Machine]) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """compare.csv's rows (one per data set, model, stack, threads that every machine
    ran), the keys left out (with the machines that have them) and the notes."""
    everything = sorted({k for m in compared for k in m.groups}, key=lambda k: tuple(map(str, k)))
    keys = [k for k in everything if all(k in m.groups for m in compared)]
    left_out = [{**dict(zip(KEY, k)), "only_on": [m.label for m in compared if k in m.groups]}
                for k in everything if k not in keys]
    if not keys:
        raise ComparisonError(
            "the studies share no (data set, model, stack, threads): nothing to compare. They ran: "
            + "; ".join(f"{m.label} ({m.study.directory}): "
                        + ", ".join(sorted({f'{k[1]} on {k[0]} at {k[3]} threads' for k in m.groups}))
                        for m in compared))
    notes = check_comparable(compared, keys)
    ref = compared[0]
    rows = []
    for key in keys:
        row: dict[str, Any] = dict(zip(KEY, key))
        first = next((m.groups[key].row for m in compared if m.groups[key].row["status"] == "ok"),
                     ref.groups[key].row)
        row.update({k: first[k] for k in ("language", "framework", "backend", "batch_size", "epochs")})
        for m in compared:
            g = m.groups[key]
            est = g.estimate
            row.update({
                f"{m.label}_status": g.row["status"], f"{m.label}_cause": g.row["cause"],
                f"{m.label}_repeats": g.row["repeats"],
                f"{m.label}_steady_epochs": g.row["steady_epochs"],
                f"{m.label}_median": est.median if est else None,
                f"{m.label}_ci_low": est.ci_low if est else None,
                f"{m.label}_ci_high": est.ci_high if est else None,
                f"{m.label}_cv": est.cv if est else None,
                f"{m.label}_framework_version": g.row["framework_version"],
            })
            if m is ref:
                continue
            mine, theirs = _independent(m, key, ref), ref.groups[key].estimate
            if mine is None or theirs is None:
                row.update({f"{m.label}_{c}": None for c in SPEEDUP_COLUMNS})
                continue
            # Speed-up: the reference's time over this machine's (> 1: this machine is faster).
            value, low, high = ratio(theirs, mine)
            row.update({f"{m.label}_speedup": value, f"{m.label}_speedup_ci_low": low,
                        f"{m.label}_speedup_ci_high": high, f"{m.label}_speedup_tie": theirs.overlaps(mine)})
        rows.append(row)
    columns = KEY + ["language", "framework", "backend", "batch_size", "epochs"] + [
        f"{m.label}_{c}" for m in compared for c in MACHINE_COLUMNS + (SPEEDUP_COLUMNS if m is not ref else [])]
    df = pd.DataFrame(rows, columns=columns)
    df["_order"] = df[f"{ref.label}_median"].astype(float)
    df = df.sort_values(["dataset", "model", "threads", "_order", "stack"], na_position="last",
                        ignore_index=True).drop(columns="_order")
    return df, left_out, notes


def compare_studies(directories: Sequence[Path], labels: Sequence[Optional[str]] = ()
                    ) -> tuple[list[Machine], pd.DataFrame, list[dict], list[str]]:
    """Load, check and compare; the machines, compare.csv's table, what was left out
    and the notes."""
    directories = [Path(d) for d in directories]
    if len(labels) > len(directories):
        raise ComparisonError(f"{len(labels)} labels for {len(directories)} results directories")
    seen: dict[Path, Path] = {}
    for d in directories:
        if d.resolve() in seen:
            raise ComparisonError(f"{d} is given twice (also as {seen[d.resolve()]})")
        seen[d.resolve()] = d
    studies = [load_study(d) for d in directories]
    compared = machines(studies, labels)
    if len(compared) < 2:
        raise ComparisonError(f"{directories[0]} ran on one kind of hardware ({compared[0].hardware}): "
                              f"give the results directories of at least two machines")
    df, left_out, notes = comparison(compared)
    return compared, df, left_out, notes


# ---------------------------------------------------------------------------- the page

def _speedup(row: dict, label: str) -> str:
    if row.get(f"{label}_speedup") is None:
        return "–"
    return (f"{row[f'{label}_speedup']:.2f}x [{row[f'{label}_speedup_ci_low']:.2f}, "
            f"{row[f'{label}_speedup_ci_high']:.2f}]")


def _geomean(values: Sequence[float]) -> Optional[float]:
    values = [v for v in values if v]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def chart(case: dict, compared: Sequence[Machine]) -> bytes:
    """One panel per thread count: each stack's median steady seconds per epoch on every
    machine, with its 95 % interval, the reference machine's fastest stack on top."""
    fig, axes = _panels(len(case["tables"]), 0.3 * len(compared) * max(len(t["rows"]) for t in case["tables"]) + 1.8)
    height = 0.8 / len(compared)
    for ax, table in zip(axes, case["tables"]):
        rows = table["rows"][::-1]
        for j, m in enumerate(compared):
            y = [i + (len(compared) - 1 - j - (len(compared) - 1) / 2) * height for i in range(len(rows))]
            med = [r[f"{m.label}_median"] or 0.0 for r in rows]
            err = [[(r[f"{m.label}_median"] - r[f"{m.label}_ci_low"]) if r[f"{m.label}_median"] else 0.0
                    for r in rows],
                   [(r[f"{m.label}_ci_high"] - r[f"{m.label}_median"]) if r[f"{m.label}_median"] else 0.0
                    for r in rows]]
            ax.barh(y, med, height=height * 0.92, xerr=err, color=COLORS[j % len(COLORS)], alpha=0.85, capsize=2,
                    error_kw={"elinewidth": 1.0}, label=m.label)
        ax.set_yticks(range(len(rows)), [r["stack"] for r in rows])
        ax.set_title(f"{case['model']} on {case['dataset']}, {table['threads']} threads", fontsize=9)
        ax.set_xlabel("median steady seconds per epoch, 95 % interval (lower is better)")
        ax.legend(fontsize=7, loc="best")  # the fastest stacks, on top, leave room at the upper right
    return _png(fig)


def report_style() -> str:
    """The study report's stylesheet (report/index.html.j2), so both pages look alike."""
    text = (TEMPLATES / "index.html.j2").read_text()
    found = re.search(r"<style>(.*?)</style>", text, re.S)
    return found.group(1) if found else ""


def render_comparison(compared: Sequence[Machine], df: pd.DataFrame, left_out: list[dict], notes: list[str],
                      out: Path) -> None:
    """index.html (self-contained, charts embedded), summary.md and plots/<dataset>-<model>.png."""
    ref = compared[0]
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    cases = []
    for (dataset, model), g in df.groupby(["dataset", "model"], sort=True):
        tables = []
        for threads in sorted(g.threads.unique()):
            table_rows = [r for r in rows if r["dataset"] == dataset and r["model"] == model
                          and r["threads"] == threads]
            summary = []
            for m in compared[1:]:
                values = [r[f"{m.label}_speedup"] for r in table_rows if r[f"{m.label}_speedup"] is not None]
                if values:
                    summary.append({"label": m.label, "geomean": _geomean(values), "low": min(values),
                                    "high": max(values), "stacks": len(values),
                                    "ties": sum(bool(r[f"{m.label}_speedup_tie"]) for r in table_rows)})
            gemm = {m.label: m.facts["run_gemm_gflops"].get(int(threads)) for m in compared}
            tables.append({"threads": int(threads), "rows": table_rows, "speedups": summary, "gemm": gemm})
        first = tables[0]["rows"][0]
        cases.append({"dataset": dataset, "model": model, "tables": tables, "name": f"{dataset}-{model}",
                      "batch_size": first["batch_size"], "epochs": first["epochs"]})
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for case in cases:
        png = chart(case, compared)
        (plots / f"{case['name']}.png").write_bytes(png)
        case["chart"] = base64.b64encode(png).decode()
    single = sum(r[f"{m.label}_status"] == "ok" and (r[f"{m.label}_repeats"] or 0) < 2
                 for r in rows for m in compared)
    flags = [f"{single} of {len(rows) * len(compared)} figures rest on a single repeat: their intervals show at "
             f"most the spread of one process's epochs, so read their speed-ups as indicative."] if single else []
    flags += [f"{r['stack']} ({r['model']} on {r['dataset']}, {r['threads']} threads) on {m.label}: its steady "
              f"epochs vary by {r[f'{m.label}_cv']:.0%} (coefficient of variation); its interval is wide "
              f"accordingly." for r in rows for m in compared
              if r[f"{m.label}_cv"] is not None and not math.isnan(r[f"{m.label}_cv"])
              and r[f"{m.label}_cv"] > NOISY_CV]
    code = []
    for key in {tuple(r[k] for k in KEY) for r in rows}:
        fingerprints = {m.label: {rec.stack_code_sha256 for _, rec in m.groups[key].records} for m in compared}
        if len({fp for fps in fingerprints.values() for fp in fps}) > 1:
            code.append(key[2])
    if code:
        notes = notes + [f"The code of {', '.join(sorted(set(code)))} differs between the studies (another "
                         f"dlrosetta version): the machines ran the same model, data and settings, but "
                         f"not the same stack code."]
    excluded = [{"label": m.label, "file": f, "why": why} for m in compared for f, why in m.study.excluded]
    # One study's excluded records once, even where it gave several machines.
    excluded = list({(e["file"], e["why"]): e for e in excluded}.values())
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    context = {"machines": compared, "ref": ref, "cases": cases, "left_out": left_out, "notes": notes,
               "flags": flags, "excluded": excluded, "rows": len(rows), "style": report_style(),
               "speedup": _speedup, "noisy_cv": NOISY_CV}
    (out / "index.html").write_text(env.get_template("compare.html.j2").render(**context))
    (out / "summary.md").write_text(env.get_template("compare.md.j2").render(**context))


# ------------------------------------------------------------------------ the workflow

def workflow_entries(value: Optional[Sequence[Any]]) -> list[tuple[str, str]]:
    """The config's `compare` entries (a directory, or {dir, label}) as (directory,
    label), '' where the label is to be derived (rules/compare.smk)."""
    if not value:
        raise ComparisonError("rule compare: no studies to compare; give their results directories, e.g. "
                              "--config compare='[laptop/results,node/results]' (docs/compare.md)")
    return [(e, "") if isinstance(e, str) else (e["dir"], e.get("label") or "") for e in value]


def workflow_inputs(value: Optional[Sequence[Any]], workdir: Optional[Path] = None) -> list[str]:
    """What the comparison reads, as the rule's input: each study's runs.csv (or its
    records) and machine.json. The workflow's own `results` is named by the paths its
    rules write (runs.csv, machine.json), so that `snakemake compare` first brings this
    checkout's study up to date."""
    workdir = Path.cwd() if workdir is None else workdir
    files = []
    for directory, _ in workflow_entries(value):
        d = Path(directory)
        if d.absolute() == (workdir / "results").absolute():
            files += ["results/runs.csv", "results/machine.json"]
            continue
        if not d.is_dir():
            raise ComparisonError(f"compare: {directory} is not a directory (relative to {workdir})")
        runs = d / "runs.csv"
        files += [str(runs)] if runs.is_file() else sorted(str(p) for p in d.glob(RECORD_GLOB))
        files += [str(d / "machine.json")] if (d / "machine.json").is_file() else []
    return files


def write_comparison(directories: Sequence[Path], out: Path, labels: Sequence[Optional[str]] = ()) -> pd.DataFrame:
    """`dlrosetta compare`: <out>/compare.csv, index.html, summary.md and plots/."""
    compared, df, left_out, notes = compare_studies(directories, labels)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "compare.csv", index=False)
    render_comparison(compared, df, left_out, notes, out)
    return df
