# Several studies, one page (docs/compare.md): the same study run on several machines,
# each results directory as it was copied here, compared into results/compare/.
#
#   snakemake compare --cores 1 --config compare='[laptop/results,node/results]'
#
# or `compare:` in a config file, where an entry may also name its machine:
# `- {dir: node/results, label: cluster node}`. `results` (this checkout's own study)
# may be one of them: the study is then brought up to date first.
#
# The comparison is no part of the study: the key is validated with the rest of the
# config (rules/common.smk), then taken out of it here, so setting it reruns no job of
# the study (the report shows the config) and without it the study's DAG is unchanged.
# dlrosetta.compare is imported only when the rule is asked for: it loads pandas and
# matplotlib, which every parse of the workflow would pay for otherwise.
import importlib

COMPARE = config.pop("compare", None)


rule compare:
    input:
        # Each study's runs.csv (or its records) and machine.json.
        lambda wildcards: importlib.import_module("dlrosetta.compare").workflow_inputs(COMPARE),
    output:
        html="results/compare/index.html",
        markdown="results/compare/summary.md",
        table="results/compare/compare.csv",
        plots=directory("results/compare/plots"),
    log:
        "results/logs/compare.log",
    params:
        dirs=lambda wildcards: [d for d, _ in importlib.import_module("dlrosetta.compare").workflow_entries(COMPARE)],
        # One `--label=NAME` per directory ('' derives the name from its machine).
        labels=lambda wildcards: [
            f"--label={label}" for _, label in importlib.import_module("dlrosetta.compare").workflow_entries(COMPARE)
        ],
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta compare {params.dirs:q} {params.labels:q} --out results/compare > {log:q} 2>&1"


localrules:
    compare,
