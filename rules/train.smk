# One rule trains every (data set, model, stack): the launcher runs the stack's entry
# point in its own environment and always leaves one valid record (ok/skipped/failed).
#
# What reruns a run (docs/configuration.md, "Incremental"): its tracked parameters (the
# run spec without paths: model and training config, threads, seed, device; and the
# stack's code fingerprint), its inputs' content (shards, order, weights, environment),
# and its retry stamp (a skipped or failed record whose cause may have gone). Paths and
# the timeout are untracked: a moved checkout or a longer limit reruns nothing.


rule train:
    input:
        shards=shards_manifest,
        order=lambda wildcards: order_file(wildcards.dataset, wildcards.model),
        weights=lambda wildcards: weights_manifest(wildcards.dataset, wildcards.model),
        env=lambda wildcards: env_manifest(wildcards.stack),
        retry=record_retry_stamp,
    output:
        record="results/records/{dataset}/{model}/{stack}.json",
    log:
        "results/logs/train/{dataset}/{model}/{stack}.log",
    threads: THREADS
    resources:
        # Runs never share cores: timings stay clean whatever --cores is (rules/common.smk).
        training_slots=1,
    params:
        # Relative paths (the launcher resolves them): the spec is the same wherever the
        # checkout is, so it can be tracked whole.
        spec=lambda wildcards: json.dumps(
            STUDY.run_spec(
                Run(wildcards.dataset, wildcards.model, wildcards.stack),
                THREADS,
                shards_manifest(wildcards),
                order_file(wildcards.dataset, wildcards.model),
                weights_manifest(wildcards.dataset, wildcards.model) or None,
                f"results/runs/{wildcards.dataset}/{wildcards.model}/{wildcards.stack}/measurements.json",
            ).to_dict(),
            sort_keys=True,
        ),
        code_sha256=lambda wildcards: stack_code_sha256(wildcards.stack),
        venvs=untracked(str(VENVS)),
        timeout=untracked(config["timeout_minutes"]),
    conda:
        ORCHESTRATOR_ENV
    shell:
        # exec: the launcher replaces the shell, so Snakemake's death reaches it (and it
        # ends the stack's whole process group).
        "exec dlrosetta launch --spec-json {params.spec:q} --record {output.record:q} --log {log:q}"
        " --venvs {params.venvs:q} --timeout-minutes {params.timeout:q}"
