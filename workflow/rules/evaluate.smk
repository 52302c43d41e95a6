rule evaluate:
    input:
        best=rules.train.output.best,
        data=processed_dataset(),
    output:
        metrics=run_file("evaluation"),
        confusion=run_file("confusion"),
    log:
        log_path("evaluate"),
    conda:
        "../../envs/torch.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=4000, runtime=30),
    params:
        processed_dir=folder(PROCESSED_DIR),
        history_dir=folder(HISTORY_DIR),
        code=rule_code("evaluate"),
        model_code=model_code(),
    shell:
        "python scripts/evaluate.py --best {input.best:q} --processed-dir {params.processed_dir:q}"
        " --metrics {output.metrics:q} --confusion {output.confusion:q} --history-dir {params.history_dir:q}"
        " > {log:q} 2>&1"
