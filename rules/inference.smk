# Inference (docs/inference.md; config `inference`). After training, every (data set,
# model, stack) runs its trained model in inference mode, `inference.repeats` fresh
# processes round by round at the study's largest thread count: timed calls per batch
# size. Repeat 1 also evaluates every stack's trained weights (the cross-evaluation
# matrix) and exports ONNX, after its timed calls, so no extra process start is paid for
# them. The ONNX runtimes then run every export. Like training, nothing shares cores.


rule infer:
    input:
        shards=shards_manifest,
        # The training records: a new training run makes new weights, measured again.
        trained=lambda wildcards: trained_records(
            wildcards, STACK_IDS if int(wildcards.repeat) == 1 else [wildcards.stack]
        ),
        env=lambda wildcards: env_manifest(wildcards.stack),
        retry=inference_retry_stamp,
    output:
        record="results/inference/{dataset}/{model}/native/{stack}/repeat{repeat}.json",
    log:
        "results/logs/inference/{dataset}/{model}/native/{stack}/repeat{repeat}.log",
    threads: STUDY.inference_threads
    resources:
        training_slots=1,
        mem_mb=config["run_memory_mb"],
        runtime=math.ceil(config["timeout_minutes"]) + 5,
    # After every training round; then round 1 of every stack before any round 2.
    priority: lambda wildcards: -int(wildcards.repeat)
    params:
        spec=inference_spec_json,
        code_sha256=lambda wildcards: stack_code_sha256(wildcards.stack),
        venvs=untracked(str(VENVS)),
        timeout=untracked(config["timeout_minutes"]),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "exec dlrosetta launch --spec-json {params.spec:q} --record {output.record:q} --log {log:q}"
        " --venvs {params.venvs:q} --timeout-minutes {params.timeout:q} --repeat {wildcards.repeat:q}"


rule infer_onnx:
    input:
        shards=shards_manifest,
        native=lambda wildcards: [
            inference_path(Run(wildcards.dataset, wildcards.model, s, STUDY.inference_threads, 1)) for s in STACK_IDS
        ],
        env=env_manifest_path(ONNX_ENV),
        retry=onnx_retry_stamp,
    output:
        records=expand(
            "results/inference/{{dataset}}/{{model}}/{engine}/{stack}/repeat{{repeat}}.json",
            engine=ONNX_ENGINES,
            stack=STACK_IDS,
        ),
    log:
        "results/logs/inference/{dataset}/{model}/onnx/repeat{repeat}.log",
    threads: STUDY.inference_threads
    resources:
        training_slots=1,
        mem_mb=config["run_memory_mb"],
        runtime=math.ceil(config["timeout_minutes"]) + 5,
    priority: lambda wildcards: -int(wildcards.repeat)
    params:
        settings=json.dumps(STUDY.inference_settings(), sort_keys=True),
        runtimes=STUDY.inference_runtimes(),
        work=lambda wildcards: f"results/runs/inference/{wildcards.dataset}/{wildcards.model}/onnx/repeat{wildcards.repeat}",
        venvs=untracked(str(VENVS)),
        timeout=untracked(config["timeout_minutes"]),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "exec dlrosetta infer-onnx --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --repeat {wildcards.repeat:q} --threads {threads} --runtimes {params.runtimes:q}"
        " --settings-json {params.settings:q} --native {input.native:q} --shards {input.shards:q}"
        " --out-dir results/inference --work-dir {params.work:q} --log {log:q} --venvs {params.venvs:q}"
        " --timeout-minutes {params.timeout:q}"


rule inference_table:
    input:
        records=ALL_INFERENCE,
    output:
        table=report("results/inference.csv", category="Tables", caption="../report/captions/inference.rst"),
    log:
        "results/logs/inference.log",
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta inference {input.records:q} --out {output.table:q} > {log:q} 2>&1"


rule crosseval:
    input:
        records=NATIVE_REPEAT1,
    output:
        table=report("results/crosseval.csv", category="Tables", caption="../report/captions/crosseval.rst"),
    log:
        "results/logs/crosseval.log",
    params:
        shards=json.dumps({d: f"results/shards/{d}/manifest.json" for d in STUDY.datasets()}, sort_keys=True),
    conda:
        ORCHESTRATOR_ENV
    shell:
        "dlrosetta crosseval {input.records:q} --shards-json {params.shards:q} --out {output.table:q} > {log:q} 2>&1"
