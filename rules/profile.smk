# Profile mode (docs/profile.md; config `profile.enabled`): every (data set, model, stack)
# runs a block of steady steps under its framework's profiler, once, at the study's
# largest thread count; the launcher turns the trace into a profile record of where a
# step's time goes. Like training, profiles never share cores with another run.


rule profile:
    input:
        shards=shards_manifest,
        order=lambda wildcards: order_file(wildcards.dataset, wildcards.model),
        weights=lambda wildcards: weights_manifest(wildcards.dataset, wildcards.model),
        env=lambda wildcards: env_manifest(wildcards.stack),
        retry=profile_retry_stamp,
    output:
        record="results/profiles/{dataset}/{model}/{stack}/threads{threads}.json",
    log:
        "results/logs/profile/{dataset}/{model}/{stack}/threads{threads}.log",
    threads: lambda wildcards: int(wildcards.threads)
    resources:
        training_slots=1,
        mem_mb=config["run_memory_mb"],
        runtime=math.ceil(config["timeout_minutes"]) + 5,
    params:
        spec=lambda wildcards: run_spec_json(
            Run(wildcards.dataset, wildcards.model, wildcards.stack, int(wildcards.threads)),
            f"results/runs/{wildcards.dataset}/{wildcards.model}/{wildcards.stack}/threads{wildcards.threads}/profile/profile.json",
            "profile",
            STUDY.profile_steps,
        ),
        code_sha256=lambda wildcards: stack_code_sha256(wildcards.stack),
        venvs=untracked(str(VENVS)),
        timeout=untracked(config["timeout_minutes"]),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "exec dlrosetta launch --spec-json {params.spec:q} --record {output.record:q} --log {log:q}"
        " --venvs {params.venvs:q} --timeout-minutes {params.timeout:q}"


rule profiles:
    input:
        records=ALL_PROFILES,
    output:
        table=report("results/profiles.csv", category="Tables", caption="../report/captions/profiles.rst"),
    log:
        "results/logs/profiles.log",
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta profiles {input.records:q} --out {output.table:q} > {log:q} 2>&1"
