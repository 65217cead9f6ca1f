"""Render the comparison report: a self-contained HTML page (charts embedded, works
offline) and a Markdown summary, from the aggregation's tables (aggregate.py) and the
templates in report/ at the repo root. Nothing is computed here that the tables do not
hold, except the wording: the headline sentences say what the ratios and ties say.
"""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Iterable

import jinja2
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dlrosetta.inference import AGREEMENT_TOLERANCE  # noqa: E402
from dlrosetta.registry import REPO, STACKS  # noqa: E402
from dlrosetta.statistics import DRIFT_LIMIT, NOISY_CV  # noqa: E402

TEMPLATES = REPO / "report"
LANGUAGE_COLORS = {"python": "#2b7bba", "r": "#7b3294", "julia": "#1a9850"}
LANGUAGE_NAMES = {"python": "Python", "r": "R", "julia": "Julia"}
#: (column, chart title, x-axis label): bar charts of the headline thread count.
BAR_CHARTS = [
    ("warmup_epoch_seconds_median", "First epoch: warm-up and compilation (median over repeats)", "seconds"),
    ("gemm_fraction", "Achieved training FLOP/s as a fraction of float32 GEMM", "fraction"),
    ("peak_rss_mb_max", "Peak resident memory (largest over repeats)", "MiB"),
]
LINE_STYLES = ["-", "--", ":", "-."]
#: Profile categories (dlrosetta.profile.CATEGORIES) in stacking order, with their colours.
PROFILE_COLORS = {"conv_gemm": "#4e79a7", "normalisation": "#f28e2b", "elementwise": "#59a14f",
                  "recurrent": "#e15759", "loss": "#b07aa1", "optimiser": "#9c755f", "data": "#edc948",
                  "overhead": "#bab0ac"}


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _interval(row: dict, prefix: str, digits: int = 3, suffix: str = "") -> str:
    """`median [low, high]` of a summary row's estimate columns."""
    if row.get(f"{prefix}_median") is None and row.get(prefix) is None:
        return "–"
    value = row.get(f"{prefix}_median", row.get(prefix))
    low, high = row.get(f"{prefix}_ci_low"), row.get(f"{prefix}_ci_high")
    return f"{_fmt(value, digits)}{suffix} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _ratio(row: dict, name: str) -> str:
    if row.get(f"vs_{name}") is None:
        return "–"
    return (f"{row[f'vs_{name}']:.2f}x [{row[f'vs_{name}_ci_low']:.2f}, {row[f'vs_{name}_ci_high']:.2f}]")


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, pil_kwargs={"compress_level": 1})  # fast; the HTML holds them once
    plt.close(fig)
    return buf.getvalue()


def _panels(n: int, height: float):
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, height), squeeze=False)
    return fig, axes[0]


def _color(row) -> str:
    return LANGUAGE_COLORS.get(row["language"], "#888")


def headline_chart(cases: list[dict]) -> bytes:
    """Median steady seconds per epoch with its 95 % interval, fastest on top, one panel
    per (data set, model)."""
    fig, axes = _panels(len(cases), 0.42 * max(len(c["rows"]) for c in cases) + 1.8)
    for ax, case in zip(axes, cases):
        rows = case["rows"][::-1]  # measured rows only (render_report), fastest on top
        y = range(len(rows))
        med = [r["steady_epoch_seconds_median"] for r in rows]
        err = [[m - r["steady_epoch_seconds_ci_low"] for m, r in zip(med, rows)],
               [r["steady_epoch_seconds_ci_high"] - m for m, r in zip(med, rows)]]
        ax.barh(list(y), med, xerr=err, color=[_color(r) for r in rows], alpha=0.85, capsize=3,
                error_kw={"elinewidth": 1.2})
        ax.set_yticks(list(y), [r["stack"] for r in rows])
        for i, r in enumerate(rows):
            ax.text(r["steady_epoch_seconds_ci_high"], i, f"  {_fmt(r['steady_epoch_seconds_median'])}",
                    va="center", fontsize=8)
        ax.set_title(case["title"], fontsize=9)
        ax.set_xlabel("median steady seconds per epoch, 95 % interval (lower is better)")
        ax.margins(x=0.18)
    return _png(fig)


