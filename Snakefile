# dlrosetta: the same ResNet and LSTM trained in every language x framework x backend.
#   snakemake --cores 2                                   default study (synthetic data)
#   snakemake --cores N --configfile config/full.yaml     real CIFAR-10 / IMDB, paper scale
# Topic rule files live in rules/; the stack contract is docs/stack-contract.md.

import os

from snakemake.utils import min_version

min_version("9.0")


# Next to the Snakefile, so `--directory elsewhere` still finds the defaults.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "rules/common.smk"
include: "rules/compare.smk"
include: "rules/envs.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/profile.smk"
include: "rules/inference.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


rule all:
    input:
        # The records too: a deleted one is made again even when the report is newer.
        ALL_RECORDS,
        ALL_INFERENCE,
        "results/report/index.html",
        "results/report/summary.md",
        "results/summary.csv",
        "results/summary.parquet",
    default_target: True
