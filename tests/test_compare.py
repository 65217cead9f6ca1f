"""`dlrosetta compare`: studies made here as results directories (real record files from
the record writer, real shards manifests, machine files), differently configured, on one
page: each machine's figures as its own study gives them, the speed-ups with their
intervals, what was left out, and a refusal naming the files when the studies did not
train the same thing."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrosetta.aggregate import write_summary
from dlrosetta.checksum import sha256_file
from dlrosetta.cli import main as cli
from dlrosetta.compare import ComparisonError, compare_studies, write_comparison
from dlrosetta.record import Record
from dlrosetta.shards import write_shards
from dlrosetta.statistics import estimate, ratio, seed_of
from conftest import TINY_LSTM, TINY_RESNET

REPO = Path(__file__).resolve().parents[1]
TRAINING = {
    "resnet": {"epochs": 4, "batch_size": 16, "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}},
    "lstm": {"epochs": 4, "batch_size": 16, "optimizer": {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                                                          "beta_2": 0.999, "epsilon": 1e-8}},
}
MODEL_CONFIG = {"resnet": TINY_RESNET, "lstm": TINY_LSTM}
DATASET = {"resnet": "tiny-cifar", "lstm": "tiny-imdb"}
STACKS = {"py-torch": ("python", "torch", None), "py-jax": ("python", "jax", None),
          "jl-native": ("julia", "jl-native", None)}
#: Steady seconds per epoch on the laptop; other machines scale them.
BASE = {"resnet": {"py-torch": 2.0, "py-jax": 3.0, "jl-native": 2.5},
        "lstm": {"py-torch": 1.0, "py-jax": 1.2, "jl-native": 0.6}}
#: Each repeat's three steady epochs, relative to the base (1 % noise).
JITTER = [[1.00, 1.01, 0.99], [1.01, 0.99, 1.00], [0.99, 1.00, 1.01]]
WEIGHTS = "e" * 64


def machine_file(cpu, cores, gflops, threads=2):
    return {"cpu_model": cpu, "logical_cores": cores, "memory_gib": 16.0, "os": "Linux", "python": "3.11.7",
            "numpy": "2.4.6", "blas": "scipy-openblas 0.3", "threads": threads, "gemm_n": 2048,
            "gemm_float32_gflops": gflops, "r": None, "julia": "julia version 1.5.3"}


def shards(root, model, archive="/data/archive.tar.gz", seed=0):
    """A real (tiny) shards bundle; its manifest names where the archive was read from,
    as a real data set's does."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 24).astype(np.int32)
    x = rng.random((24, 4), dtype=np.float32)
    manifest = write_shards(root / "shards" / DATASET[model], x[:16], y[:16], x[16:], y[16:],
                            {"dataset": DATASET[model], "kind": "test", "num_classes": 2,
                             "source": {"archive": archive, "sha256": "a" * 64}})
    return sha256_file(manifest)


def record(model, stack, threads, repeat, seconds, cpu, sha, device="cpu", **changes):
    language, framework, backend = STACKS[stack]
    r = Record(status="ok", stack=stack, language=language, framework=framework, backend=backend, model=model,
               dataset=DATASET[model], hyperparameters={"model": MODEL_CONFIG[model], "training": TRAINING[model]},
               threads=threads, seed=42, device=device, host_cpu=cpu, host="node", repeat=repeat,
               language_version="1", framework_version="2.0", shards_sha256=sha,
               initial_weights_sha256=WEIGHTS, parameter_count=123, train_loss_per_epoch=[2.0, 1.5, 1.2, 1.0],
               final_train_loss=1.0, test_accuracy=0.9, test_accuracy_per_epoch=[0.5, 0.7, 0.8, 0.9],
               eval_seconds=0.1, startup_seconds=1.0, peak_rss_mb=300.0, fused_kernel=True, kernel_notes=None,
               run_seconds=10.0, stack_code_sha256="c" * 64, gemm_float32_gflops_before=100.0,
               gemm_float32_gflops_after=100.0, created_at=f"2026-11-30T10:00:{repeat:02d}+00:00",
               **Record.timing_fields([4 * seconds[0], *seconds], 160))
    return r.replace(**changes) if changes else r


