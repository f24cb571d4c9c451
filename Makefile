# ablate — make demo: the main job on the embedded default data; make test: the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast install clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The quickstart study through an embedded local Ray (≈ 6 min on 2 CPU cores; finished trials
# are skipped when run again), then its table and report.
demo: $(STAMP)
	$(BIN)/ablate validate studies/quickstart.toml
	$(BIN)/ablate run studies/quickstart.toml --results results
	$(BIN)/ablate table results --study quickstart
	$(BIN)/ablate report results --study quickstart --out results/quickstart/report
	@echo "report: results/quickstart/report/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The inner loop: everything but the integration tests (Ray, subprocesses, kills, whole
# studies; tests/conftest.py), under a minute on 2 cores. CI runs `make test`.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
