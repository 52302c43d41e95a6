# Everyday commands. `make run` and `make test` set up .venv on first use, from the lock in requirements/:
# every package pinned with its hashes, so a login node, CI and a colleague next year install the same.
VENV ?= .venv
PYTHON ?= python3
# The PyTorch build. pypi: PyPI's (CUDA 13, kernels for compute capability 7.5 and newer: Ascend's A100s,
# Cardinal's H100s, a laptop), from the lock. Any other value is a build from PyTorch's own index of the same
# pinned release, e.g. cu126 for Pitzer's V100s (7.0):  make setup TORCH_BUILD=cu126
# Unless given, it stays what the venv was set up with (its stamp says), so `make test` keeps a cu126 venv.
TORCH_STAMP = $(VENV)/.built-with-torch-
TORCH_BUILD ?= $(or $(patsubst $(TORCH_STAMP)%,%,$(wildcard $(TORCH_STAMP)*)),pypi)
TORCH_INDEX ?= https://download.pytorch.org/whl/$(TORCH_BUILD)
CORES ?= 2
# Two test workers, each taking whole test files: the SLURM tests (one file, one cluster) mostly wait on
# their cluster while the other worker keeps the CPUs busy.
TEST_WORKERS ?= 2
# `make lock LOCK_FLAGS=--upgrade` re-pins to the newest releases; without it the current pins stay.
LOCK_FLAGS ?=

export PATH := $(abspath $(VENV))/bin:$(PATH)

# torch and torchvision as pinned in the lock, with the build's label: torch==2.14.1+cu126 torchvision==0.29.1+cu126
TORCH_PINS = $(shell sed -n 's/^\(torch\|torchvision\)==\([^ ;]*\).*/\1==\2+$(TORCH_BUILD)/p' requirements/torch.txt)
# Stamps inside the venv: a new venv (another build, a changed lock) starts without them.
INSTALLED := $(TORCH_STAMP)$(TORCH_BUILD)
TEST_INSTALLED := $(VENV)/.installed-test
LOCK_OPTIONS = --universal --python-version 3.11 --generate-hashes --custom-compile-command 'make lock' --quiet

.PHONY: setup setup-test run report archive smoke status tag history test lint lock benchmark clean

setup: $(INSTALLED)  ## what running needs

setup-test: $(TEST_INSTALLED)  ## and the test and lint tools

# A fresh venv whenever the lock or the build changes, so nothing of an earlier install lingers.
$(INSTALLED): pyproject.toml requirements/run.txt requirements/torch.txt
	$(PYTHON) -m venv --clear $(VENV)
	pip install --quiet --require-hashes --no-deps -r requirements/run.txt
ifeq ($(TORCH_BUILD),pypi)
	pip install --quiet --require-hashes --no-deps -r requirements/torch.txt
else
	pip install --quiet --index-url $(TORCH_INDEX) $(TORCH_PINS)
endif
	pip install --quiet --no-deps --no-build-isolation -e .
	pip check
	touch $@

$(TEST_INSTALLED): $(INSTALLED) requirements/test.txt
	pip install --quiet --require-hashes --no-deps -r requirements/test.txt
	pip check
	touch $@

run: setup  ## the whole pipeline on the built-in dataset, then the HTML report
	snakemake --cores $(CORES)
	snakemake --report results/report.html

report: setup
	snakemake --report results/report.html

archive: report  ## pack the finished study: make archive DEST=/fs/ess/PAS1234/archives
	snakemake --cores 1 archive $(if $(DEST),--config archive='{destination: $(DEST)}')

smoke: setup  ## test small first: the study in miniature, then what passed: make smoke [PROFILE=profiles/osc]
	python scripts/smoke.py $(if $(PROFILE),--profile $(PROFILE),--cores $(CORES)) $(if $(CONFIGFILE),--configfile $(CONFIGFILE))

status: setup  ## where each run stands while a study runs: make status [CONFIGFILE=my-study.yaml]
	python scripts/status.py $(if $(CONFIGFILE),--configfile $(CONFIGFILE))

tag: setup  ## name the study's current pass: make tag NAME=baseline
	snakemake --cores 1 tag --config tag=$(NAME)

history: setup  ## the study's passes and tags, and the current pass against its baseline: make history [BASELINE=tag]
	python scripts/history.py $(if $(CONFIGFILE),--configfile $(CONFIGFILE)) $(if $(BASELINE),--baseline $(BASELINE))

test: setup-test  ## unit and end-to-end tests (real Snakemake runs; SLURM tests when slurm-wlm is installed)
	pytest -n $(TEST_WORKERS) --dist loadfile -m "not alone"
	pytest -m alone

lint: setup-test  ## the workflow (snakemake --lint, snakefmt) and the Python (ruff)
	snakemake --lint
	snakefmt --check Snakefile workflow
	ruff check
	ruff format --check

# Re-pin from pyproject.toml and requirements/*.in (needs uv: pip install uv). The test lock is resolved first
# and the run lock within it, so the two agree; both leave out torch and what only torch needs (torch.txt).
lock:
	uv pip compile $(LOCK_OPTIONS) $(LOCK_FLAGS) requirements/torch.in -o requirements/torch.txt
	uv pip compile $(LOCK_OPTIONS) $(LOCK_FLAGS) pyproject.toml requirements/setup.in --extra test --extra lint \
		-c requirements/torch.txt --excludes requirements/torch.in -o requirements/test.txt
	uv pip compile $(LOCK_OPTIONS) $(LOCK_FLAGS) pyproject.toml requirements/setup.in \
		-c requirements/torch.txt -c requirements/test.txt --excludes requirements/torch.in -o requirements/run.txt

benchmark: setup  ## speed figures: end-to-end pipeline, dry run of 1,000 runs, preprocess, parse time, training throughput, history, GPU watch cost, halving against the grid
	python benchmarks/pipeline.py
	python benchmarks/dry_run.py
	python benchmarks/preprocess.py
	python benchmarks/parse.py
	python benchmarks/training.py
	python benchmarks/history.py
	python benchmarks/gpu_watch.py
	python benchmarks/halving.py

clean:
	rm -rf results/* data .snakemake