def study(root, cpu="Laptop CPU", cores=4, gflops=100.0, scale=1.0, threads=(2,), stacks=tuple(STACKS),
          missing=(), repeats=3, archive="/data/archive.tar.gz", machine=True, device="cpu", **changes):
    """A results directory: records of every (model, stack, threads, repeat), each
    `scale` times the laptop's time, but those in `missing` ((model, stack) pairs); the
    machine file; the shards. `changes` go into every record."""
    root.mkdir(parents=True, exist_ok=True)
    sha = {model: shards(root, model, archive) for model in BASE}
    for model in BASE:
        for stack in stacks:
            if (model, stack) in missing:
                continue
            for t in threads:
                for repeat in range(1, repeats + 1):
                    seconds = [BASE[model][stack] * scale * j for j in JITTER[repeat - 1]]
                    r = record(model, stack, t, repeat, seconds, cpu, sha[model], device, **changes)
                    r.write(root / "records" / DATASET[model] / model / stack / f"threads{t}" / f"repeat{repeat}.json")
    if machine:
        (root / "machine.json").write_text(json.dumps(machine_file(cpu, cores, gflops)))
    return root


@pytest.fixture
def three(tmp_path):
    """A laptop (2 threads and 1), a workstation twice as fast (2 threads; no jax on the
    LSTM) and a cluster node four times as fast (2 threads)."""
    laptop = study(tmp_path / "laptop" / "results", threads=(1, 2))
    workstation = study(tmp_path / "workstation" / "results", cpu="Workstation CPU", cores=16, gflops=800.0,
                        scale=0.5, missing={("lstm", "py-jax")})
    node = study(tmp_path / "node" / "results", cpu="Node CPU", cores=64, gflops=2000.0, scale=0.25)
    return laptop, workstation, node


def test_compare_csv_has_each_machines_figures_and_the_speedups(three, tmp_path):
    out = tmp_path / "out"
    df = write_comparison(three, out, ["laptop", "workstation", "node"])
    csv = pd.read_csv(out / "compare.csv")
    assert len(csv) == len(df) == 5  # 2 models x 3 stacks at 2 threads, but jax's LSTM
    assert set(csv.threads) == {2}
    assert ("lstm", "py-jax") not in set(zip(csv.model, csv["stack"]))
    rows = csv.set_index(["model", "stack"])
    # Medians and intervals: as each study's own summary.csv gives them.
    for label, directory in zip(["laptop", "workstation", "node"], three):
        own = write_summary(sorted(directory.glob("records/*/*/*/threads2/*.json")), tmp_path / f"own-{label}")
        own = own["summary"].set_index(["model", "stack"])
        for key in rows.index:
            for column in ("median", "ci_low", "ci_high"):
                assert rows.loc[key, f"{label}_{column}"] == pytest.approx(
                    own.loc[key, f"steady_epoch_seconds_{column}"])
            assert rows.loc[key, f"{label}_repeats"] == 3
    # The laptop's py-torch: the median of its nine steady epochs.
    assert rows.loc[("resnet", "py-torch"), "laptop_median"] == pytest.approx(2.0)
    # Speed-ups against the first machine: its time over theirs, with statistics.ratio's interval.
    for label, factor in (("workstation", 2.0), ("node", 4.0)):
        assert rows[f"{label}_speedup"].to_numpy() == pytest.approx(factor)
        assert not rows[f"{label}_speedup_tie"].any()
    steady = {name: [[BASE["resnet"]["py-jax"] * s * j for j in JITTER[i]] for i in range(3)]
              for name, s in (("Laptop CPU", 1.0), ("Node CPU", 0.25))}
    theirs, mine = (estimate(steady[cpu], seed_of("tiny-cifar", "resnet", "py-jax", 2, cpu)) for cpu in steady)
    value, low, high = ratio(theirs, mine)
    row = rows.loc[("resnet", "py-jax")]
    assert (row.node_speedup, row.node_speedup_ci_low, row.node_speedup_ci_high) == pytest.approx((value, low, high))
    assert low < 4.0 < high
    # The reference has no speed-up columns; the machines' stacks come fastest first.
    assert "laptop_speedup" not in csv.columns
    assert list(csv[csv.model == "resnet"]["stack"]) == ["py-torch", "jl-native", "py-jax"]