def _per_stack_lines(ax, epochs: pd.DataFrame, x: str, y: str, stacks: list[dict]) -> None:
    """One line per stack: the per-epoch median over its repeats."""
    for k, s in enumerate(stacks):
        e = epochs[epochs["stack"] == s["stack"]].groupby("epoch", as_index=False)[
            [c for c in (x, y) if c != "epoch"]].median()
        ax.plot(e[x], e[y], LINE_STYLES[k // len(LANGUAGE_COLORS) % len(LINE_STYLES)], marker="o",
                markersize=3, color=_color(s), label=s["stack"])


def epochs_chart(cases: list[dict], epochs: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str,
                 title: str, target: bool = False) -> bytes:
    fig, axes = _panels(len(cases), 4.2)
    for ax, case in zip(axes, cases):
        e = epochs[(epochs.dataset == case["dataset"]) & (epochs.model == case["model"])
                   & (epochs.threads == case["threads"]) & (epochs.hardware == case["hardware"])]
        _per_stack_lines(ax, e, x, y, case["rows"])
        if target and case["target"] is not None:
            ax.axhline(case["target"], color="#999", linestyle="--", linewidth=1)
            ax.text(ax.get_xlim()[0], case["target"], f" target {case['target']:g}", va="bottom", fontsize=8)
        ax.set_title(case["title"], fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if x == "epoch":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def speedup_chart(scaling: list[dict]) -> bytes:
    """Samples/s at each thread count over samples/s at the fewest, with the ideal."""
    fig, axes = _panels(len(scaling), 4.2)
    for ax, case in zip(axes, scaling):
        counts = case["threads"]
        for k, s in enumerate(case["stacks"]):
            points = [(t, v) for t, v in zip(counts, s["speedup"]) if v is not None]
            ax.plot(*zip(*points), LINE_STYLES[k // len(LANGUAGE_COLORS) % len(LINE_STYLES)], marker="o",
                    markersize=3, color=LANGUAGE_COLORS.get(s["language"], "#888"), label=s["stack"])
        ax.plot(counts, [t / counts[0] for t in counts], color="#999", linestyle="--", label="ideal")
        ax.set_xticks(counts)
        ax.set_title(case["title"], fontsize=9)
        ax.set_xlabel("threads")
        ax.set_ylabel(f"samples/s over samples/s at {counts[0]} thread(s)")
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Thread scaling: speed-up of the median steady samples/s", fontsize=11)
    return _png(fig)


def bar_chart(cases: list[dict], column: str, title: str, xlabel: str) -> bytes:
    fig, axes = _panels(len(cases), 0.42 * max(len(c["rows"]) for c in cases) + 1.6)
    for ax, case in zip(axes, cases):
        rows = case["rows"][::-1]
        values = [r[column] or 0.0 for r in rows]
        ax.barh([r["stack"] for r in rows], values, color=[_color(r) for r in rows])
        for i, v in enumerate(values):
            ax.text(v, i, f" {_fmt(v)}", va="center", fontsize=8)
        ax.set_title(case["title"], fontsize=9)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.2)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


#: A stack whose step takes longer than this times the fastest's gets its cause stated.
GAP = 1.5


def profile_cases(profiles: pd.DataFrame, summary: pd.DataFrame, title) -> list[dict]:
    """Per (data set, model): each profiled stack's step by category (ms), fastest
    unprofiled step first, its time over the fastest's, and the profiles that did not
    measure. Stacks over GAP times the fastest are listed with their kernel notes (the
    causes the stacks state, docs/profile.md), beside the breakdown that backs them."""
    notes = {(r["dataset"], r["model"], r["stack"], r["threads"]): r["kernel_notes"]
             for r in summary.to_dict("records")}
    cases = []
    for (dataset, model), g in profiles.groupby(["dataset", "model"], sort=True):
        ok = g[g.status == "ok"].sort_values("unprofiled_step_seconds")
        fastest = ok.unprofiled_step_seconds.min() if len(ok) else None
        rows = [{**r, "ms": {c: 1e3 * (r[f"{c}_seconds"] or 0.0) for c in PROFILE_COLORS},
                 "profiler_cost": r["profiled_step_seconds"] / r["unprofiled_step_seconds"] - 1,
                 "vs_fastest": r["unprofiled_step_seconds"] / fastest,
                 "kernel_notes": notes.get((dataset, model, r["stack"], r["threads"]))}
                for r in ok.to_dict("records")]
        cases.append({"dataset": dataset, "model": model, "title": title(dataset, model, int(g.threads.iloc[0]), None),
                      "rows": rows, "gaps": [r for r in rows if r["vs_fastest"] > GAP],
                      "problems": g[g.status != "ok"].to_dict("records")})
    return cases


def profile_chart(cases: list[dict]) -> bytes:
    """Stacked bars: where one profiled step's time goes, per stack."""
    cases = [c for c in cases if c["rows"]]
    fig, axes = _panels(len(cases), 0.42 * max(len(c["rows"]) for c in cases) + 2.0)
    for ax, case in zip(axes, cases):
        rows = case["rows"][::-1]
        left = [0.0] * len(rows)
        for category, color in PROFILE_COLORS.items():
            width = [r["ms"][category] for r in rows]
            ax.barh([r["stack"] for r in rows], width, left=left, color=color, label=category)
            left = [a + b for a, b in zip(left, width)]
        ax.set_title(case["title"], fontsize=9)
        ax.set_xlabel("milliseconds per profiled step")
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.12))  # below: bars fill the panel
    fig.suptitle("Where a step's time goes (framework profilers, docs/profile.md)", fontsize=11)
    return _png(fig)


