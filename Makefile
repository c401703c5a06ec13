# The README's two commands: `make figures` (the main job) and `make test`.
# Both create .venv when it is missing and install the pinned set (pyproject.toml) into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MUJOCO_GL ?= disable

.PHONY: install test test-slurm test-browser figures lint bench-envs clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "Python 3.11 or 3.12 is needed, found " + sys.version.split()[0]'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Everything but the SLURM cluster tests (they need root and Debian's slurm-wlm and munge, and take
# longer than the rest together) and the browser check (Debian's chromium); CI runs all three.
test: $(STAMP)
	$(PY) -m pytest -m "not slurm and not browser"

# Only the workflow on a one-node SLURM cluster (root; Debian's slurm-wlm and munge: .ci/run
# installs them). About 10-15 minutes on 2 cores.
test-slurm: $(STAMP)
	$(PY) -m pytest -m slurm tests/test_slurm.py

# Only the report in headless Chromium (Debian's chromium: .ci/run installs it), about 30 s; the
# screenshot of the whole page goes to build/report-screenshot.png.
test-browser: $(STAMP)
	M3PO_REPORT_SCREENSHOT=build/report-screenshot.png $(PY) -m pytest -m browser tests/test_browser.py

figures: $(STAMP)
	$(VENV)/bin/snakemake --cores all figures

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-envs: $(STAMP)
	$(VENV)/bin/m3po bench envs

clean-venv:
	rm -rf $(VENV)
