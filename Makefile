# The README's two commands: `make figures` (the main job) and `make test`.
# Both create .venv when it is missing and install the pinned set (pyproject.toml) into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MUJOCO_GL ?= disable

.PHONY: install test test-slurm figures lint bench-envs clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "Python 3.11 or 3.12 is needed, found " + sys.version.split()[0]'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Everything but the SLURM cluster tests (they need root and Debian's slurm-wlm and munge, and take
# longer than the rest together); CI runs both.
test: $(STAMP)
	$(PY) -m pytest -m "not slurm"

# Only the workflow on a one-node SLURM cluster (root; Debian's slurm-wlm and munge: .ci/run
# installs them). About 10-15 minutes on 2 cores.
test-slurm: $(STAMP)
	$(PY) -m pytest -m slurm tests/test_slurm.py

figures: $(STAMP)
	$(VENV)/bin/snakemake --cores all figures

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-envs: $(STAMP)
	$(VENV)/bin/m3po bench envs

clean-venv:
	rm -rf $(VENV)