def _nan_none(records: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]


def inference_cases(inference: pd.DataFrame, title) -> list[dict]:
    """Per (data set, model) and batch size: every engine x stack row, fastest median
    call first, its time over the fastest's, ties (overlapping intervals) marked; the
    rows that did not measure apart."""
    cases = []
    for (dataset, model), g in inference.groupby(["dataset", "model"], sort=True):
        ok = g[g.status == "ok"]
        batches = []
        for batch_size, b in ok.groupby("batch_size", sort=True):
            rows = _nan_none(b.sort_values("latency_ms_median").to_dict("records"))
            fastest = rows[0]
            for r in rows:
                r["vs_fastest"] = r["latency_ms_median"] / fastest["latency_ms_median"]
                r["tie"] = r is not fastest and r["latency_ms_ci_low"] <= fastest["latency_ms_ci_high"]
            batches.append({"batch_size": int(batch_size), "rows": rows, "fastest": fastest})
        cases.append({"dataset": dataset, "model": model, "title": title(dataset, model, int(g.threads.iloc[0]), None),
                      "batches": batches, "problems": _nan_none(g[g.status != "ok"].to_dict("records"))})
    return cases


ENGINE_COLORS = {"native": "#4e79a7", "onnxruntime": "#f28e2b", "openvino": "#59a14f", "openvino-bf16": "#8cd17d"}


