# The whole set-up on a fresh machine is `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check install bench clean

$(BIN)/omnisync: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/omnisync

demo: install ## run the main job on the embedded defaults against the local emulator
	$(BIN)/omnisync demo

test: install ## lint, type-check and run the whole test suite
	scripts/services
	PATH="$(abspath $(BIN)):$$PATH" scripts/check

check: test

bench: install
	$(BIN)/python bench/export_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
