rule download:
    output:
        manifest=str(RAW_DIR / MANIFEST_NAME),
    log:
        log_path("download", DATASET),
    conda:
        "../../envs/torch.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    params:
        dataset=json.dumps(
            mlpipe_config.download_settings(config["dataset"]), sort_keys=True
        ),
        raw_dir=folder(RAW_DIR),
        code=rule_code("download"),
    shell:
        "python scripts/download.py --dataset {params.dataset:q} --raw-dir {params.raw_dir:q} > {log:q} 2>&1"
