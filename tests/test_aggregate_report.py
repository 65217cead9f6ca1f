"""Aggregation derives the statistics and comparisons from crafted records; the report
renders them, flags noise, states ties as ties, and fits a 1400 px wide window."""
import hashlib
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from dlrosetta.aggregate import time_to_target, write_summary
from dlrosetta.model_spec import model_spec
from dlrosetta.record import Record
from dlrosetta.profile import CATEGORIES, ProfileRecord, write_profile_table
from dlrosetta.report import render_report
from conftest import TINY_RESNET, TRAINING

HP = {"model": TINY_RESNET, "training": TRAINING["resnet"]}
CODE = "d" * 64
SAMPLES = 1000
#: Steady epochs per repeat: py-torch and jl-native overlap (a tie); py-mx's third
#: repeat is three times slower than its others (noisy).
STEADY = {
    "py-torch": [[2.00, 2.02, 1.98], [2.01, 1.99, 2.00], [2.02, 2.00, 1.99]],
    "jl-native": [[2.01, 1.97, 2.03], [2.00, 2.02, 1.98], [1.99, 2.01, 2.00]],
    "py-keras-tf": [[4.00, 4.04, 3.96], [4.02, 3.98, 4.00], [4.01, 3.99, 4.00]],
    "r-keras-tf": [[5.00, 5.05, 4.95], [5.02, 4.98, 5.00], [5.01, 4.99, 5.00]],
    "py-mx": [[2.50, 2.52, 2.48], [2.51, 2.49, 2.50], [7.50, 7.56, 7.44]],
    "r-mx": [[2.60, 2.62, 2.58], [2.61, 2.59, 2.60], [2.60, 2.60, 2.60]],
}
STACKS = {"py-torch": ("python", "torch", None), "jl-native": ("julia", "jl-native", None),
          "py-keras-tf": ("python", "keras", "tensorflow"), "r-keras-tf": ("r", "keras", "tensorflow"),
          "py-mx": ("python", "mxnet", None), "r-mx": ("r", "mxnet", None),
          "py-keras-jax": ("python", "keras", "jax"), "py-tf": ("python", "tensorflow", None),
          "py-keras-torch": ("python", "keras", "torch")}
ACCURACY = [0.3, 0.6, 0.8, 0.9]
MACHINE = {"cpu_model": "Test CPU", "logical_cores": 2, "memory_gib": 1.0, "os": "Linux", "python": "3.11",
           "numpy": "2", "blas": "openblas", "threads": 2, "gemm_n": 64, "gemm_float32_gflops": 100.0,
           "r": None, "julia": None}


def record(stack, epochs=(), repeat=1, status="ok", reason=None, gemm=(100.0, 100.0), **changes):
    language, framework, backend = STACKS[stack]
    common = dict(stack=stack, language=language, framework=framework, backend=backend, model="resnet",
                  dataset="tiny", hyperparameters=HP, threads=2, seed=0, device="cpu", host_cpu="Test CPU",
                  stack_code_sha256=CODE, repeat=repeat, gemm_float32_gflops_before=gemm[0],
                  gemm_float32_gflops_after=gemm[1])
    common.update(changes)
    if status != "ok":
        return Record(status=status, reason=reason, **common)
    return Record(status="ok", language_version="1", framework_version="9.9", shards_sha256="c" * 64,
                  parameter_count=123, train_loss_per_epoch=[2.0, 1.5, 1.2, 1.0], final_train_loss=1.0,
                  test_accuracy=ACCURACY[-1], test_accuracy_per_epoch=ACCURACY, eval_seconds=0.1,
                  startup_seconds=1.0, peak_rss_mb=300.0, **Record.timing_fields(list(epochs), SAMPLES), **common)


