# Stack environments: one venv per envs/<env>.txt, built on first use under .venvs/.
# Snakemake has no venv deployment; each stack runs with its environment's interpreter.


rule build_env:
    input:
        requirements=os.path.join(workflow.basedir, "envs", "{env}.txt"),
    output:
        manifest=str(VENVS / "{env}" / "dlrosetta-env.json"),
    log:
        "results/logs/envs/{env}.log",
    params:
        env_dir=lambda wildcards: str(VENVS / wildcards.env),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "python -m dlrosetta.venv --requirements {input.requirements} --env-dir {params.env_dir} > {log} 2>&1"


rule environments:
    """Build every stack environment of the config's stacks (`snakemake environments`)."""
    input:
        [str(VENVS / env / "dlrosetta-env.json") for env in ENVS_USED],
