rule preprocess:
    input:
        manifest=rules.download.output.manifest,
    output:
        processed_data(),
    log:
        log_path("preprocess", DATASET),
    conda:
        "../../envs/data.yaml"
    envmodules:
        *env_modules(),
    threads: 2
    resources:
        **job_resources(mem_mb=8000, runtime=60),
    params:
        dataset=json.dumps(
            mlpipe_config.preprocess_settings(config["dataset"]), sort_keys=True
        ),
        raw_dir=folder(RAW_DIR),
        processed_dir=folder(PROCESSED_DIR),
        code=rule_code("preprocess"),
        dataset_code=DATASET_CODE,
    shell:
        "python scripts/preprocess.py --dataset {params.dataset:q} --raw-dir {params.raw_dir:q}"
        " --processed-dir {params.processed_dir:q} --threads {threads} > {log:q} 2>&1"