def build(tmp_path, last_round_gflops=None, blip_gflops=None):
    """Records of a study, round by round, on a machine whose GEMM rate reads 100 GFLOP/s;
    with `last_round_gflops`, the whole last round reads that instead (a sustained
    change); with `blip_gflops`, one probe in the middle does (a blip)."""
    recs = [record("py-keras-jax", status="skipped", reason="jax is not installed", gemm=(None, None)),
            record("py-tf", status="failed",
                   reason="exit code 1; log tail:\n$ python -m dlrosetta.stacks.tensorflow spec.json\n"
                          "Traceback (most recent call last):\nValueError: Boom\n  (more context)"),
            # Foreign: 8 threads; would otherwise be the fastest.
            record("py-keras-torch", [1.0, 0.5, 0.5, 0.5], threads=8)]
    for repeat in (1, 2, 3):
        gemm = (last_round_gflops,) * 2 if repeat == 3 and last_round_gflops else (100.0, 100.0)
        for stack, steady in STEADY.items():
            recs.append(record(stack, [6.0, *steady[repeat - 1]], repeat, gemm=gemm))
    if blip_gflops is not None:
        recs[10] = recs[10].replace(gemm_float32_gflops_after=blip_gflops)
    shards = tmp_path / "shards.json"
    shards.write_text("{}")
    sha = hashlib.sha256(shards.read_bytes()).hexdigest()
    paths, plan = [], {}
    for i, r in enumerate(recs):
        r = r.replace(created_at=f"2026-11-30T10:{i // 60:02d}:{i % 60:02d}+00:00")
        if r.status == "ok":
            r = r.replace(shards_sha256=sha)
        path = tmp_path / "records" / "tiny" / "resnet" / r.stack / "threads2" / f"repeat{r.repeat}.json"
        r.write(path)
        paths.append(path)
        plan[str(path)] = {"threads": 2, "seed": 0, "model_config": TINY_RESNET, "training": TRAINING["resnet"],
                           "shards": str(shards), "stack_code_sha256": CODE}
    old = tmp_path / "records" / "tiny" / "resnet" / "py-tf-old" / "threads2" / "repeat1.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({**recs[-1].to_dict(), "schema_version": "1.0.0"}))
    paths.append(old)
    tables = write_summary(paths, tmp_path / "tables", plan, {"tiny": 0.75})
    return tmp_path, tables


def profiles_table(tmp_path):
    """A profiles table: py-torch's step mostly convolution, jl-native's failed."""
    common = dict(language="python", framework="torch", backend=None, model="resnet", dataset="tiny", threads=2,
                  device="cpu", batch_size=16)
    ok = ProfileRecord(status="ok", stack="py-torch", profiler="torch.profiler", steps=10,
                       unprofiled_step_seconds=0.08, profiled_step_seconds=0.1,
                       step_seconds_by_category={**dict.fromkeys(CATEGORIES, 0.005), "conv_gemm": 0.065},
                       top_ops=[{"name": "aten::mkldnn_convolution", "category": "conv_gemm", "seconds_per_step": 0.05}],
                       **common)
    # Real-length strings, for the layout test: MXNet's profiler names its settings.
    slow = ok.replace(stack="py-mx", framework="mxnet", unprofiled_step_seconds=0.2, profiled_step_seconds=0.25,
                      profiler="mx.profiler (mxnet 1.9.1; MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_BWD=0; "
                               "MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_FWD=0)",
                      top_ops=[{"name": f"autograd::engine::evaluate_function: ConvolutionBackward{i}",
                                "category": "conv_gemm", "seconds_per_step": 0.01} for i in range(3)])
    failed = ProfileRecord(status="failed", stack="jl-native", reason="exit code 1; the profiler broke",
                           **{**common, "language": "julia", "framework": "jl-native"})
    paths = []
    for r in (ok, slow, failed):
        r.write(tmp_path / "profiles" / f"{r.stack}.json")
        paths.append(tmp_path / "profiles" / f"{r.stack}.json")
    write_profile_table(paths, tmp_path / "profiles.csv")
    return tmp_path / "profiles.csv"


