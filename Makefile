# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: install demo demo-hub test lint typecheck pytest bench conformance-report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

# Only the set-up `make demo` does first: .venv with xlink in it (then `. .venv/bin/activate`).
install: $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/xlink demo

# Three agencies (CA-RCMP, CA-CBSA, US-DHS) through an information-sharing hub (docs/hub.md).
demo-hub: $(STAMP_RUN)
	$(BIN)/xlink demo --hub

LINT_PATHS := $(wildcard xlink tests bench examples protocols)

lint: $(STAMP_TEST)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP_TEST)
	$(BIN)/mypy --strict xlink

# Two lanes on the two cores: the tests marked slow (whole exchanges in several processes, the
# quickstart, the evaluation targets, the conformance suite) beside all the others, each in its
# own temporary directory; the run fails if either lane fails, and prints both.
pytest: $(STAMP_TEST)
	@mkdir -p build; \
	$(BIN)/pytest -q -m slow --durations=10 -p no:cacheprovider \
	  --basetemp=build/pytest-slow > build/pytest-slow.log 2>&1 & slow=$$!; \
	$(BIN)/pytest -q -m "not slow" --durations=10 --basetemp=build/pytest-rest; rest=$$?; \
	wait $$slow; slowrc=$$?; echo "-- tests marked slow:"; cat build/pytest-slow.log; \
	[ $$rest -eq 0 ] && [ $$slowrc -eq 0 ]

test: lint typecheck pytest

bench: $(STAMP_RUN)
	$(BIN)/python bench/psi_bench.py --n 100000 --keys 1 --json

# The conformance suite against xlink's own agent, every role, two processes each: the
# reports shown in docs/conformance.md, written to docs/conformance/.
CONFORMANCE := build/conformance
conformance-report: $(STAMP_RUN)
	rm -rf $(CONFORMANCE) && mkdir -p $(CONFORMANCE) docs/conformance
	$(BIN)/xlink conformance kit $(CONFORMANCE)/kit
	for role in responder initiator holder; do \
	  $(BIN)/xlink conformance agent --kit $(CONFORMANCE)/kit --role $$role \
	    --listen 127.0.0.1:0 --port-file $(CONFORMANCE)/$$role.port \
	    --workdir $(CONFORMANCE)/agent-$$role --outcomes $(CONFORMANCE)/$$role.jsonl \
	    --idle-timeout 1 > $(CONFORMANCE)/agent-$$role.log 2>&1 & agent=$$!; \
	  for i in $$(seq 150); do [ -s $(CONFORMANCE)/$$role.port ] && break; sleep 0.2; done; \
	  [ -s $(CONFORMANCE)/$$role.port ] || { cat $(CONFORMANCE)/agent-$$role.log; exit 1; }; \
	  $(BIN)/xlink conformance run --kit $(CONFORMANCE)/kit --role $$role \
	    --peer 127.0.0.1:$$(cat $(CONFORMANCE)/$$role.port) \
	    --outcomes $(CONFORMANCE)/$$role.jsonl --workdir $(CONFORMANCE)/runner-$$role \
	    --idle-timeout 1 --strict --json docs/conformance/report-$$role.json \
	    --junit docs/conformance/junit-$$role.xml > docs/conformance/report-$$role.txt; \
	  status=$$?; kill $$agent; wait $$agent; tail -1 docs/conformance/report-$$role.txt; \
	  [ $$status -eq 0 ] || exit $$status; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
