rule train:
    input:
        data=processed_data(),
        code=rule_code("train"),
        script="scripts/train.py",
    output:
        metrics=run_path("metrics.csv"),
        best=run_path("best.pt"),
        last=run_path("last.pt"),
        run_config=run_path("run_config.json"),
    params:
        hparams=run_hparams,
        processed_dir=lambda wildcards, input: Path(input.data[0]).parent,
        out_dir=lambda wildcards, output: Path(output.metrics).parent,
        # Resumable state lives outside the declared outputs: Snakemake deletes those when a job fails.
        state_dir=lambda wildcards: str(CHECKPOINT_ROOT / wildcards.run),
    envmodules:
        *env_modules(),
    conda:
        "../../envs/torch.yaml"
    log:
        log_path("train"),
    threads: train_threads()
    resources:
        **job_resources(
            mem_mb=config["train_job"]["mem_mb"], runtime=config["train_job"]["runtime"], gpus=TRAIN_GPUS
        ),
    shell:
        "python {input.script} --run-id {wildcards.run:q} --hparams {params.hparams:q}"
        " --processed-dir {params.processed_dir:q} --out-dir {params.out_dir:q} --state-dir {params.state_dir:q}"
        " --gpus {resources.gpu} --threads {threads} --request-mem-mb {resources.mem_mb}"
        " --request-runtime {resources.runtime} > {log:q} 2>&1"
