"""Render the comparison report: a self-contained HTML page (charts embedded, works
offline) and a Markdown summary, from the templates in report/ at the repo root."""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Iterable

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dlrosetta.registry import REPO, STACKS  # noqa: E402

TEMPLATES = REPO / "report"
STATUS_COLORS = {"skipped": "#bbbbbb", "failed": "#d62728"}  # ok bars take their language's colour
LANGUAGE_COLORS = {"python": "#2b7bba", "r": "#7b3294", "julia": "#1a9850"}

#: (column, chart title, x-axis label): one horizontal bar chart per metric.
CHARTS = [
    ("steady_epoch_seconds", "Steady seconds per epoch (lower is better)", "seconds"),
    ("steady_samples_per_second", "Steady training samples per second", "samples / s"),
    ("warmup_epoch_seconds", "First epoch: warm-up and compilation", "seconds"),
    ("gemm_fraction", "Achieved training FLOP/s as a fraction of float32 GEMM", "fraction"),
    ("peak_rss_mb", "Peak resident memory", "MiB"),
    ("test_accuracy", "Test accuracy after training", "accuracy"),
]


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _chart(df: pd.DataFrame, column: str, title: str, xlabel: str) -> tuple[bytes, str]:
    groups = list(df.groupby(["dataset", "model"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 0.45 * max(
        len(g) for _, g in groups) + 1.6), squeeze=False)
    for ax, ((dataset, model), g) in zip(axes[0], groups):
        g = g.sort_values("stack", ascending=False)
        values = pd.to_numeric(g[column], errors="coerce").fillna(0.0)
        colors = [LANGUAGE_COLORS.get(lang, "#888") if s == "ok" else STATUS_COLORS[s]
                  for lang, s in zip(g["language"], g["status"])]
        ax.barh(g["stack"].tolist(), values.tolist(), color=colors)
        for y, (v, s) in enumerate(zip(values, g["status"])):
            ax.text(v, y, f" {_fmt(v)}" if s == "ok" else f" {s}", va="center", fontsize=8)
        ax.set_title(f"{model} on {dataset}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.margins(x=0.25)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, pil_kwargs={"compress_level": 1})  # fast; the HTML holds them once
    plt.close(fig)
    return buf.getvalue(), title


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
                     "python": info.get("python_version"), "packages": ", ".join(pkgs)})
    return envs


def retry_command(row: dict, threads) -> str:
    """The command that makes a skipped or failed run again (rules/common.smk retries
    it on a plain run too, once its cause may have gone)."""
    return f"snakemake --cores {threads} results/records/{row['dataset']}/{row['model']}/{row['stack']}.json"


def render_report(summary_csv: Path, machine_json: Path, config: dict,
                  env_manifests: Iterable[Path], html_path: Path, markdown_path: Path,
                  plots_dir: Path) -> None:
    df = pd.read_csv(summary_csv)
    df = df.astype(object).where(df.notna(), None)
    machine = json.loads(Path(machine_json).read_text())
    plots_dir.mkdir(parents=True, exist_ok=True)
    charts = []
    for column, title, xlabel in CHARTS:
        png, title = _chart(df[df.belongs.astype(bool)], column, title, xlabel)
        (plots_dir / f"{column}.png").write_bytes(png)
        charts.append({"title": title, "file": f"plots/{column}.png",
                       "data": base64.b64encode(png).decode()})
    belongs = df.belongs.astype(bool)
    tables = [{"dataset": d, "model": m, "rows": g.to_dict("records")}
              for (d, m), g in df[belongs].groupby(["dataset", "model"], sort=True)]
    apart = df[~belongs].to_dict("records")
    problems = [{**r, "retry": retry_command(r, config.get("threads", 1))}
                for r in df[belongs & (df.status != "ok")].to_dict("records")]
    stacks = [{"id": s.id, "language": s.language, "framework": s.framework, "backend": s.backend,
               "description": s.description, "folder": str(s.folder.relative_to(REPO))}
              for s in STACKS.values() if s.id in set(df["stack"])]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    context = {"tables": tables, "apart": apart, "problems": problems, "stacks": stacks,
               "charts": charts, "machine": machine,
               "config": config, "config_text": json.dumps(config, indent=2),
               "envs": _environments(env_manifests),
               "counts": df[belongs].status.value_counts().to_dict(),
               "frameworks": sorted({(r["stack"], r["framework"], r["framework_version"], r["language_version"])
                                     for r in df.to_dict("records") if r["framework_version"]})}
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(env.get_template("index.html.j2").render(**context))
    markdown_path.write_text(env.get_template("summary.md.j2").render(**context))
