VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit lint bench serve clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/test-coordinator demo

serve: $(STAMP)
	$(VENV)/bin/test-coordinator serve

test: $(STAMP)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/health.py
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) build dist reports .pytest_cache

# The ecosystem on containers (deploy/docker-compose.yml, docs/deployment.md): up and healthy,
# the flagship through the coordinator's container, everything removed. Variables such as
# TC_HTTP_HOST_PORT=18087 or STACK_BUILD=1 pass through; RUN_ARGS go to `test-coordinator run`.
.PHONY: stack-up stack-run stack-down stack-status

stack-up:
	scripts/stack.sh up

stack-run:
	scripts/stack.sh run $(RUN_ARGS)

stack-down:
	scripts/stack.sh down

stack-status:
	scripts/stack.sh status
