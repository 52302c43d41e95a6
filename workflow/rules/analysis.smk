rule summarize:
    input:
        # Each run's evaluation.json, written after every other file of the run, stands for its folder:
        # a sweep of 1,000 runs then gives Snakemake 1,000 inputs to resolve here, not 3,000.
        evaluations=all_runs("evaluation"),
    output:
        summary=results("summary.csv"),
        comparison=results("comparison.csv"),
        resources=results("resources.csv"),
        cost=results("cost.csv"),
        excluded=results("excluded_runs.csv"),
        summary_page=report(
            results("summary.html"),
            caption="../report/summary.rst",
            category="Runs",
            labels={"name": "every run"},
        ),
        comparison_page=report(
            results("comparison.html"),
            caption="../report/comparison.rst",
            category="Comparison",
            labels={"name": "configurations over seeds"},
        ),
        resources_page=report(
            results("resources.html"),
            caption="../report/resources.rst",
            category="Resources",
            labels={"name": "asked for and used, per run"},
        ),
        cost_page=report(
            results("cost.html"),
            caption="../report/cost.rst",
            category="Resources",
            labels={"name": "GPU-hours asked for and used"},
        ),
        excluded_page=report(
            results("excluded_runs.html"),
            caption="../report/excluded_runs.rst",
            category="Runs",
            labels={"name": "runs left out"},
        ),
        best_config=report(
            results("best_config.yaml"),
            caption="../report/best_config.rst",
            category="Comparison",
            labels={"name": "best configuration"},
        ),
    log:
        log_path("summarize", "summary"),
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
        swept=json.dumps(SWEPT),
        # Copied into best_config.yaml, so that it reproduces the study whatever config/config.yaml holds.
        study=json.dumps(mlpipe_config.study_settings(config)),
        code=rule_code("summarize"),
    shell:
        "python scripts/summarize.py --runs-dir {params.runs_dir:q} --run-ids {params.run_ids:q} --swept {params.swept:q}"
        " --study {params.study:q}"
        " --summary {output.summary:q} --comparison {output.comparison:q}"
        " --resources {output.resources:q} --cost {output.cost:q} --excluded {output.excluded:q}"
        " --best-config {output.best_config:q}"
        " > {log:q} 2>&1"


rule registry:
    input:
        evaluations=all_runs("evaluation"),  # each stands for its run's folder (see summarize)
    output:
        database=results("registry.sqlite"),
        provenance=results("provenance.csv"),
        provenance_page=report(
            results("provenance.html"),
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"name": "code, packages and machine of each run"},
        ),
    log:
        log_path("registry", "registry"),
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
        history_dir=folder(HISTORY_DIR),
        keep_weights=config["history"]["keep_weights"],
        profile=folder(RESULTS / PROFILE_NAME),
        code=rule_code("registry"),
    shell:
        "python scripts/registry.py --runs-dir {params.runs_dir:q} --run-ids {params.run_ids:q}"
        " --database {output.database:q} --provenance {output.provenance:q}"
        " --history-dir {params.history_dir:q} --keep-weights {params.keep_weights:q}"
        " --profile {params.profile:q} > {log:q} 2>&1"


rule compare:
    input:
        evaluations=all_runs("evaluation"),  # each stands for its run's folder (see summarize)
    output:
        table=results("comparison_baseline.csv"),
        page=report(
            results("comparison_baseline.html"),
            caption="../report/comparison_baseline.rst",
            category="Comparison",
            labels={"name": "current pass against its baseline"},
        ),
        plot=report(
            results("plots/before_after.png"),
            caption="../report/before_after.rst",
            category="Comparison",
            labels={"name": "each configuration before and after"},
        ),
    log:
        log_path("compare", "compare"),
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
        history_dir=folder(HISTORY_DIR),
        baseline=config["compare"]["baseline"] or "",
        swept=json.dumps(SWEPT),
        code=rule_code("compare"),
    shell:
        "python scripts/compare.py --runs-dir {params.runs_dir:q} --run-ids {params.run_ids:q}"
        " --history-dir {params.history_dir:q} --baseline={params.baseline:q} --swept {params.swept:q}"
        " --table {output.table:q} --plot {output.plot:q} > {log:q} 2>&1"


rule plot:
    input:
        # Plain paths, not the output objects: see paths() in common.smk.
        summary=str(rules.summarize.output.summary),
        comparison=str(rules.summarize.output.comparison),
        evaluations=all_runs("evaluation"),  # each stands for its run's folder (see summarize)
    output:
        learning_curves=report(
            results("plots/learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Comparison",
            labels={"name": "learning curves"},
        ),
        test_accuracy=report(
            results("plots/test_accuracy.png"),
            caption="../report/test_accuracy.rst",
            category="Comparison",
            labels={"name": "test accuracy per sweep value"},
        ),
        confusion=report(
            results("plots/confusion_best.png"),
            caption="../report/confusion_best.rst",
            category="Comparison",
            labels={"name": "confusion matrix of the best configuration"},
        ),
        resources=report(
            results("plots/time_and_throughput.png"),
            caption="../report/resources_plot.rst",
            category="Resources",
            labels={"name": "time and throughput per run"},
        ),
    log:
        log_path("plot", "plots"),
    # The longest job after the summary, and the report waits for it: first when cores are short.
    priority: 1
    conda:
        "../../envs/analysis.yaml"
    envmodules:
        *env_modules(),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=10),
    params:
        runs_dir=folder(RESULTS / "runs"),
        swept=json.dumps(SWEPT),
        code=rule_code("plot"),
    shell:
        "python scripts/plot.py --summary {input.summary:q} --comparison {input.comparison:q}"
        " --runs-dir {params.runs_dir:q} --swept {params.swept:q} --learning-curves {output.learning_curves:q}"
        " --test-accuracy {output.test_accuracy:q} --confusion {output.confusion:q} --resources {output.resources:q}"
        " > {log:q} 2>&1"
