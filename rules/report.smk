# The machine probe, the aggregated table and the comparison report.


rule machine:
    output:
        "results/machine.json",
    log:
        "results/logs/machine.log",
    threads: max(THREAD_COUNTS)
    resources:
        training_slots=1,
    params:
        # Each case's own GEMM shapes (its ceiling beside the square GEMM's).
        cases=json.dumps(
            {
                f"{e['dataset']}/{e['model']}": {
                    "model": e["model"],
                    "config": STUDY.model_config(e["dataset"], e["model"]),
                    "batch_size": STUDY.training(e["model"])["batch_size"],
                }
                for e in config["study"]
            },
            sort_keys=True,
        ),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta probe --threads {threads} --cases-json {params.cases:q} --out {output:q} > {log:q} 2>&1"


rule aggregate:
    input:
        records=ALL_RECORDS,
    output:
        summary=report("results/summary.csv", category="Tables", caption="../report/captions/summary.rst"),
        parquet="results/summary.parquet",
        runs=report("results/runs.csv", category="Tables", caption="../report/captions/runs.rst"),
        epochs=report("results/epochs.csv", category="Tables", caption="../report/captions/epochs.rst"),
        noise=report("results/noise.csv", category="Tables", caption="../report/captions/noise.rst"),
    log:
        "results/logs/aggregate.log",
    params:
        # What each record must match to belong to this study (foreign ones are flagged).
        plan=json.dumps(
            {
                record_path(r): {
                    **STUDY.run_parameters(r),
                    "shards": f"results/shards/{r.dataset}/manifest.json",
                    "stack_code_sha256": stack_code_sha256(r.stack),
                }
                for r in STUDY.runs()
            },
            sort_keys=True,
        ),
        targets=json.dumps({d: STUDY.target_accuracy(d) for d in STUDY.datasets() if STUDY.target_accuracy(d)}),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta aggregate {input.records:q} --plan-json {params.plan:q}"
        " --targets-json {params.targets:q} --out-dir results > {log:q} 2>&1"


rule report:
    input:
        tables=rules.aggregate.output,
        machine="results/machine.json",
        envs=[env_manifest_path(e) for e in ENVS_USED],
        profiles=rules.profiles.output if ALL_PROFILES else [],
        inference=[rules.inference_table.output.table, rules.crosseval.output.table] if INFERENCE_RUNS else [],
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
        "dlrosetta report --tables results --machine {input.machine:q}"
        " --config-json {params.config:q} --envs {input.envs:q} --profiles {input.profiles:q}"
        " --inference {input.inference:q} --html {output.html:q}"
        " --markdown {output.markdown:q} --plots {output.plots:q} > {log:q} 2>&1"
