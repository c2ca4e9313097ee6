# Every target does its own set-up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast check-extras lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch 2.13.0 first: an unpinned torch would pull several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/core_demo.py
	$(PY) examples/physics_qg_tagging.py --run-dir runs/physics_qg
	$(VENV)/bin/torchsci chem predict --model esol examples/data/molecules.csv -o runs/chem_predictions.csv
	cat runs/chem_predictions.csv
	$(PY) examples/neuro_segment.py --out-dir runs/neuro_segment

test: $(STAMP)
	$(VENV)/bin/ruff check torchsci torchsci_neuro torchsci_physics torchsci_chem tests examples benchmarks
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
	$(VENV)/bin/ruff check torchsci torchsci_neuro torchsci_physics torchsci_chem tests examples benchmarks

bench: $(STAMP)
	$(PY) benchmarks/core_trainer_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
