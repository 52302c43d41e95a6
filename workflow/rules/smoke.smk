# Only in a smoke test (smoke: true): one training step of each model at the study's largest batch size.


rule smoke_step:
    input:
        data=processed_dataset(),
    output:
        step=results(f"{STEPS_FOLDER}/{{probe}}.json"),
    log:
        log_path("smoke_step", "{probe}"),
    conda:
        "../../envs/torch.yaml"
    envmodules:
        *env_modules(),
    threads: train_threads()
    resources:
        **job_resources(
            mem_mb=config["train_job"]["unmeasured_mem_mb"],
            runtime=STEP_MINUTES,
            gpus=TRAIN_GPUS,
        ),
    params:
        hparams=lambda wildcards: json.dumps(PROBES[wildcards.probe], sort_keys=True),
        processed_dir=folder(PROCESSED_DIR),
        code=rule_code("smoke_step"),
    shell:
        "python scripts/smoke_step.py --hparams {params.hparams:q} --processed-dir {params.processed_dir:q}"
        " --out {output.step:q} --gpus {resources.gpu} --threads {threads} > {log:q} 2>&1"