#: The machine probe's shape-matched ceiling of the tiny ResNet: 50 GFLOP/s.
SHAPES = {"tiny/resnet": {"model": "resnet", "batch_size": 16, "threads": 2, "gflops": 50.0, "gemm_gflop_per_step": 0.1,
                          "gemms": [{"name": "stem conv forward", "m": 4, "n": 16384, "k": 27, "count": 1,
                                     "gflops": 20.0}]}}


def render(tmp_path, config=None, profiles=None, machine=MACHINE):
    (tmp_path / "machine.json").write_text(json.dumps(machine))
    env = tmp_path / "torch-env.json"
    env.write_text(json.dumps({"env": "torch", "status": "ok", "python_version": "3.11.7",
                               "packages": ["torch==2.13.0", "numpy==2.4.6", "filelock==3"]}))
    out = tmp_path / "report"
    render_report(tmp_path / "tables", tmp_path / "machine.json",
                  config or {"threads": 2, "repeats": 3, "initial_weights": "shared"}, [env],
                  out / "index.html", out / "summary.md", out / "plots", profiles)
    return (out / "index.html").read_text(), (out / "summary.md").read_text(), out


@pytest.fixture
def study(tmp_path):
    return build(tmp_path)


def test_summary_has_the_statistics_over_repeats(study):
    tmp_path, tables = study
    df = tables["summary"].set_index("stack")
    for column in ("steady_epoch_seconds_median", "steady_epoch_seconds_ci_low", "steady_epoch_seconds_ci_high",
                   "steady_epoch_seconds_cv", "repeats", "steady_samples_per_second_median",
                   "steady_samples_per_second_ci_low", "steady_samples_per_second_ci_high"):
        assert column in pd.read_csv(tmp_path / "tables" / "summary.csv").columns
    torch = df.loc["py-torch"]
    assert torch.repeats == 3 and torch.steady_epochs == 9
    assert torch.steady_epoch_seconds_median == pytest.approx(2.0)
    assert torch.steady_epoch_seconds_ci_low <= 2.0 <= torch.steady_epoch_seconds_ci_high
    assert torch.steady_epoch_seconds_ci_high - torch.steady_epoch_seconds_ci_low < 0.05
    assert torch.steady_samples_per_second_median == pytest.approx(SAMPLES / 2.0)
    assert torch.warmup_epoch_seconds_median == pytest.approx(6.0)  # kept apart from the steady epochs
    flops = model_spec("resnet", TINY_RESNET).train_flops_per_sample
    assert torch.gemm_fraction == pytest.approx(SAMPLES / 2.0 * flops / 1e9 / 100.0)
    # Rows are sorted by median, fastest first.
    ok = tables["summary"][tables["summary"].status == "ok"]
    assert list(ok.steady_epoch_seconds_median) == sorted(ok.steady_epoch_seconds_median)
    assert pd.read_parquet(tmp_path / "tables" / "summary.parquet").shape == tables["summary"].shape


def test_a_three_times_slower_repeat_is_flagged_noisy(study):
    tmp_path, tables = study
    df = tables["summary"].set_index("stack")
    assert df.loc["py-mx", "noisy"] and df.loc["py-mx", "steady_epoch_seconds_cv"] > 0.10
    assert not df.loc["py-torch", "noisy"] and not df.loc["r-mx", "noisy"]
    # The slow repeat widens the interval instead of moving the median much.
    assert df.loc["py-mx", "steady_epoch_seconds_median"] == pytest.approx(2.51, abs=0.02)
    assert df.loc["py-mx", "steady_epoch_seconds_ci_high"] > 7
    html, md, _ = render(tmp_path)
    for text in (html, md):
        assert re.search(r"py-mx \(resnet on tiny, 2 threads, Test CPU\): its steady epochs vary by \d+%", text)
        assert "py-torch (resnet on tiny, 2 threads, Test CPU): its steady" not in text


