rule download:
    output:
        manifest=str(RAW_DIR / MANIFEST_NAME),
    input:
        code=rule_code("download"),
        script="scripts/download.py",
    params:
        dataset=download_settings(),
        raw_dir=lambda wildcards, output: Path(output.manifest).parent,
    envmodules:
        *env_modules(),
    conda:
        "../../envs/torch.yaml"
    log:
        log_path("download", DATASET),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    shell:
        "python {input.script} --dataset {params.dataset:q} --raw-dir {params.raw_dir:q} > {log:q} 2>&1"
