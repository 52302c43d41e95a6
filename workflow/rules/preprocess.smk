rule preprocess:
    input:
        manifest=rules.download.output.manifest,
        code=rule_code("preprocess"),
        script="scripts/preprocess.py",
    output:
        processed_data(),
    params:
        dataset=preprocess_settings(),
        raw_dir=lambda wildcards, input: Path(input.manifest).parent,
        processed_dir=lambda wildcards, output: Path(output[0]).parent,
    envmodules:
        *env_modules(),
    conda:
        "../../envs/data.yaml"
    log:
        log_path("preprocess", DATASET),
    threads: 2
    resources:
        **job_resources(mem_mb=8000, runtime=60),
    shell:
        "python {input.script} --dataset {params.dataset:q} --raw-dir {params.raw_dir:q}"
        " --processed-dir {params.processed_dir:q} --threads {threads} > {log:q} 2>&1"
