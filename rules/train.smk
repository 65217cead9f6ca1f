# One rule trains every (data set, model, stack): the launcher runs the stack's entry
# point in its own environment and always leaves one valid record (ok/skipped/failed).


rule train:
    input:
        shards=shards_manifest,
        order=lambda wildcards: order_file(wildcards.dataset, wildcards.model),
        weights=lambda wildcards: weights_manifest(wildcards.dataset, wildcards.model),
        env=lambda wildcards: env_manifest(wildcards.stack),
    output:
        record="results/records/{dataset}/{model}/{stack}.json",
    log:
        "results/logs/train/{dataset}/{model}/{stack}.log",
    threads: THREADS
    resources:
        # Runs never share cores: timings stay clean whatever --cores is (profiles/).
        training_slots=1,
    params:
        # Relative paths: the launcher resolves them, and a moved checkout reruns nothing.
        spec=lambda wildcards, input, threads: quoted_json(
            STUDY.run_spec(
                Run(wildcards.dataset, wildcards.model, wildcards.stack),
                threads,
                input.shards,
                input.order,
                input.weights or None,
                f"results/runs/{wildcards.dataset}/{wildcards.model}/{wildcards.stack}/record.partial.json",
            ).to_dict()
        ),
        venvs=VENVS,
        timeout=config["timeout_minutes"],
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta launch --spec-json {params.spec} --record {output.record} --log {log}"
        " --venvs {params.venvs} --timeout-minutes {params.timeout}"