def inference_chart(cases: list[dict]) -> bytes:
    """Median call with its 95 % interval per engine and stack, one panel per (case,
    batch size): batch 1 is latency, the largest batch throughput. Bars are coloured by
    engine, which every label names too."""
    panels = [(c, b) for c in cases for b in c["batches"]]
    cols = max(len(c["batches"]) for c in cases)
    height = 0.3 * max(len(b["rows"]) for _, b in panels) + 1.6
    fig, axes = plt.subplots(len(cases), cols, figsize=(6.2 * cols, height * len(cases)), squeeze=False)
    for i, case in enumerate(cases):
        for j, batch in enumerate(case["batches"]):
            ax, rows = axes[i][j], batch["rows"][::-1]
            med = [r["latency_ms_median"] for r in rows]
            err = [[m - r["latency_ms_ci_low"] for m, r in zip(med, rows)],
                   [r["latency_ms_ci_high"] - m for m, r in zip(med, rows)]]
            ax.barh(range(len(rows)), med, xerr=err, color=[ENGINE_COLORS[r["engine"]] for r in rows], capsize=2)
            ax.set_yticks(range(len(rows)), [f"{r['stack']} · {r['engine']}" for r in rows], fontsize=7)
            ax.set_xscale("log")
            ax.set_title(f"{case['title']}, batch {batch['batch_size']}", fontsize=9)
            ax.set_xlabel("median ms per call, 95 % interval (log scale; lower is better)")
        for j in range(len(case["batches"]), cols):
            axes[i][j].axis("off")
    return _png(fig)  # no suptitle: tight_layout would lay it over the first panels' titles


def crosseval_cases(crosseval: pd.DataFrame, title, threads) -> list[dict]:
    """Per (data set, model): the trained-by x evaluated-by matrices of agreement and
    accuracy, the lowest off-diagonal agreement and the cells below the tolerance or
    not computed."""
    cases = []
    for (dataset, model), g in crosseval.groupby(["dataset", "model"], sort=True):
        stacks = sorted(set(g.trained_by) | set(g.evaluated_by))
        cells = {(r["trained_by"], r["evaluated_by"]): r for r in _nan_none(g.to_dict("records"))}
        off = [r for (t, e), r in cells.items() if t != e and r["status"] == "ok" and r["agreement"] is not None]
        cases.append({"dataset": dataset, "model": model, "title": title(dataset, model, threads, None),
                      "stacks": stacks, "cells": cells,
                      "lowest": min(off, key=lambda r: r["agreement"]) if off else None,
                      "max_rel_logit_diff": max((r["max_rel_logit_diff"] for r in off), default=None),
                      "below": [r for r in off if r["agreement"] < AGREEMENT_TOLERANCE],
                      "missing": [r for r in cells.values() if r["status"] != "ok"]})
    return cases


def crosseval_chart(cases: list[dict]) -> bytes:
    """Heat maps of the agreement of each (trained by, evaluated by) cell with the
    training stack's own predictions."""
    fig, axes = _panels(len(cases), 0.42 * max(len(c["stacks"]) for c in cases) + 2.4)
    for ax, case in zip(axes, cases):
        n = len(case["stacks"])
        grid = [[(case["cells"].get((t, e)) or {}).get("agreement") for e in case["stacks"]] for t in case["stacks"]]
        values = [[math.nan if v is None else 100 * v for v in row] for row in grid]
        image = ax.imshow(values, cmap="viridis", vmin=100 * AGREEMENT_TOLERANCE - 0.5, vmax=100)
        for i in range(n):
            for j in range(n):
                v = values[i][j]
                ax.text(j, i, "–" if math.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if not math.isnan(v) and v < 99.75 else "black")
        ax.set_xticks(range(n), case["stacks"], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n), case["stacks"], fontsize=7)
        ax.set_xlabel("evaluated by")
        ax.set_ylabel("trained by")
        ax.set_title(case["title"], fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8, label="% of test predictions agreeing")
    fig.suptitle("Cross-evaluation: each stack's trained weights in every stack (docs/inference.md)", fontsize=11)
    return _png(fig)


