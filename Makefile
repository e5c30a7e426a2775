# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-clients lint deps venv bench report clean

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

# Test files run in parallel, each file whole on one worker (its tests may build on each
# other, as the client suite's steps do); every worker starts its own private servers.
# On two cores some real-server tests can miss a deadline under that load: the tests that
# failed are run once more, alone, and only their second verdict counts (both runs'
# failures stay in the log).
TEST_WORKERS ?= 3

test: deps venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) $(JUNIT_ARGS) || \
	  { echo "make test: running the failed tests once more, alone"; \
	    $(BIN)/python -m pytest --last-failed --last-failed-no-failures none -p no:randomly $(PYTEST_ARGS); }

# The client-compatibility suite alone (Profanity under tmux; also part of make test).
test-clients: deps venv
	$(BIN)/python -m pytest tests/clients $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check xmpp_clinic tests bench
	$(BIN)/ruff format --check xmpp_clinic tests bench
	$(BIN)/mypy --strict xmpp_clinic

# The compliance report of a test run: every requirement ID with the tests that prove it
# and whether they passed (I.11). Give the config in XMPP_CLINIC_CONFIG or REPORT_ARGS.
report: deps venv
	mkdir -p build
	-$(BIN)/python -m pytest --junitxml=build/junit.xml $(PYTEST_ARGS)
	$(BIN)/xmpp-clinic report --format html --test-results build/junit.xml --output build/report.html $(REPORT_ARGS)

bench: deps venv
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
