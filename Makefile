# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint deps venv bench clean

deps:
	@scripts/install-deps.sh

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	@touch $(STAMP)

venv: $(STAMP)

demo: deps venv
	$(BIN)/xmpp-clinic demo

test: deps venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check xmpp_clinic tests bench
	$(BIN)/ruff format --check xmpp_clinic tests bench
	$(BIN)/mypy --strict xmpp_clinic

bench: deps venv
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
