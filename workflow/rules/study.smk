# Targets run on demand: `snakemake --cores 1 archive`, `snakemake --cores 1 clean_checkpoints`.


rule archive:
    input:
        final_outputs(),
        best=all_runs("best.pt"),
        code=rule_code("archive"),
        script="scripts/archive.py",
    output:
        ARCHIVE_FILE,
    params:
        results_dir=lambda wildcards, input: Path(input.best[0]).parent.parent.parent,
        run_ids=json.dumps(list(RUNS)),
        config=json.dumps(config),
    envmodules:
        *env_modules(),
    conda:
        "../../envs/analysis.yaml"
    log:
        log_path("archive", "archive"),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=60),
    shell:
        "python {input.script} --results-dir {params.results_dir:q} --run-ids {params.run_ids:q}"
        " --config {params.config:q} --out {output:q} > {log:q} 2>&1"


rule clean_checkpoints:
    input:
        code=rule_code("clean_checkpoints"),
        script="scripts/clean_checkpoints.py",
    params:
        checkpoint_root=str(CHECKPOINT_ROOT),
        runs_dir=results("runs"),
        run_ids=json.dumps(list(RUNS)),
    envmodules:
        *env_modules(),
    conda:
        "../../envs/analysis.yaml"
    log:
        log_path("clean_checkpoints", "clean_checkpoints"),
    threads: 1
    resources:
        **job_resources(mem_mb=1000, runtime=10),
    shell:
        "python {input.script} --checkpoint-root {params.checkpoint_root:q} --runs-dir {params.runs_dir:q}"
        " --run-ids {params.run_ids:q} > {log:q} 2>&1"
