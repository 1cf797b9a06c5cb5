# Every target creates its own virtual environment on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint benchmark clean

$(STAMP): pyproject.toml requirements/nnunet-check.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# nnU-Net v2 for the export test, without its dependency tree (see the file's header).
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/nnunet-check.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/claim demo --out outputs/demo --threads 1

# Everything (CI runs this).
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# The quick tier while editing: skips whole-chain and real-training tests (marked slow).
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow"

benchmark: $(STAMP)
	$(BIN)/python benchmarks/aha_speed.py

clean:
	rm -rf outputs .pytest_cache