def test_overlapping_intervals_are_a_tie_never_an_order(study):
    tmp_path, tables = study
    df = tables["summary"].set_index("stack")
    assert df.loc["py-torch", "steady_epoch_seconds_ci_high"] >= df.loc["jl-native", "steady_epoch_seconds_ci_low"]
    fastest = df.loc["py-torch", "fastest_stack"]
    other = "jl-native" if fastest == "py-torch" else "py-torch"
    assert df.loc[other, "tie_with_fastest"] and df.loc[fastest, "rank"] == df.loc[other, "rank"] == 1
    assert df.loc[other, "vs_fastest_ci_low"] <= 1.0 <= df.loc[other, "vs_fastest_ci_high"]
    assert other in df.loc[fastest, "indistinguishable_from"].split(";")
    # A stack slower beyond doubt is ranked behind both and is no tie.
    assert df.loc["py-keras-tf", "rank"] > 1 and not df.loc["py-keras-tf", "tie_with_fastest"]
    html, md, _ = render(tmp_path)
    for text in (html, md):
        assert f"Fastest: {fastest} at 2 s [" in text
        assert f"indistinguishable from it (intervals overlap): {other} (1.00x [" in text
        assert "On this machine, Julia (jl-native, its fastest stack) is indistinguishable from the fastest " \
               "Python stack, py-torch: 1.00x [" in text


def test_ratios_to_the_twin_and_the_fastest_python_stack_carry_intervals(study):
    _, tables = study
    df = tables["summary"].set_index("stack")
    r = df.loc["r-keras-tf"]
    assert r.python_twin == "py-keras-tf" and r.vs_python_twin == pytest.approx(1.25)
    assert r.vs_python_twin_ci_low < 1.25 < r.vs_python_twin_ci_high and not r.tie_with_python_twin
    assert r.fastest_python_stack == "py-torch" and r.vs_fastest_python == pytest.approx(2.5)
    # Twins without a backend match too, and a noisy twin makes a tie.
    assert df.loc["r-mx", "python_twin"] == "py-mx" and df.loc["r-mx", "tie_with_python_twin"]
    assert pd.isna(df.loc["jl-native", "python_twin"])
    sentences = render(study[0])[1]
    assert "r-keras-tf (R through keras) costs 1.25x [" in sentences
    assert "the time of its Python twin py-keras-tf" in sentences
    assert "r-mx (R through mxnet) is indistinguishable from its Python twin py-mx" in sentences


def test_gemm_drift_of_20_percent_is_flagged(tmp_path):
    _, tables = build(tmp_path, last_round_gflops=80.0)
    noise = tables["noise"].iloc[0]
    assert noise.drift == pytest.approx(0.2) and noise.drifting
    assert noise.start_gflops == 100.0 and noise.end_gflops == 80.0
    html, md, _ = render(tmp_path)
    for text in (html, md):
        assert "float32 GEMM rate of Test CPU at 2 thread(s) moved by 20% during the study" in text
    assert "No sign of noise" not in html and "No sign of noise" not in md


def test_a_one_probe_blip_is_no_drift_but_shows_in_its_run(tmp_path):
    _, tables = build(tmp_path, blip_gflops=60.0)
    noise = tables["noise"].iloc[0]
    assert not noise.drifting and noise.min_gflops == 60.0
    assert tables["runs"].gemm_run_drift.max() == pytest.approx(0.4)
    html, md, _ = render(tmp_path)
    assert "at 2 thread(s) moved" not in html + md
    assert "40.0 %" in html  # the run's own change, in its stack's details


def test_time_to_target_accuracy(study):
    _, tables = study
    df = tables["summary"].set_index("stack")
    # 0.8 >= 0.75 after epoch 3: warm-up 6 s + two steady epochs.
    assert df.loc["py-torch", "time_to_target_seconds_median"] == pytest.approx(10.0, abs=0.05)
    assert df.loc["py-torch", "repeats_reaching_target"] == 3
    epochs = tables["epochs"]
    torch1 = epochs[(epochs["stack"] == "py-torch") & (epochs.repeat == 1)]
    assert list(torch1.cumulative_seconds) == pytest.approx([6.0, 8.0, 10.02, 12.0])
    assert list(torch1.test_accuracy) == ACCURACY
    never = record("py-torch", [1.0, 1.0, 1.0, 1.0])
    assert time_to_target(never, 0.95) is None and time_to_target(never, None) is None


