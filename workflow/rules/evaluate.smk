rule evaluate:
    input:
        best=rules.train.output.best,
        data=processed_data(),
        code=rule_code("evaluate"),
        script="scripts/evaluate.py",
    output:
        metrics=run_path("evaluation.json"),
        confusion=run_path("confusion.csv"),
    params:
        processed_dir=lambda wildcards, input: Path(input.data[0]).parent,
    envmodules:
        *env_modules(),
    conda:
        "../../envs/torch.yaml"
    log:
        log_path("evaluate"),
    threads: 1
    resources:
        **job_resources(mem_mb=4000, runtime=30),
    shell:
        "python {input.script} --best {input.best:q} --processed-dir {params.processed_dir:q}"
        " --metrics {output.metrics:q} --confusion {output.confusion:q} > {log:q} 2>&1"
