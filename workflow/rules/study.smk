# Targets run on demand: `snakemake --cores 1 archive`, `snakemake --cores 1 clean_checkpoints`,
# `snakemake --cores 1 tag --config tag=NAME`.


rule archive:
    input:
        final_outputs(),
        best=all_runs("best"),
    output:
        ARCHIVE_FILE,
    log:
        log_path("archive", "archive"),
    conda:
        "../../envs/analysis.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    params:
        results_dir=folder(RESULTS),
        run_ids=run_ids_of("best"),
        config=json.dumps({key: value for key, value in config.items() if key != "tag"}),
        code=rule_code("archive"),
    shell:
        "python scripts/archive.py --results-dir {params.results_dir:q} --run-ids {params.run_ids:q}"
        " --config {params.config:q} --out {output:q} > {log:q} 2>&1"


rule clean_checkpoints:
    log:
        log_path("clean_checkpoints", "clean_checkpoints"),
    conda:
        "../../envs/analysis.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=1000, runtime=10),
    params:
        checkpoint_root=str(CHECKPOINT_ROOT),
        runs_dir=results("runs"),
        run_ids=json.dumps(list(RUNS)),
        code=rule_code("clean_checkpoints"),
    shell:
        "python scripts/clean_checkpoints.py --checkpoint-root {params.checkpoint_root:q} --runs-dir {params.runs_dir:q}"
        " --run-ids {params.run_ids:q} > {log:q} 2>&1"


rule tag:
    log:
        log_path("tag", "tag"),
    conda:
        "../../envs/analysis.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=1000, runtime=10),
    params:
        name=config["tag"] or "",
        runs_dir=results("runs"),
        history_dir=folder(HISTORY_DIR),
        hparams_digests=hparams_digests,
        code=rule_code("tag"),
    shell:
        "python scripts/tag.py --name={params.name:q} --runs-dir {params.runs_dir:q}"
        " --history-dir {params.history_dir:q} --hparams-digests {params.hparams_digests:q} > {log:q} 2>&1"
