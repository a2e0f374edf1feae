# Every target builds .venv from nothing on a fresh machine. torch==2.13.0 goes in first:
# its CPU build lies on this machine's disk, while a bare "torch" requirement may pull a
# CUDA build of several GB.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   ?= torch==2.13.0

.PHONY: demo test test-fast lint bench browser clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[lab,dev,integrations,references]"
	touch $(STAMP)

# The main job on the embedded default: digits MLP, seven optimizers, three seeds.
demo: $(STAMP)
	$(BIN)/descend compare --out runs/demo
	@echo "open runs/demo/report.html in a browser"

# The report test renders report.html in Debian's chromium; install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report test"; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium; the browser test will be skipped (fails under CI)"; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests examples docs benchmarks
	$(BIN)/lint-imports

# Optimizer-step benchmarks against torch.optim in one run; writes benchmarks/results.json
# and docs/performance.md. Takes several minutes (the compiled path compiles each recipe).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
