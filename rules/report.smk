# The machine probe, the aggregated table and the comparison report.


rule machine:
    output:
        "results/machine.json",
    log:
        "results/logs/machine.log",
    threads: THREADS
    resources:
        training_slots=1,
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta probe --threads {threads} --out {output:q} > {log:q} 2>&1"


rule aggregate:
    input:
        records=ALL_RECORDS,
        machine="results/machine.json",
    output:
        csv=report("results/summary.csv", category="Tables", caption="../report/captions/summary.rst"),
        parquet="results/summary.parquet",
    log:
        "results/logs/aggregate.log",
    params:
        # What each record must match to belong to this study (foreign ones are flagged).
        plan=json.dumps(
            {
                record_path(r): {
                    **STUDY.run_parameters(r, THREADS),
                    "shards": f"results/shards/{r.dataset}/manifest.json",
                    "stack_code_sha256": stack_code_sha256(r.stack),
                }
                for r in STUDY.runs()
            },
            sort_keys=True,
        ),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta aggregate {input.records:q} --machine {input.machine:q} --plan-json {params.plan:q}"
        " --csv {output.csv:q} --parquet {output.parquet:q} > {log:q} 2>&1"


rule report:
    input:
        summary="results/summary.csv",
        machine="results/machine.json",
        envs=[env_manifest_path(e) for e in ENVS_USED],
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
        config=json.dumps(config, sort_keys=True),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta report --summary {input.summary:q} --machine {input.machine:q}"
        " --config-json {params.config:q} --envs {input.envs:q} --html {output.html:q}"
        " --markdown {output.markdown:q} --plots {output.plots:q} > {log:q} 2>&1"
