# One rule trains every (data set, model, stack, threads, repeat): the launcher runs the
# stack's entry point in its own environment and always leaves one valid record
# (ok/skipped/failed). Repeats run round by round (priority), so every stack sees the
# same spells of a noisy machine; runs never overlap (training_slots).
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
        record="results/records/{dataset}/{model}/{stack}/threads{threads}/repeat{repeat}.json",
    log:
        "results/logs/train/{dataset}/{model}/{stack}/threads{threads}/repeat{repeat}.log",
    threads: lambda wildcards: int(wildcards.threads)
    resources:
        # Runs never share cores: timings stay clean whatever --cores is (rules/common.smk).
        training_slots=1,
        # What a cluster job asks for (profiles/slurm): the memory the config allows a run,
        # and its time limit with room for start-up and the GEMM probes.
        mem_mb=config["run_memory_mb"],
        runtime=math.ceil(config["timeout_minutes"]) + 5,
    # Round 1 of every stack before any round 2 (A B C A B C): the scheduler starts the
    # ready job of highest priority first.
    priority: lambda wildcards: STUDY.repeats - int(wildcards.repeat)
    params:
        # Relative paths (the launcher resolves them): the spec is the same wherever the
        # checkout is, so it can be tracked whole.
        spec=lambda wildcards: run_spec_json(run_of(wildcards), f"results/runs/{run_id(wildcards)}/measurements.json"),
        code_sha256=lambda wildcards: stack_code_sha256(wildcards.stack),
        venvs=untracked(str(VENVS)),
        timeout=untracked(config["timeout_minutes"]),
    conda:
        ORCHESTRATOR_ENV
    shell:
        # exec: the launcher replaces the shell, so Snakemake's death reaches it (and it
        # ends the stack's whole process group).
        "exec dlrosetta launch --spec-json {params.spec:q} --record {output.record:q} --log {log:q}"
        " --venvs {params.venvs:q} --timeout-minutes {params.timeout:q} --repeat {wildcards.repeat:q}"
