# Every target does its own set-up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast check-extras lint bench docs docs-check docs-ci notebooks clean browser

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch 2.13.0 first: an unpinned torch would pull several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev,docs]'
	touch $(STAMP)

demo: $(STAMP)
	# The demo's own run folders start afresh each time (a run folder that holds a run is never reused).
	rm -rf runs/core_demo runs/physics_qg
	$(PY) examples/core_demo.py
	$(PY) examples/physics_qg_tagging.py --run-dir runs/physics_qg
	$(VENV)/bin/torchsci chem predict --model esol examples/data/molecules.csv -o runs/chem_predictions.csv
	cat runs/chem_predictions.csv
	$(PY) examples/neuro_segment.py --out-dir runs/neuro_segment

# Headless Chromium for the neuro QC report's browser test (tests/neuro/test_study.py fails without it).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(STAMP)
	$(VENV)/bin/ruff check torchsci torchsci_neuro torchsci_physics torchsci_chem tests examples benchmarks docs
	$(PY) -m pytest -q

# The inner loop: the suite without the tests marked slow (multi-process, long training); `make test` stays complete.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Each extra alone, for real: a fresh venv per extra (no system site-packages) with torch, then the wheel with
# that extra only, then that field's one-call story, `torchsci --version`, and the other fields reported absent.
# About 3 min and 1-2 GB per venv; run before a release and whenever an extra or a plug-in's imports change.
EXTRAS_DIR ?= build/check-extras
check-extras: $(STAMP)
	rm -rf $(EXTRAS_DIR) && mkdir -p $(EXTRAS_DIR)
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $(EXTRAS_DIR)/wheel .
	for field in core neuro physics chem; do \
	  extra=$$( [ $$field = core ] && echo "" || echo "[$$field]" ); \
	  $(PYTHON) -m venv $(EXTRAS_DIR)/$$field && \
	  $(EXTRAS_DIR)/$$field/bin/pip install --quiet torch==2.13.0 && \
	  $(EXTRAS_DIR)/$$field/bin/pip install --quiet "$$(ls $(EXTRAS_DIR)/wheel/torchsci-*.whl)$$extra" && \
	  (cd $(EXTRAS_DIR) && $$field/bin/torchsci --version && $$field/bin/python $(CURDIR)/tests/extras_story.py $$field) \
	  || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check torchsci torchsci_neuro torchsci_physics torchsci_chem tests examples benchmarks docs

# The documentation site: API reference, CLI pages, model cards, benchmarks and the executed tutorials.
# -W: a warning fails the build; -n: so does a broken cross-reference. Tutorials are executed and cached
# (an unchanged one is not run again); TORCHSCI_SMOKE=1 builds them on tiny data into docs/_build/smoke.
DOCS_BUILD := docs/_build/$(if $(filter 1,$(TORCHSCI_SMOKE)),smoke,full)

docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going -n -d $(DOCS_BUILD)/doctrees docs $(DOCS_BUILD)/html
	@echo "site: $(DOCS_BUILD)/html/index.html"

# A reader's check of the built site: headless Chromium opens the index, a tutorial and an API page.
docs-check: $(STAMP)
	TORCHSCI_DOCS_HTML=$(DOCS_BUILD)/html $(PY) -m pytest -q -p no:cacheprovider docs/check_site.py

# What CI runs after `make test`: the site with the tutorials on tiny data, then the browser check.
docs-ci:
	$(MAKE) docs docs-check TORCHSCI_SMOKE=1

# The Colab form of each tutorial (what the Colab badges open): docs/tutorials/colab/<name>.ipynb, no outputs.
notebooks: $(STAMP)
	for f in docs/tutorials/*.py; do $(PY) -m jupytext --update --to ipynb -o docs/tutorials/colab/$$(basename $$f .py).ipynb $$f; done

bench: $(STAMP)
	$(PY) benchmarks/core_trainer_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/api/generated