def headline_sentences(rows: list[dict]) -> list[str]:
    """What a user came for, from one (data set, model, threads, hardware) case's ranked rows:
    the fastest stack and its ties, each other language's fastest stack against the
    fastest Python stack, and each stack against its Python twin. Overlapping intervals
    are stated as ties, never as an order."""
    ok = [r for r in rows if r["steady_epoch_seconds_median"] is not None]
    if not ok:
        return []
    fastest = ok[0]  # rows come sorted as the aggregation ranked them
    ties = [r for r in ok if r["tie_with_fastest"]]
    out = [f"Fastest: {fastest['stack']} at {_interval(fastest, 'steady_epoch_seconds', suffix=' s')} per epoch"
           + ("; indistinguishable from it (intervals overlap): "
              + ", ".join(f"{r['stack']} ({_ratio(r, 'fastest')})" for r in ties) if ties else "") + "."]
    python = fastest.get("fastest_python_stack")
    for language in sorted({r["language"] for r in ok} - {"python"}) if python else ():
        best = next(r for r in ok if r["language"] == language)
        name = f"{LANGUAGE_NAMES.get(language, language)} ({best['stack']}, its fastest stack)"
        out.append(f"On this machine, {name} is indistinguishable from the fastest Python stack, {python}: "
                   f"{_ratio(best, 'fastest_python')}." if best["tie_with_fastest_python"] else
                   f"On this machine, {name} costs {_ratio(best, 'fastest_python')} the time of the fastest "
                   f"Python stack, {python}.")
    for r in ok:
        if r.get("python_twin"):
            through = f"{r['stack']} ({LANGUAGE_NAMES.get(r['language'], r['language'])} through {r['framework']})"
            out.append(f"{through} is indistinguishable from its Python twin {r['python_twin']}: "
                       f"{_ratio(r, 'python_twin')}." if r["tie_with_python_twin"] else
                       f"{through} costs {_ratio(r, 'python_twin')} the time of its Python twin {r['python_twin']}.")
    return out


def noise_flags(summary: pd.DataFrame, noise: pd.DataFrame) -> list[str]:
    """Every sign that the machine was not quiet, with what it means."""
    flags = []
    for r in noise.to_dict("records"):
        if r["drifting"]:
            flags.append(f"The float32 GEMM rate of {r['hardware']} at {r['threads']} thread(s) moved by "
                         f"{r['drift']:.0%} during the study (medians of {r['windows']} windows of consecutive "
                         f"probes from {r['min_window_gflops']:.0f} to {r['max_window_gflops']:.0f} GFLOP/s; "
                         f"start {r['start_gflops']:.0f}, end {r['end_gflops']:.0f}): something else used the "
                         f"CPU for a while, or its clock changed. Runs made at different times are not "
                         f"comparable to better than that; rerun on a quiet machine. Runs in the slowest "
                         f"window: {r['slowest_window_runs'].replace(';', ', ')}.")
    single = summary[(summary.status == "ok") & (summary.repeats.fillna(0).astype(int) < 2)]
    if len(single):
        flags.append(f"{len(single)} of {len(summary)} figures rest on a single repeat: their intervals show at "
                     f"most the spread of one process's epochs, not the run-to-run spread that decides a "
                     f"ranking, so read ratios and ties among them as indicative. Set repeats: 3 or more to "
                     f"compare stacks.")
    for r in summary[summary.noisy.astype(bool)].to_dict("records"):
        flags.append(f"{r['stack']} ({r['model']} on {r['dataset']}, {r['threads']} threads, {r['hardware']}): its steady "
                     f"epochs vary by {r['steady_epoch_seconds_cv']:.0%} (coefficient of variation over "
                     f"{r['steady_epochs']} epochs of {r['repeats']} repeats; epochs from "
                     f"{r['steady_epoch_seconds_min']:.3g} to {r['steady_epoch_seconds_max']:.3g} s). Its "
                     f"interval is wide accordingly; differences inside it are noise.")
    return flags


def _read(path: Path) -> pd.DataFrame:
    """A table with None for missing values; whole-number columns stay whole numbers
    where some rows have none (unreadable records have no repeat)."""
    df = pd.read_csv(path, dtype={"threads": "Int64", "repeat": "Int64", "repeats": "Int64", "rank": "Int64"})
    return df.astype(object).where(df.notna(), None)


