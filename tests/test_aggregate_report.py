"""Aggregation derives the comparisons; the report renders every row, offline."""
import json

import pandas as pd
import pytest

from dlrosetta.aggregate import write_summary
from dlrosetta.models.spec import model_spec
from dlrosetta.record import Record
from dlrosetta.report import render_report
from conftest import TINY_RESNET, TRAINING

HP = {"model": TINY_RESNET, "training": TRAINING["resnet"]}


def record(stack, language, framework, backend, epochs, status="ok", reason=None):
    common = dict(stack=stack, language=language, framework=framework, backend=backend, model="resnet",
                  dataset="tiny", hyperparameters=HP, threads=2, seed=0, device="cpu")
    if status != "ok":
        return Record(status=status, reason=reason, **common)
    return Record(status="ok", language_version="1", framework_version="9.9", shards_sha256="c" * 64,
                  parameter_count=123, train_loss_per_epoch=[2.0] * len(epochs), final_train_loss=2.0,
                  test_accuracy=0.5, eval_seconds=0.1, startup_seconds=1.0, peak_rss_mb=300.0,
                  **Record.timing_fields(epochs, 1000), **common)


@pytest.fixture
def study(tmp_path):
    recs = [record("pytorch", "python", "torch", None, [5.0, 2.0, 2.0]),
            record("keras-tensorflow", "python", "keras", "tensorflow", [9.0, 4.0, 4.0]),
            record("r-keras", "r", "keras", "tensorflow", [9.0, 5.0, 5.0]),
            record("julia-native", "julia", "julia-native", None, [30.0, 3.0, 3.0]),
            record("keras-jax", "python", "keras", "jax", [], "skipped", "jax is not installed"),
            record("tensorflow", "python", "tensorflow", None, [], "failed", "exit code 1; log tail:\nBoom")]
    paths = []
    for r in recs:
        r.write(tmp_path / "records" / f"{r.stack}.json")
        paths.append(tmp_path / "records" / f"{r.stack}.json")
    machine = tmp_path / "machine.json"
    machine.write_text(json.dumps({"cpu_model": "Test CPU", "logical_cores": 2, "memory_gib": 1.0,
                                   "os": "Linux", "python": "3.11", "numpy": "2", "blas": "openblas",
                                   "threads": 2, "gemm_n": 64, "gemm_float32_gflops": 100.0,
                                   "r": None, "julia": None}))
    df = write_summary(paths, machine, tmp_path / "summary.csv", tmp_path / "summary.parquet")
    return tmp_path, df.set_index("stack")


def test_summary_derives_ratios(study):
    tmp_path, df = study
    assert len(df) == 6
    assert df.loc["pytorch", "vs_fastest_python"] == pytest.approx(1.0)
    assert df.loc["julia-native", "vs_fastest_python"] == pytest.approx(1.5)
    assert df.loc["julia-native", "fastest_python_stack"] == "pytorch"
    # R's Keras against Python's Keras on the same backend: 1000/5 over 1000/4 samples/s.
    assert df.loc["r-keras", "python_twin"] == "keras-tensorflow"
    assert df.loc["r-keras", "vs_python_twin_speed"] == pytest.approx(0.8)
    assert pd.isna(df.loc["julia-native", "python_twin"])
    flops = model_spec("resnet", TINY_RESNET).train_flops_per_sample
    assert df.loc["pytorch", "train_gflops"] == pytest.approx(500 * flops / 1e9)
    assert df.loc["pytorch", "gemm_fraction"] == pytest.approx(500 * flops / 1e9 / 100.0)
    assert df.loc["keras-jax", "status"] == "skipped" and pd.isna(df.loc["keras-jax", "steady_epoch_seconds"])
    assert pd.read_parquet(tmp_path / "summary.parquet").shape == pd.read_csv(tmp_path / "summary.csv").shape


def test_report_renders_every_row_and_embeds_charts(study):
    tmp_path, _ = study
    env = tmp_path / "torch-env.json"
    env.write_text(json.dumps({"env": "torch", "status": "ok", "python_version": "3.11.7",
                               "packages": ["torch==2.13.0", "numpy==2.4.6", "filelock==3"]}))
    html, md, plots = tmp_path / "r" / "index.html", tmp_path / "r" / "summary.md", tmp_path / "r" / "plots"
    render_report(tmp_path / "summary.csv", tmp_path / "machine.json", {"threads": 2, "initial_weights": "shared"},
                  [env], html, md, plots)
    page = html.read_text()
    for stack in ("pytorch", "keras-tensorflow", "r-keras", "julia-native", "keras-jax", "tensorflow"):
        assert stack in page and f"| {stack} |" in md.read_text()
    assert "jax is not installed" in page and "Boom" in page
    assert page.count("data:image/png;base64,") == len(list(plots.glob("*.png"))) >= 5
    assert "http://" not in page and "https://" not in page  # self-contained, works offline
    assert "Test CPU" in page and "torch==2.13.0" in page and "filelock" not in page
    assert "vs keras-tensorflow" in page
