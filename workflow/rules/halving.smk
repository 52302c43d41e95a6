# Successive halving (sweep.halving; mlpipe.search.halving): every run trains to the first rung's epochs
# (train_rung); after each rung the promote checkpoint ranks its configurations and names the best 1/eta; their
# runs continue from the state the rung saved, up to the next rung, and the last rung's are trained to
# train.epochs by the train rule (train.smk). Files are named by the epochs a rung ends at, and the budget reaches a
# rung's job in its environment (common.smk), so raising train.epochs or adding configurations reuses every
# finished rung.


wildcard_constraints:
    epochs=r"\d+",


rule train_rung:
    input:
        data=processed_dataset(),
        previous=previous_rung,
    output:
        record=rung_record("{epochs}"),
    log:
        log_path("train_rung", "rung-{epochs}/{run}"),
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
        hparams=hparams_without_epochs,
        processed_dir=folder(PROCESSED_DIR),
        run_dir=folder(RESULTS / "runs" / "{run}"),
        state_dir=str(CHECKPOINT_ROOT / "{run}"),  # shared with the run's later rungs and its train job
        code=rule_code("train"),
        model_code=model_code(),
    shell:
        "python scripts/train.py --run-id {wildcards.run:q} --hparams {params.hparams:q}"
        " --until-epoch {wildcards.epochs} --rung-record {output.record:q}"
        " --budget-may-grow --processed-dir {params.processed_dir:q} --run-dir {params.run_dir:q}"
        " --state-dir {params.state_dir:q} --gpus {resources.gpu} --threads {threads}"
        " --request-mem-mb {resources.mem_mb} --request-runtime {resources.runtime} > {log:q} 2>&1"


checkpoint promote:
    input:
        records=lambda wildcards: expand(
            rung_record(wildcards.epochs, "{run}"),
            run=runs_in_rung(LADDER.index(int(wildcards.epochs))),
        ),
    output:
        rung_promotion("{epochs}"),
    log:
        log_path("promote", "rung-{epochs}"),
    conda:
        "../../envs/analysis.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=1000, runtime=10),
    params:
        keep=lambda wildcards: LADDER.keep_after(int(wildcards.epochs)),
        code=rule_code("promote"),
    shell:
        "python scripts/promote.py --records {input.records:q} --epochs {wildcards.epochs}"
        " --keep {params.keep} --out {output:q} > {log:q} 2>&1"


rule ladder:
    input:
        promotions=lambda wildcards: [
            checkpoints.promote.get(epochs=str(epochs)).output[0]
            for epochs in LADDER.rungs[:-1]
        ],
        evaluations=all_runs("evaluation"),  # each stands for a finalist's folder (see summarize)
    output:
        budget=results("halving_budget.csv"),
        budget_page=report(
            results("halving_budget.html"),
            caption="../report/halving_budget.rst",
            category="Comparison",
            labels={"name": "successive halving: epochs against the full grid"},
        ),
        plot=report(
            results("plots/ladder.png"),
            caption="../report/ladder.rst",
            category="Comparison",
            labels={"name": "successive halving: each configuration per rung"},
        ),
    log:
        log_path("ladder", "ladder"),
    conda:
        "../../envs/analysis.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=10),
    params:
        runs_dir=folder(RESULTS / "runs"),
        run_ids=run_ids_of("evaluations"),
        epochs=config["train"]["epochs"],
        # What the rankings say: a promotion that changed without changing the finalists (a new configuration
        # stopped at its first rung) redraws the ladder in the same Snakemake, which mtimes alone do not.
        rankings=lambda wildcards, input: file_digest(input.promotions),
        code=rule_code("ladder"),
    shell:
        "python scripts/ladder.py --promotions {input.promotions:q} --runs-dir {params.runs_dir:q}"
        " --run-ids {params.run_ids:q} --epochs {params.epochs} --budget {output.budget:q} --plot {output.plot:q}"
        " > {log:q} 2>&1"
