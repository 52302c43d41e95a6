# Targets run on demand: `snakemake --cores 1 archive`, `snakemake --cores 1 clean_checkpoints`.


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
        run_ids=json.dumps(list(RUNS)),
        config=json.dumps(config),
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
