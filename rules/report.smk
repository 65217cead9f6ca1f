# The machine probe, the aggregated table and the comparison report.


rule machine:
    output:
        "results/machine.json",
    log:
        "results/logs/machine.log",
    threads: THREADS
    resources:
        training_slots=1,
    params:
        # Thread variables must be set before NumPy loads its BLAS.
        env=" ".join(f"{k}={shlex.quote(v)}" for k, v in thread_env(THREADS).items()),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "env {params.env} dlrosetta probe --threads {threads} --out {output} > {log} 2>&1"


rule aggregate:
    input:
        records=ALL_RECORDS,
        machine="results/machine.json",
    output:
        csv=report("results/summary.csv", category="Tables", caption="../report/captions/summary.rst"),
        parquet="results/summary.parquet",
    log:
        "results/logs/aggregate.log",
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta aggregate {input.records} --machine {input.machine}"
        " --csv {output.csv} --parquet {output.parquet} > {log} 2>&1"


rule report:
    input:
        summary="results/summary.csv",
        machine="results/machine.json",
        envs=[str(VENVS / e / "dlrosetta-env.json") for e in ENVS_USED],
    output:
        html=report("results/report/index.html", category="Report", caption="../report/captions/index.rst"),
        markdown=report("results/report/summary.md", category="Report", caption="../report/captions/summary_md.rst"),
        plots=report(
            directory("results/report/plots"),
            patterns=["{name}.png"],
            category="Charts",
            caption="../report/captions/plots.rst",
        ),
    log:
        "results/logs/report.log",
    params:
        config=quoted_json(config),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta report --summary {input.summary} --machine {input.machine}"
        " --config-json {params.config} --envs {input.envs} --html {output.html}"
        " --markdown {output.markdown} --plots {output.plots} > {log} 2>&1"