def test_left_out_runs_are_listed_not_compared(three, tmp_path):
    machines, df, left_out, _ = compare_studies(three, ["laptop", "workstation", "node"])
    left = {(k["model"], k["stack"], k["threads"]): k["only_on"] for k in left_out}
    assert left[("lstm", "py-jax", 2)] == ["laptop", "node"]
    assert left[("resnet", "py-torch", 1)] == ["laptop"]  # the laptop alone ran 1 thread
    assert len(left) == 1 + 6  # jax's LSTM at 2 threads, and every stack and model at 1 thread
    assert len(df) == 5 and len(machines) == 3


def test_page_has_the_machine_facts_as_headers_and_a_table_per_model(three, tmp_path):
    out = tmp_path / "out"
    write_comparison(three, out)
    html = (out / "index.html").read_text()
    md = (out / "summary.md").read_text()
    # Derived labels: CPU model and cores.
    for label in ("Laptop CPU (4 cores)", "Workstation CPU (16 cores)", "Node CPU (64 cores)"):
        assert label in html and label in md
    header = re.search(r"<tr><th class=\"l\">stack</th>(.*?)</tr>", html, re.S).group(1)
    for fact in ("Workstation CPU", "16 cores", "GEMM 100 GFLOP/s at 2 thr.", "Python 3.11.7", "speed-up"):
        assert fact in header
    # Machine facts: the GEMM rates of the machine files.
    assert "2,000 GFLOP/s" in html and "800 GFLOP/s" in html
    for model, dataset in (("resnet", "tiny-cifar"), ("lstm", "tiny-imdb")):
        assert f"<h2>{model} on {dataset}</h2>" in html
        assert f"## {model} on {dataset}, 2 threads" in md
        png = out / "plots" / f"{dataset}-{model}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count("<table>") == 2 + 1  # one per model (2 threads), and the left-out list
    assert "Left out: not run on every machine" in html
    assert "2.00x [" in html and "4.00x [" in html
    assert "torch 2.0" in html  # framework versions under each figure
    assert "data:image/png;base64," in html  # self-contained


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (envs/setup.sh)")
def test_page_fits_1400_px_in_headless_chromium(three, tmp_path):
    """Three machines side by side, as Chromium lays them out: nothing wider than the window."""
    out = tmp_path / "out"
    write_comparison(three, out)
    probe = out / "probe.html"
    probe.write_text((out / "index.html").read_text().replace(
        "</body>", "<script>document.title = 'W=' + document.documentElement.scrollWidth;</script></body>"))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert int(re.search(r"<title>W=(\d+)</title>", dom).group(1)) <= 1400


@pytest.mark.parametrize("field, change", [
    ("hyperparameters.training.epochs", lambda hp: hp["training"].update(epochs=5)),
    ("hyperparameters.training.batch_size", lambda hp: hp["training"].update(batch_size=32)),
    ("hyperparameters.training.optimizer.learning_rate", lambda hp: hp["training"]["optimizer"].update(
        learning_rate=0.05)),
    ("hyperparameters.model.width", lambda hp: hp["model"].update(width=8)),
])
def test_other_hyperparameters_are_refused_naming_both_files(tmp_path, field, change):
    laptop = study(tmp_path / "laptop")
    node = study(tmp_path / "node", cpu="Node CPU", scale=0.5)
    for path in node.glob("records/tiny-cifar/*/*/*/*.json"):
        data = json.loads(path.read_text())
        change(data["hyperparameters"])
        path.write_text(json.dumps(data))
    with pytest.raises(ComparisonError) as e:
        compare_studies([laptop, node])
    message = str(e.value)
    assert field in message and "resnet on tiny-cifar" in message
    assert str(laptop / "records" / "tiny-cifar") in message and str(node / "records" / "tiny-cifar") in message
    assert "tiny-imdb" not in message  # the LSTM runs agree


def test_other_data_seed_or_weights_are_refused(tmp_path):
    laptop = study(tmp_path / "laptop")
    other_data = study(tmp_path / "data", cpu="Node CPU", shards_sha256="f" * 64)
    other_seed = study(tmp_path / "seed", cpu="Node CPU", seed=7)
    other_weights = study(tmp_path / "weights", cpu="Node CPU", initial_weights_sha256=None)
    for other, field in ((other_data, "shards_sha256"), (other_seed, "seed"),
                         (other_weights, "initial_weights_sha256")):
        with pytest.raises(ComparisonError, match=field) as e:
            compare_studies([laptop, other])
        assert str(other / "records") in str(e.value) and str(laptop / "records") in str(e.value)