def test_foreign_and_unreadable_records_are_flagged_by_name_and_never_ranked(study):
    _, tables = study
    runs = tables["runs"].set_index("stack")
    foreign = runs.loc["py-keras-torch"]
    assert not foreign.belongs
    assert foreign.mismatch == "threads: record has 8, study has 2"
    assert "py-keras-torch" not in set(tables["summary"]["stack"])
    old = runs.loc["py-tf-old"]
    assert old.status == "unreadable" and not old.belongs
    assert "repeat1.json" in old.reason and "'1.0.0'" in old.reason


def test_figures_of_a_single_repeat_are_flagged(tmp_path):
    path = tmp_path / "records" / "one.json"
    record("py-torch", [3.0, 2.0, 2.1, 1.9], 1).write(path)
    write_summary([path], tmp_path / "tables")
    html, md, _ = render(tmp_path, {"threads": 2, "repeats": 1, "initial_weights": "shared"})
    assert "1 of 1 figures rest on a single repeat" in html and "1 of 1 figures rest on a single repeat" in md
    (tmp_path / "three").mkdir()
    assert "single repeat" not in render(build(tmp_path / "three")[0])[0]


def test_runs_on_other_hardware_are_compared_only_among_themselves(tmp_path):
    """A cluster gave some runs another CPU model, and one run a GPU: each kind of
    hardware is its own comparison, named as such."""
    recs = [record("py-torch", [3.0, 2.0, 2.0, 2.0], 1), record("jl-native", [3.0, 4.0, 4.0, 4.0], 1),
            record("py-torch", [3.0, 1.0, 1.0, 1.0], 1, host_cpu="Big CPU"),
            record("jl-native", [3.0, 1.5, 1.5, 1.5], 1, host_cpu="Big CPU"),
            record("py-torch", [3.0, 0.2, 0.2, 0.2], 1, host_cpu="Big CPU", device="gpu:0 (Some GPU)")]
    paths = []
    for k, r in enumerate(recs):
        paths.append(tmp_path / "records" / f"{k}.json")
        r.write(paths[-1])
    summary = write_summary(paths, tmp_path / "tables")["summary"]
    assert sorted(set(summary.hardware)) == ["Big CPU", "Test CPU", "gpu:0 (Some GPU) on Big CPU"]
    by = summary.set_index(["hardware", "stack"])
    assert by.loc[("Test CPU", "jl-native"), "vs_fastest"] == pytest.approx(2.0)
    assert by.loc[("Big CPU", "jl-native"), "vs_fastest"] == pytest.approx(1.5)
    assert by.loc[("Big CPU", "py-torch"), "fastest_stack"] == "py-torch"  # not the GPU run
    assert by.loc[("gpu:0 (Some GPU) on Big CPU", "py-torch"), "rank"] == 1
    html, md, _ = render(tmp_path)
    assert "Runs came from 3 kinds of hardware" in html and "Runs came from 3 kinds of hardware" in md
    assert "resnet on tiny, 2 threads, Big CPU" in html and "resnet on tiny, 2 threads, Test CPU" in md


def test_cause_is_the_error_line_not_the_command_line(study):
    _, tables = study
    df = tables["summary"].set_index("stack")
    assert df.loc["py-tf", "cause"] == "ValueError: Boom" and df.loc["py-tf", "status"] == "failed"
    assert df.loc["py-keras-jax", "cause"] == "jax is not installed"
    assert pd.isna(df.loc["py-keras-jax", "steady_epoch_seconds_median"])


def test_report_renders_every_stack_charts_and_retry_commands(study):
    tmp_path, _ = study
    html, md, out = render(tmp_path)
    for stack in STEADY:
        assert stack in html and f"| {stack} |" in md
    assert "jax is not installed" in html and "Boom" in html
    assert "**py-tf** (resnet, 2 threads, repeat 1) failed: ValueError: Boom" in md and "$ python -m" not in md
    assert "records/tiny/resnet/py-tf/threads2/repeat1.json" in md
    for chart in ("headline", "loss_per_epoch", "time_to_accuracy"):
        assert (out / "plots" / f"{chart}.png").stat().st_size > 1000
    assert html.count("data:image/png;base64,") >= 5
    assert not (out / "plots" / "speedup.png").exists()  # one thread count: no scaling chart