def _environments(env_manifests: Iterable[Path]) -> list[dict]:
    """Each environment with the versions of the packages the stacks name as their
    framework or backend (and NumPy)."""
    wanted = {"numpy"} | {s.framework for s in STACKS.values()} | {s.backend for s in STACKS.values() if s.backend}
    envs = []
    for path in env_manifests:
        info = json.loads(Path(path).read_text())
        pkgs = [p for p in info.get("packages", []) if p.split("==")[0].lower().startswith(tuple(wanted))]
        envs.append({"env": info["env"], "status": info["status"],
                     "reason": info.get("reason") or info.get("update_failed"),
                     "python": info.get("python_version"), "packages": ", ".join(pkgs),
                     "lock": Path(info["lock"]).name if info.get("lock") else None,
                     "lock_sha256": info.get("lock_sha256"), "installer": info.get("installer")})
    return envs


def retry_command(row: dict, cores) -> str:
    """The command that makes a skipped or failed run again (rules/common.smk retries
    it on a plain run too, once its cause may have gone)."""
    return f"snakemake --cores {cores} {row['record_file']}"


def scaling_cases(summary: pd.DataFrame, title) -> list[dict]:
    """Per (data set, model, hardware), each stack's median samples/s at every thread
    count, its speed-up over the fewest threads and the parallel efficiency at the most."""
    counts = sorted(summary.threads.dropna().unique())
    if len(counts) < 2:
        return []
    cases = []
    for (dataset, model, kind), g in summary.groupby(["dataset", "model", "hardware"], sort=True):
        stacks = []
        for stack, s in g.groupby("stack", sort=False):
            sps = dict(zip(s.threads, s.steady_samples_per_second_median))
            base = sps.get(counts[0])
            speedup = [sps[t] / base if base and sps.get(t) else None for t in counts]
            stacks.append({"stack": stack, "language": s.language.iloc[0],
                           "samples_per_second": [sps.get(t) for t in counts], "speedup": speedup,
                           "efficiency": (speedup[-1] / (counts[-1] / counts[0]) if speedup[-1] else None)})
        cases.append({"dataset": dataset, "model": model, "hardware": kind, "threads": [int(t) for t in counts],
                      "stacks": stacks, "title": title(dataset, model, None, kind)})
    return cases


