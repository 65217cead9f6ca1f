# Stack environments: one venv per envs/<env>.txt, built on first use under venvs_dir from
# its lock envs/<env>.lock (bash envs/lock.sh compiles it), with uv (pip where uv is missing).
# Snakemake has no venv deployment; each stack runs with its environment's interpreter.
# Rebuilt when the lock's or the spec's content changes (not their mtimes: a fresh clone
# rebuilds nothing), also where Snakemake has no record of the build (the retry stamp
# compares the sha256s in the environment's manifest), and retried after a failed build.
# A rebuilt environment reruns its stacks' runs (the manifest is their input).


rule build_env:
    input:
        retry=env_retry_stamp,
    output:
        manifest=env_manifest_path("{env}"),
    log:
        "results/logs/envs/{env}.log",
    params:
        requirements_sha256=lambda wildcards: sha256_file(REPO / "envs" / f"{wildcards.env}.txt"),
        lock_sha256=env_lock_checksum,
        requirements=untracked(lambda wildcards: str(REPO / "envs" / f"{wildcards.env}.txt")),
        lock=untracked(lambda wildcards: str(REPO / "envs" / f"{wildcards.env}.lock")),
        env_dir=lambda wildcards: str(VENVS / wildcards.env),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "python -m dlrosetta.venv --requirements {params.requirements:q} --lock {params.lock:q}"
        " --env-dir {params.env_dir:q} > {log:q} 2>&1"


rule environments:
    """Build every stack environment of the config's stacks (`snakemake environments`)."""
    input:
        [env_manifest_path(env) for env in ENVS_USED],
