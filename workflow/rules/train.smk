rule train:
    input:
        data=processed_dataset(),
        previous=previous_rung,  # under successive halving: the last rung, whose state the run continues
    output:
        metrics=run_file("metrics"),
        best=run_file("best"),
        last=run_file("last"),
        run_config=run_file("run_config"),
    log:
        log_path("train"),
    conda:
        "../../envs/torch.yaml"
    envmodules:
        *env_modules(),
    threads: train_threads()
    resources:
        **job_resources(
            mem_mb=train_request("mem_mb"),
            runtime=train_request("minutes"),
            gpus=TRAIN_GPUS,
            signal_before_walltime=config["train_job"]["signal_before_walltime"],
        ),
    params:
        hparams=run_hparams,
        processed_dir=folder(PROCESSED_DIR),
        run_dir=folder(RESULTS / "runs" / "{run}"),
        # Resumable state lives outside the declared outputs: Snakemake deletes those when a job fails.
        state_dir=str(CHECKPOINT_ROOT / "{run}"),
        # Every finished version is kept there, outside the declared outputs (mlpipe.history).
        history_dir=folder(HISTORY_DIR),
        code=rule_code("train"),
        model_code=model_code(),
        budget_may_grow="--budget-may-grow" if LADDER else "",  # resumes the last rung's state (halving.smk)
    shell:
        "python scripts/train.py --run-id {wildcards.run:q} --hparams {params.hparams:q}"
        " --processed-dir {params.processed_dir:q} --metrics {output.metrics:q} --best {output.best:q}"
        " --last {output.last:q} --run-config {output.run_config:q} --run-dir {params.run_dir:q}"
        " --state-dir {params.state_dir:q} --history-dir {params.history_dir:q}"
        " {params.budget_may_grow} --gpus {resources.gpu} --threads {threads}"
        " --request-mem-mb {resources.mem_mb} --request-runtime {resources.runtime} > {log:q} 2>&1"
