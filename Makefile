# Everyday commands. `make run` and `make test` set up .venv on first use.
VENV ?= .venv
PYTHON ?= python3
# PyTorch is installed on its own first, so a lab can point this at the build its cluster needs.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CORES ?= 2
# Two test workers, each taking whole test files: the SLURM tests (one file, one cluster) mostly wait on
# their cluster while the other worker keeps the CPUs busy.
TEST_WORKERS ?= 2

export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run report archive test lint benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	pip install --quiet --upgrade pip
	pip install --quiet $(TORCH_SPEC)
	pip install --quiet -e '.[test]'
	touch $@

run: setup  ## the whole pipeline on the built-in dataset, then the HTML report
	snakemake --cores $(CORES)
	snakemake --report results/report.html

report: setup
	snakemake --report results/report.html

archive: report  ## pack the finished study: make archive DEST=/fs/ess/PAS1234/archives
	snakemake --cores 1 archive $(if $(DEST),--config archive='{destination: $(DEST)}')

test: setup  ## unit and end-to-end tests (real Snakemake runs; SLURM tests when slurm-wlm is installed)
	pytest -n $(TEST_WORKERS) --dist loadfile

lint: setup
	snakemake --lint

benchmark: setup  ## speed figures: end-to-end pipeline, dry run of 1,000 runs, preprocess, training throughput
	python benchmarks/pipeline.py
	python benchmarks/dry_run.py
	python benchmarks/preprocess.py
	python benchmarks/training.py

clean:
	rm -rf results/* data .snakemake
