# The whole set-up on a fresh machine is `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What omnisync needs to run (the demo, the benchmark): its own dependencies only.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

# The test tools too (pytest, ruff, mypy, psycopg…): only `make test` pays for them,
# in one pip run (one resolution), which also installs what `make demo` needs. Not
# compiled at install (4 s of CPU for every module of every tool): the suite writes
# the bytecode of the modules it imports (scripts/check).
$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install ## run the main job on the embedded defaults against the local emulator
	$(BIN)/omnisync demo

test: install-test ## lint, type-check and run the whole test suite
	scripts/services
	PATH="$(abspath $(BIN)):$$PATH" scripts/check

check: test

bench: install
	$(BIN)/python bench/export_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
