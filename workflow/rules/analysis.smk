rule summarize:
    input:
        run_configs=all_runs("run_config.json"),
        evaluations=all_runs("evaluation.json"),
        code=rule_code("summarize"),
        script="scripts/summarize.py",
    output:
        report(
            results("summary.csv"),
            caption="../report/summary.rst",
            category="Results",
            labels={"table": "summary of runs"},
        ),
    params:
        runs_dir=lambda wildcards, input: Path(input.run_configs[0]).parent.parent,
        run_ids=json.dumps(list(RUNS)),
        swept=json.dumps(SWEPT),
    envmodules:
        *env_modules(),
    conda:
        "../../envs/analysis.yaml"
    log:
        log_path("summarize", "summary"),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=10),
    shell:
        "python {input.script} --runs-dir {params.runs_dir:q} --run-ids {params.run_ids:q} --swept {params.swept:q}"
        " --out {output:q} > {log:q} 2>&1"


rule plot:
    input:
        summary=results("summary.csv"),
        metrics=all_runs("metrics.csv"),
        confusions=all_runs("confusion.csv"),
        code=rule_code("plot"),
        script="scripts/plot.py",
    output:
        learning_curves=report(
            results("plots/learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Plots",
            labels={"figure": "learning curves"},
        ),
        test_accuracy=report(
            results("plots/test_accuracy.png"),
            caption="../report/test_accuracy.rst",
            category="Plots",
            labels={"figure": "test accuracy per sweep value"},
        ),
        confusion=report(
            results("plots/confusion_best.png"),
            caption="../report/confusion_best.rst",
            category="Plots",
            labels={"figure": "confusion matrix of the best run"},
        ),
    params:
        runs_dir=lambda wildcards, input: Path(input.metrics[0]).parent.parent,
        swept=json.dumps(SWEPT),
    envmodules:
        *env_modules(),
    conda:
        "../../envs/analysis.yaml"
    log:
        log_path("plot", "plots"),
    threads: 1
    resources:
        **job_resources(mem_mb=2000, runtime=10),
    shell:
        "python {input.script} --summary {input.summary:q} --runs-dir {params.runs_dir:q} --swept {params.swept:q}"
        " --learning-curves {output.learning_curves:q} --test-accuracy {output.test_accuracy:q}"
        " --confusion {output.confusion:q} > {log:q} 2>&1"
