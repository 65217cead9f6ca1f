# Stack environments: one venv per envs/<env>.txt, built on first use under venvs_dir.
# Snakemake has no venv deployment; each stack runs with its environment's interpreter.
# Rebuilt when the requirement file's content changes (not its mtime: a fresh clone
# rebuilds nothing), also where Snakemake has no record of the build (the retry stamp
# compares the sha256 in the environment's manifest), and retried after a failed build.


rule build_env:
    input:
        retry=env_retry_stamp,
    output:
        manifest=env_manifest_path("{env}"),
    log:
        "results/logs/envs/{env}.log",
    params:
        requirements_sha256=lambda wildcards: sha256_file(REPO / "envs" / f"{wildcards.env}.txt"),
        requirements=untracked(lambda wildcards: str(REPO / "envs" / f"{wildcards.env}.txt")),
        env_dir=lambda wildcards: str(VENVS / wildcards.env),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "python -m dlrosetta.venv --requirements {params.requirements:q} --env-dir {params.env_dir:q} > {log:q} 2>&1"


rule environments:
    """Build every stack environment of the config's stacks (`snakemake environments`)."""
    input:
        [env_manifest_path(env) for env in ENVS_USED],
