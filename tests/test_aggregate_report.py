"""Aggregation derives the comparisons; the report renders every row, offline."""
import json

import pandas as pd
import pytest

from dlrosetta.aggregate import write_summary
from dlrosetta.model_spec import model_spec
from dlrosetta.record import Record
from dlrosetta.report import render_report
from conftest import TINY_RESNET, TRAINING

HP = {"model": TINY_RESNET, "training": TRAINING["resnet"]}


CODE = "d" * 64


def record(stack, language, framework, backend, epochs, status="ok", reason=None, **changes):
    common = dict(stack=stack, language=language, framework=framework, backend=backend, model="resnet",
                  dataset="tiny", hyperparameters=HP, threads=2, seed=0, device="cpu", host_cpu="Test CPU",
                  stack_code_sha256=CODE)
    common.update(changes)
    if status != "ok":
        return Record(status=status, reason=reason, **common)
    return Record(status="ok", language_version="1", framework_version="9.9", shards_sha256="c" * 64,
                  parameter_count=123, train_loss_per_epoch=[2.0] * len(epochs), final_train_loss=2.0,
                  test_accuracy=0.5, eval_seconds=0.1, startup_seconds=1.0, peak_rss_mb=300.0,
                  **Record.timing_fields(epochs, 1000), **common)


@pytest.fixture
def study(tmp_path):
    recs = [record("py-torch", "python", "torch", None, [5.0, 2.0, 2.0]),
            record("py-keras-tf", "python", "keras", "tensorflow", [9.0, 4.0, 4.0]),
            record("r-keras-tf", "r", "keras", "tensorflow", [9.0, 5.0, 5.0]),
            record("jl-native", "julia", "jl-native", None, [30.0, 3.0, 3.0]),
            record("py-mx", "python", "mxnet", None, [9.0, 2.5, 2.5]),
            record("r-mx", "r", "mxnet", None, [9.0, 5.0, 5.0]),
            record("py-keras-jax", "python", "keras", "jax", [], "skipped", "jax is not installed"),
            record("py-tf", "python", "tensorflow", None, [], "failed",
                   "exit code 1; log tail:\n$ python -m dlrosetta.stacks.tensorflow spec.json\n"
                   "Traceback (most recent call last):\nValueError: Boom\n  (more context)"),
            # Foreign: trained with 8 threads on another machine; would otherwise be fastest.
            record("py-keras-torch", "python", "keras", "torch", [1.0, 0.5, 0.5], threads=8, host_cpu="Big CPU")]
    shards = tmp_path / "shards.json"
    shards.write_text("{}")
    sha = __import__("hashlib").sha256(shards.read_bytes()).hexdigest()
    paths, plan = [], {}
    for r in recs:
        if r.status == "ok":
            r = r.replace(shards_sha256=sha)
        path = tmp_path / "records" / f"{r.stack}.json"
        r.write(path)
        paths.append(path)
        plan[str(path)] = {"threads": 2, "seed": 0, "model_config": TINY_RESNET, "training": TRAINING["resnet"],
                           "shards": str(shards), "stack_code_sha256": CODE}
    old = tmp_path / "records" / "py-tf-old.json"
    old.write_text(json.dumps({**recs[0].to_dict(), "schema_version": "1.0.0"}))
    paths.append(old)
    machine = tmp_path / "machine.json"
    machine.write_text(json.dumps({"cpu_model": "Test CPU", "logical_cores": 2, "memory_gib": 1.0,
                                   "os": "Linux", "python": "3.11", "numpy": "2", "blas": "openblas",
                                   "threads": 2, "gemm_n": 64, "gemm_float32_gflops": 100.0,
                                   "r": None, "julia": None}))
    df = write_summary(paths, machine, tmp_path / "summary.csv", tmp_path / "summary.parquet", plan)
    return tmp_path, df.set_index("stack")