def render_report(tables: Path, machine_json: Path, config: dict, env_manifests: Iterable[Path],
                  html_path: Path, markdown_path: Path, plots_dir: Path, profiles_csv: Path | None = None,
                  inference_csvs: tuple[Path, Path] | None = None) -> None:
    """`inference_csvs`: the inference table and the cross-evaluation matrix, when the
    study measured inference."""
    summary, runs = _read(tables / "summary.csv"), _read(tables / "runs.csv")
    epochs, noise = pd.read_csv(tables / "epochs.csv"), _read(tables / "noise.csv")
    machine = json.loads(Path(machine_json).read_text())
    main_threads = int(summary.threads.max()) if len(summary) else None
    kinds = sorted(summary.hardware.unique())

    def title(dataset, model, threads, kind) -> str:
        """A case's name; the hardware is named only where the study ran on several kinds."""
        return (f"{model} on {dataset}" + (f", {threads} threads" if threads else "")
                + (f", {kind}" if len(kinds) > 1 else ""))

    # Tables per (data set, model, threads, hardware), fastest first (aggregate sorted them).
    tables_ = [{"dataset": d, "model": m, "threads": int(t), "hardware": k, "title": title(d, m, int(t), k),
                "target": g.target_accuracy.iloc[0], "rows": g.to_dict("records")}
               for (d, m, t, k), g in summary.groupby(["dataset", "model", "threads", "hardware"], sort=True)]
    cases = [t for t in tables_ if t["threads"] == main_threads]
    ceilings = machine.get("gemm_shapes", {})
    for t in tables_:
        t["sentences"] = headline_sentences(t["rows"])
        ceiling = ceilings.get(f"{t['dataset']}/{t['model']}")
        for r in t["rows"]:  # the shape-matched ceiling was measured at the machine probe's threads
            r["shape_gemm_fraction"] = (r["train_gflops"] / ceiling["gflops"] if ceiling and r["train_gflops"]
                                        and t["threads"] == machine.get("threads") else None)
    measured = [{**c, "rows": [r for r in c["rows"] if r["steady_epoch_seconds_median"] is not None]}
                for c in cases]
    measured = [c for c in measured if c["rows"]]
    charts = []
    plots_dir.mkdir(parents=True, exist_ok=True)  # a study with no ok run has no chart, and the folder is an output

    def add(name: str, title: str, png: bytes) -> None:
        (plots_dir / f"{name}.png").write_bytes(png)
        charts.append({"name": name, "title": title, "data": base64.b64encode(png).decode()})

    scaling = scaling_cases(summary[summary.status == "ok"], title)
    if measured:
        add("headline", "Median steady seconds per epoch with 95 % intervals", headline_chart(measured))
        add("loss_per_epoch", "Training loss per epoch", epochs_chart(
            measured, epochs, "epoch", "train_loss", "epoch", "mean training loss",
            "Training loss per epoch (median over repeats): the stacks learn alike"))
        add("time_to_accuracy", "Test accuracy against training seconds", epochs_chart(
            measured, epochs, "cumulative_seconds", "test_accuracy", "cumulative training seconds (warm-up included)",
            "test accuracy", "Test accuracy after each epoch against training time (median over repeats)",
            target=True))
        if scaling:
            add("speedup", "Thread scaling", speedup_chart(scaling))
        for column, chart_title, xlabel in BAR_CHARTS:  # not `title`: that names the cases
            add(column, chart_title, bar_chart(measured, column, chart_title, xlabel))
    profiled = profile_cases(_read(profiles_csv), summary, title) if profiles_csv else []
    if any(c["rows"] for c in profiled):
        add("profile", "Where a step's time goes", profile_chart(profiled))
    inference_threads = None
    inferred, crossed = [], []
    if inference_csvs:
        inference, crosseval = _read(inference_csvs[0]), _read(inference_csvs[1])
        inference_threads = int(inference.threads.max()) if len(inference) else None
        inferred = inference_cases(inference, title) if len(inference) else []
        crossed = crosseval_cases(crosseval, title, inference_threads) if len(crosseval) else []
    if crossed:
        add("crosseval", "Cross-evaluation agreement", crosseval_chart(crossed))
    if any(c["batches"] for c in inferred):
        add("inference", "Inference time per call", inference_chart([c for c in inferred if c["batches"]]))
    belongs = runs.belongs.astype(bool)
    problems = [{**r, "retry": retry_command(r, main_threads or 1)}
                for r in runs[belongs & (runs.status != "ok")].to_dict("records")]
    stacks = [{"id": s.id, "language": s.language, "framework": s.framework, "backend": s.backend,
               "description": s.description, "folder": str(s.folder.relative_to(REPO))}
              for s in STACKS.values() if s.id in set(summary["stack"])]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["interval"] = _interval
    env.filters["ratio"] = _ratio
    context = {"tables": tables_, "main_threads": main_threads, "problems": problems, "stacks": stacks,
               "charts": {c["name"]: c for c in charts}, "machine": machine, "scaling": scaling,
               "flags": noise_flags(summary, noise), "noise": noise.to_dict("records"),
               "apart": runs[~belongs].to_dict("records"),
               "config": config, "config_text": json.dumps(config, indent=2),
               "envs": _environments(env_manifests), "noisy_cv": NOISY_CV, "drift_limit": DRIFT_LIMIT,
               "counts": runs[belongs].status.value_counts().to_dict(), "groups": len(summary),
               "hardware_kinds": kinds, "profiles": profiled, "profile_categories": list(PROFILE_COLORS),
               "ceilings": ceilings, "gap": GAP, "inference": inferred, "crosseval": crossed,
               "agreement_tolerance": AGREEMENT_TOLERANCE, "inference_config": config.get("inference", {}),
               "repeats": config.get("repeats")}
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(env.get_template("index.html.j2").render(**context))
    markdown_path.write_text(env.get_template("summary.md.j2").render(**context))