def test_the_cli_refuses_with_exit_code_2_naming_the_files(tmp_path, capsys):
    laptop = study(tmp_path / "laptop")
    node = study(tmp_path / "node", cpu="Node CPU", scale=0.5)
    for path in node.glob("records/tiny-imdb/*/*/*/*.json"):
        data = json.loads(path.read_text())
        data["hyperparameters"]["training"]["epochs"] = 3
        path.write_text(json.dumps(data))
    assert cli(["compare", str(laptop), str(node), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "dlrosetta compare: error:" in err and "hyperparameters.training.epochs is 4 in" in err
    assert str(laptop / "records" / "tiny-imdb" / "lstm") in err and "but 3 in " + str(node) in err
    assert not (tmp_path / "out" / "index.html").exists()


def test_same_data_read_from_another_path_is_the_same_data(tmp_path):
    """A real data set's shards manifest names the archive's path: another machine's path
    alone does not make other data; other contents do."""
    laptop = study(tmp_path / "laptop", archive="/home/me/data/cifar-10-python.tar.gz")
    node = study(tmp_path / "node", cpu="Node CPU", scale=0.5, archive="/scratch/data/cifar-10-python.tar.gz")
    _, df, _, notes = compare_studies([laptop, node])
    assert len(df) == 6 and any("differ only in the path the archive was read from" in n for n in notes)
    shards(node, "resnet", "/scratch/data/cifar-10-python.tar.gz", seed=1)  # other data, same path
    for path in node.glob("records/tiny-cifar/*/*/*/*.json"):
        Record.read(path).replace(shards_sha256=sha256_file(node / "shards" / "tiny-cifar" / "manifest.json")).write(path)
    with pytest.raises(ComparisonError, match="shards_sha256"):
        compare_studies([laptop, node])


def test_two_studies_on_the_same_kind_of_machine(tmp_path):
    """Two studies on identical hardware: labels from the directory, and speed-up
    intervals from independent bootstraps (the same numbers give 1x with a real
    interval around it, not [1, 1])."""
    a = study(tmp_path / "monday" / "results")
    b = study(tmp_path / "tuesday" / "results")
    machines, df, _, _ = compare_studies([a, b])
    labels = [m.label for m in machines]
    assert labels == ["Laptop CPU (4 cores) [monday/results]", "Laptop CPU (4 cores) [tuesday/results]"]
    row = df[(df.model == "resnet") & (df["stack"] == "py-torch")].iloc[0]
    assert row[f"{labels[1]}_speedup"] == pytest.approx(1.0)
    assert row[f"{labels[1]}_speedup_ci_low"] < 1.0 < row[f"{labels[1]}_speedup_ci_high"]
    assert row[f"{labels[1]}_speedup_tie"]


def test_a_gpu_box_and_a_study_spanning_two_node_types(tmp_path):
    """A GPU box is named by its accelerator; a cluster study whose runs landed on two
    CPU models gives two machines."""
    laptop = study(tmp_path / "laptop")
    gpu = study(tmp_path / "gpu", cpu="Host CPU", scale=0.1, device="gpu:0 (NVIDIA H200)")
    cluster = study(tmp_path / "cluster", cpu="Old CPU", scale=0.8, machine=False, stacks=("py-torch",))
    for path in cluster.glob("records/tiny-cifar/*/*/*/repeat3.json"):
        Record.read(path).replace(host_cpu="New CPU").write(path)
    machines, df, _, _ = compare_studies([laptop, gpu, cluster], ["laptop", "", "cluster"])
    labels = [m.label for m in machines]
    assert labels[0] == "laptop" and labels[1] == "Host CPU (4 cores), gpu:0 (NVIDIA H200)"
    assert set(labels[2:]) == {"cluster: New CPU", "cluster: Old CPU"}
    assert machines[1].facts["gpu"] == "gpu:0 (NVIDIA H200)"
    assert machines[2].facts["cores"] is None  # no machine.json: what the records say only
    # Only py-torch ran on the cluster, and only its ResNet's third repeat on the new node type.
    assert list(zip(df.model, df["stack"])) == [("resnet", "py-torch")]
    assert df[f"{labels[1]}_speedup"].iloc[0] == pytest.approx(10.0)


def test_runs_csv_decides_which_records_belong_to_a_study(tmp_path):
    """A results directory keeps records its own study did not compare (another
    configuration, left-over repeats); its runs.csv says which, and compare follows it."""
    laptop = study(tmp_path / "laptop")
    node = study(tmp_path / "node", cpu="Node CPU", scale=0.5)
    records = sorted(node.glob("records/*/*/*/*/*.json"))
    # A fourth repeat left from a study with more repeats, ten times slower.
    extra = records[0].with_name("repeat4.json")
    Record.read(records[0]).replace(repeat=4, epoch_seconds=(40.0, 10.0, 10.0, 10.0)).write(extra)
    # A run of another configuration the study flagged as foreign.
    foreign = next(p for p in records if p.parts[-3] == "py-torch")
    plan = {str(p): {"threads": 2, "seed": 42 if p != foreign else 1, "stack_code_sha256": "c" * 64,
                     "model_config": MODEL_CONFIG[p.parts[-4]], "training": TRAINING[p.parts[-4]],
                     "shards": str(node / "shards" / p.parts[-5] / "manifest.json")} for p in records}
    write_summary(records, node, plan)
    assert (node / "runs.csv").is_file()
    machines, df, _, _ = compare_studies([laptop, node], ["laptop", "node"])
    excluded = dict(machines[1].study.excluded)
    assert "not among the study's runs" in excluded[str(extra)]
    assert "seed: record has 42, study has 1" in excluded[str(foreign)]
    row = df[(df.model == Record.read(extra).model) & (df["stack"] == Record.read(extra).stack)].iloc[0]
    assert row.node_repeats == 3 and row.node_speedup == pytest.approx(2.0)
    write_comparison([laptop, node], tmp_path / "out", ["laptop", "node"])
    assert "Records not compared" in (tmp_path / "out" / "index.html").read_text()


def test_bad_arguments_are_refused(tmp_path):
    laptop = study(tmp_path / "laptop")
    with pytest.raises(ComparisonError, match="no such results directory"):
        compare_studies([laptop, tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ComparisonError, match="no records"):
        compare_studies([laptop, tmp_path / "empty"])
    with pytest.raises(ComparisonError, match="given twice"):
        compare_studies([laptop, tmp_path / "laptop" / ".." / "laptop"])
    with pytest.raises(ComparisonError, match="at least two machines"):
        compare_studies([laptop])
    node = study(tmp_path / "node", cpu="Node CPU", threads=(8,))
    with pytest.raises(ComparisonError, match="share no"):
        compare_studies([laptop, node])
    with pytest.raises(ComparisonError, match="given to two"):
        compare_studies([laptop, study(tmp_path / "other", cpu="Other CPU")], ["same", "same"])


def snakemake(workdir, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(workdir), "--cores", "1", *args],
                          capture_output=True, text=True)


def test_snakemake_compare_rule(three, tmp_path):
    """`snakemake compare` with the config key (a label with a space and a quote reaches
    the command intact); without the rule asked for, the key changes nothing the study
    runs: its report's command does not carry it."""
    laptop, workstation, _ = three
    work = tmp_path / "work"
    work.mkdir()
    entries = f"[{laptop},{{dir: {workstation}, label: \"Bob's box\"}}]"
    out = snakemake(work, "compare", "--config", f"compare={entries}")
    assert out.returncode == 0, out.stderr[-3000:]
    csv = pd.read_csv(work / "results" / "compare" / "compare.csv")
    assert "Bob's box_speedup" in csv.columns and "Laptop CPU (4 cores)_median" in csv.columns
    assert (work / "results" / "compare" / "index.html").is_file()
    assert (work / "results" / "logs" / "compare.log").is_file()
    dry = snakemake(work, "-n", "-p", "--config", f"compare={entries}")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "rule compare" not in dry.stdout
    report = dry.stdout.split("rule report:")[1].split("\n\n")[0]
    assert str(laptop) not in report and "compare" not in report
