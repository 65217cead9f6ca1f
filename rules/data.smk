# Data: shards once per data set, the epoch order, and the shared initial weights.


rule shards:
    input:
        # Real data: the official archive (a missing one is named before anything runs).
        archive=lambda wildcards: config["datasets"][wildcards.dataset].get("archive", []),
    output:
        manifest="results/shards/{dataset}/manifest.json",
    log:
        "results/logs/shards/{dataset}.log",
    params:
        cfg=lambda wildcards: json.dumps(STUDY.data_config(wildcards.dataset), sort_keys=True),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta prepare --name {wildcards.dataset:q} --config-json {params.cfg:q}"
        " --out \"$(dirname {output.manifest:q})\" > {log:q} 2>&1"


rule epoch_order:
    input:
        shards=shards_manifest,
    output:
        "results/orders/{dataset}/seed{seed}-epochs{epochs}.npy",
    log:
        "results/logs/orders/{dataset}-seed{seed}-epochs{epochs}.log",
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta order --shards {input.shards:q} --epochs {wildcards.epochs}"
        " --seed {wildcards.seed} --out {output:q} > {log:q} 2>&1"


rule initial_weights:
    output:
        manifest="results/weights/{dataset}/{model}/manifest.json",
    log:
        "results/logs/weights/{dataset}-{model}.log",
    params:
        model_config=lambda wildcards: json.dumps(STUDY.model_config(wildcards.dataset, wildcards.model), sort_keys=True),
        seed=config["seed"],
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta weights --model {wildcards.model} --model-config-json {params.model_config:q}"
        " --seed {params.seed} --out \"$(dirname {output.manifest:q})\" > {log:q} 2>&1"
