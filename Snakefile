# mlpipe: download -> preprocess -> train -> evaluate -> analysis -> report.
# Run locally with `snakemake --cores 2`; on OSC with `snakemake --profile profiles/osc`.
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/config_syntax.smk"


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/halving.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/smoke.smk"


# Small jobs run where Snakemake runs (on a cluster: the login node) rather than wait in a queue:
# reading a few JSON/CSV files and drawing plots take seconds and little memory.
localrules:
    all,
    summarize,
    registry,
    plot,
    compare,
    archive,
    clean_checkpoints,
    tag,
    promote,
    ladder,


rule all:
    default_target: True
    input:
        final_outputs(),


# Last: what the parse built lives as long as Snakemake, so the garbage collector need not walk it again
# while Snakemake plans the jobs (a fifth of the dry run of a 1,000-run sweep; mlpipe.collector).
settle_parsed_workflow()