def test_summary_derives_ratios(study):
    tmp_path, df = study
    assert len(df) == 10
    assert df.loc["py-torch", "vs_fastest_python"] == pytest.approx(1.0)
    assert df.loc["py-torch", "belongs"] and df.loc["py-torch", "fastest_python_stack"] == "py-torch"
    assert df.loc["jl-native", "vs_fastest_python"] == pytest.approx(1.5)
    assert df.loc["jl-native", "fastest_python_stack"] == "py-torch"
    # R's Keras against Python's Keras on the same backend: 1000/5 over 1000/4 samples/s.
    assert df.loc["r-keras-tf", "python_twin"] == "py-keras-tf"
    assert df.loc["r-keras-tf", "vs_python_twin_speed"] == pytest.approx(0.8)
    assert pd.isna(df.loc["jl-native", "python_twin"])
    # Twins without a backend match too: R's MXNet against Python's.
    assert df.loc["r-mx", "python_twin"] == "py-mx" and df.loc["r-mx", "vs_python_twin_speed"] == pytest.approx(0.5)
    flops = model_spec("resnet", TINY_RESNET).train_flops_per_sample
    assert df.loc["py-torch", "train_gflops"] == pytest.approx(500 * flops / 1e9)
    assert df.loc["py-torch", "gemm_fraction"] == pytest.approx(500 * flops / 1e9 / 100.0)
    assert df.loc["py-keras-jax", "status"] == "skipped" and pd.isna(df.loc["py-keras-jax", "steady_epoch_seconds"])
    assert pd.read_parquet(tmp_path / "summary.parquet").shape == pd.read_csv(tmp_path / "summary.csv").shape


def test_foreign_and_unreadable_records_are_flagged_by_name_and_never_ranked(study):
    _, df = study
    foreign = df.loc["py-keras-torch"]
    assert not foreign.belongs and pd.isna(foreign.vs_fastest_python)
    assert "threads: record has 8, study has 2" in foreign.mismatch
    assert "host_cpu: record has 'Big CPU', study has 'Test CPU'" in foreign.mismatch
    old = df.loc["py-tf-old"]
    assert old.status == "unreadable" and not old.belongs
    assert "py-tf-old.json" in old.reason and "'1.0.0'" in old.reason


def test_cause_is_the_error_line_not_the_command_line(study):
    _, df = study
    assert df.loc["py-tf", "cause"] == "ValueError: Boom"
    assert df.loc["py-keras-jax", "cause"] == "jax is not installed"


def test_report_renders_every_row_and_embeds_charts(study):
    tmp_path, _ = study
    env = tmp_path / "torch-env.json"
    env.write_text(json.dumps({"env": "torch", "status": "ok", "python_version": "3.11.7",
                               "packages": ["torch==2.13.0", "numpy==2.4.6", "filelock==3"]}))
    html, md, plots = tmp_path / "r" / "index.html", tmp_path / "r" / "summary.md", tmp_path / "r" / "plots"
    render_report(tmp_path / "summary.csv", tmp_path / "machine.json", {"threads": 2, "initial_weights": "shared"},
                  [env], html, md, plots)
    page = html.read_text()
    for stack in ("py-torch", "py-keras-tf", "r-keras-tf", "jl-native", "py-keras-jax", "py-tf"):
        assert stack in page and f"| {stack} |" in md.read_text()
    assert "jax is not installed" in page and "Boom" in page
    summary = md.read_text()
    assert "**py-tf** failed: ValueError: Boom" in summary and "$ python -m" not in summary
    assert "snakemake --cores 2 results/records/tiny/resnet/py-tf.json" in summary
    # Foreign and unreadable records are listed apart, not in the ranking tables.
    ranking, apart = summary.split("## Not compared", 1)
    assert "py-keras-torch" not in ranking and "py-keras-torch" in apart and "threads: record has 8" in apart
    assert "py-tf-old.json" in apart
    assert page.count("data:image/png;base64,") == len(list(plots.glob("*.png"))) >= 5
    assert "http://" not in page and "https://" not in page  # self-contained, works offline
    assert "Test CPU" in page and "torch==2.13.0" in page and "filelock" not in page
    assert "vs py-keras-tf" in page