def test_two_thread_counts_give_the_scaling_chart_and_efficiency(tmp_path):
    recs = []
    for threads, factor in ((1, 1.0), (2, 0.6)):
        for stack in ("py-torch", "jl-native"):
            for repeat in (1, 2):
                recs.append(record(stack, [3.0, 2.0 * factor, 2.0 * factor, 2.0 * factor], repeat, threads=threads))
    paths = []
    for r in recs:
        path = tmp_path / "records" / r.stack / f"threads{r.threads}" / f"repeat{r.repeat}.json"
        r.write(path)
        paths.append(path)
    tables = write_summary(paths, tmp_path / "tables")
    assert set(tables["summary"].threads) == {1, 2}
    html, md, out = render(tmp_path, {"threads": [1, 2], "repeats": 2, "initial_weights": "shared"})
    assert (out / "plots" / "speedup.png").stat().st_size > 1000
    assert "<h2>Thread scaling</h2>" in html
    # speed-up 1/0.6 = 1.67 at 2 threads: efficiency 0.83
    assert re.search(r"<td class=\"l\">py-torch</td>.*?<td>1.67</td><td>0.83</td>", html)
    assert "| resnet on tiny | py-torch | 500 | 833 | 0.83 |" in md


def test_profiles_give_the_stacked_bars_and_the_shape_ceiling(study):
    tmp_path, tables = study
    html, md, out = render(tmp_path, profiles=profiles_table(tmp_path), machine={**MACHINE, "gemm_shapes": SHAPES})
    assert "<h2>Where a step's time goes</h2>" in html and (out / "plots" / "profile.png").stat().st_size > 1000
    # 65 ms of a 100 ms profiled step is convolution; the unprofiled step was 80 ms (profiler cost +25 %).
    assert re.search(r"<b>py-torch</b>.*?<td>80</td><td>1</td><td>100</td><td>\+25 %</td><td>65<br><small>65 %</small>",
                     html)
    assert re.search(r"<td class=\"l\">py-torch</td><td class=\"l\">aten::mkldnn_convolution \(conv_gemm, 50.0 ms\)", html)
    # py-mx's step is 2.5x py-torch's: listed with the cause its kernel notes state.
    assert re.search(r"<li><b>py-mx</b> \(2.5x\): ", html) and "<li><b>py-torch</b>" not in html
    assert "aten::mkldnn_convolution" in html and "the profiler broke" in html
    assert "| resnet on tiny, 2 threads | py-torch | 80 | 100 | 65 | 5 | 5 | 5 | 5 | 5 | 5 | 5 |" in md
    # The shape ceiling: training GFLOP/s over 50 GFLOP/s, beside the square GEMM's fraction.
    torch_row = tables["summary"].set_index("stack").loc["py-torch"]
    assert f"{torch_row.gemm_fraction:.2g}<br><small>{torch_row.train_gflops / 50:.2g}</small>" in html
    assert "What the models' own GEMM shapes allow" in html and "stem conv forward 4&times;27&times;16384" in html


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (envs/setup.sh)")
def test_report_fits_1400_px_in_headless_chromium(study):
    """The page as Chromium lays it out: nothing wider than the window."""
    tmp_path, _ = study
    _, _, out = render(tmp_path, profiles=profiles_table(tmp_path), machine={**MACHINE, "gemm_shapes": SHAPES})
    probe = out / "probe.html"
    probe.write_text((out / "index.html").read_text().replace(
        "</body>", "<script>document.title = 'W=' + document.documentElement.scrollWidth;</script></body>"))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    width = int(re.search(r"<title>W=(\d+)</title>", dom).group(1))
    assert width <= 1400
