"""`dlrosetta <command>`: the steps the workflow's rules run (also usable by hand).

  prepare   data set -> shards          order    epoch order file
  weights   initial-weights bundle      probe    machine description + GEMM rate
  launch    one stack run -> record     aggregate records -> summary/runs/epochs/noise tables
  profiles  profile records -> table
  infer-onnx   ONNX runtimes on the stacks' exports -> inference records
  inference    inference records -> inference table     crosseval  -> cross-evaluation matrix
  report    summary -> HTML + Markdown report
  status    where a running study stands: runs done/running/waiting, time left
  compare   several studies' results directories (one per machine) -> one comparison page
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dlrosetta", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="write a data set's shards")
    s.add_argument("--name", required=True)
    s.add_argument("--config-json", type=_json_arg, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("order", help="write the epoch order file")
    s.add_argument("--shards", type=Path, required=True)
    s.add_argument("--epochs", type=int, required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("weights", help="write an initial-weights bundle")
    s.add_argument("--model", required=True)
    s.add_argument("--model-config-json", type=_json_arg, required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("probe", help="describe the machine, measure float32 GEMM")
    s.add_argument("--threads", type=int, required=True)
    s.add_argument("--cases-json", type=_json_arg, default=None,
                   help="case name -> {model, config, batch_size}: measure each model's GEMM shapes too")
    s.add_argument("--out", type=Path, required=True)

    # `launch` has its own parser (dlrosetta.launch); listed here for --help.
    sub.add_parser("launch", help="run one stack from a run spec", add_help=False)

    s = sub.add_parser("aggregate", help="records -> summary, runs, epochs and noise tables")
    s.add_argument("records", nargs="+", type=Path)
    s.add_argument("--plan-json", type=_json_arg, default=None,
                   help="record file -> run parameters the record must match to belong to the study")
    s.add_argument("--targets-json", type=_json_arg, default=None,
                   help="data set -> target test accuracy (time to accuracy)")
    s.add_argument("--out-dir", type=Path, required=True, help="where the tables go")

    s = sub.add_parser("profiles", help="profile records -> profiles table (docs/profile.md)")
    s.add_argument("records", nargs="*", type=Path)
    s.add_argument("--out", type=Path, required=True)

    # `infer-onnx` has its own parser (dlrosetta.runtimes); listed here for --help.
    sub.add_parser("infer-onnx", help="run the ONNX runtimes on the stacks' exports", add_help=False)

    s = sub.add_parser("inference", help="inference records -> inference table (docs/inference.md)")
    s.add_argument("records", nargs="*", type=Path)
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("crosseval", help="native repeat-1 inference records -> cross-evaluation matrix")
    s.add_argument("records", nargs="*", type=Path)
    s.add_argument("--shards-json", type=_json_arg, required=True, help="data set -> its shards' manifest")
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("report", help="tables -> HTML and Markdown report")
    s.add_argument("--tables", type=Path, required=True, help="the folder aggregate wrote its tables to")
    s.add_argument("--machine", type=Path, required=True)
    s.add_argument("--config-json", type=_json_arg, required=True, help="the study's config")
    s.add_argument("--envs", type=Path, nargs="*", default=[], help="environment manifests")
    s.add_argument("--profiles", type=Path, nargs="*", default=[],
                   help="the profiles table, when the study profiled its stacks")
    s.add_argument("--inference", type=Path, nargs="*", default=[],
                   help="the inference table and the cross-evaluation matrix, when the study measured inference")
    s.add_argument("--html", type=Path, required=True)
    s.add_argument("--markdown", type=Path, required=True)
    s.add_argument("--plots", type=Path, required=True, help="folder for the PNG charts")

    s = sub.add_parser("status", help="where a study stands: runs done, running (last epoch line), waiting, "
                                      "skipped, failed; the time left (README, 'Follow a running study')")
    s.add_argument("--results", type=Path, default=Path("results"), help="the study's results folder")
    s.add_argument("--configfile", type=Path, nargs="+", action="extend", default=[],
                   help="the --configfile(s) given to snakemake, in order (over config/config.yaml)")
    s.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="the --config overrides given to snakemake")
    s.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="print again every SECONDS (in place on a terminal) until interrupted")
    s.add_argument("--stale-minutes", type=float, default=30.0,
                   help="a log silent this long, with no live launcher here, is an interrupted run (default 30)")

    s = sub.add_parser("compare", help="several studies' results (one per machine) -> one comparison page",
                       description="Compare the same study run on several machines (docs/compare.md).")
    s.add_argument("results", nargs="+", type=Path, help="results directories (records/, machine.json); "
                   "the first is the reference the speed-ups are taken against")
    s.add_argument("--out", type=Path, required=True, help="folder for compare.csv, index.html, summary.md, plots/")
    s.add_argument("--label", action="append", default=[],
                   help="a name for each results directory's machine, in their order ('' derives one)")

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["launch"]:
        from dlrosetta.launch import main as launch_main
        return launch_main(argv[1:])
    if argv[:1] == ["infer-onnx"]:
        from dlrosetta.runtimes import main as runtimes_main
        return runtimes_main(argv[1:])
    a = p.parse_args(argv)
    if a.command == "prepare":
        from dlrosetta.data.prepare import prepare_dataset
        prepare_dataset(a.name, a.config_json, a.out)
    elif a.command == "profiles":
        from dlrosetta.profile import write_profile_table
        write_profile_table(a.records, a.out)
    elif a.command == "inference":
        from dlrosetta.inference import write_inference_table
        write_inference_table(a.records, a.out)
    elif a.command == "crosseval":
        from dlrosetta.inference import write_crosseval_table
        write_crosseval_table(a.records, a.shards_json, a.out)
    elif a.command == "order":
        from dlrosetta.npy import read_manifest
        from dlrosetta.order import write_epoch_order
        n_train = read_manifest(a.shards, "shards")["meta"]["train_samples"]
        write_epoch_order(a.out, n_train, a.epochs, a.seed)
    elif a.command == "weights":
        from dlrosetta.model_spec import model_spec
        from dlrosetta.weights import write_initial_weights
        write_initial_weights(a.out, model_spec(a.model, a.model_config_json), a.seed, a.model_config_json)
    elif a.command == "probe":
        from dlrosetta.machine import probe
        from dlrosetta.measurements import write_json_atomic
        write_json_atomic(a.out, probe(a.threads, cases=a.cases_json))
    elif a.command == "aggregate":
        from dlrosetta.aggregate import write_summary
        write_summary(a.records, a.out_dir, a.plan_json, a.targets_json)
    elif a.command == "status":
        from dlrosetta.status import main as status_main
        try:
            return status_main(a.results, a.configfile, a.config, a.watch, a.stale_minutes)
        except KeyboardInterrupt:
            return 0
    elif a.command == "compare":
        from dlrosetta.compare import ComparisonError, write_comparison
        try:
            write_comparison(a.results, a.out, a.label)
        except ComparisonError as e:
            print(f"dlrosetta compare: error: {e}", file=sys.stderr)
            return 2
    elif a.command == "report":
        from dlrosetta.report import render_report
        render_report(a.tables, a.machine, a.config_json, a.envs, a.html, a.markdown, a.plots,
                      a.profiles[0] if a.profiles else None, a.inference or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
