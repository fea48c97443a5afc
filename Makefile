# The two commands a fresh clone needs (README.md):
#   make demo   set up, start the local stack, run the main job and show its results
#   make test   set up, then run the default test tier (unit + end-to-end on the real stack)
.PHONY: setup env lint demo test test-unit test-full stack-up stack-down clean

setup:
	@scripts/bootstrap.sh

# The platform environment only (.venv): no jars, no Flink, no services.
env:
	@scripts/bootstrap.sh --env-only

lint: env
	.venv/bin/ruff check .
	.venv/bin/mypy

demo: setup
	.venv/bin/riskctl stack up
	.venv/bin/riskctl demo

# Two workers: one runs the stack modules in order on one session stack, the other the unit tests beside it.
test: setup
	.venv/bin/python -m pytest -m "not full" -n 2 --dist loadgroup -p no:cacheprovider --durations=25

# Unit tests without `riskctl setup`; the few that read the Flink environment or run the job's Java
# functions (marked setup) run in `make test`.
test-unit: env
	.venv/bin/python -m pytest tests/unit -m "not setup" -p no:cacheprovider

test-full: setup
	.venv/bin/python -m pytest -p no:cacheprovider

stack-up: setup
	.venv/bin/riskctl stack up

stack-down:
	.venv/bin/riskctl stack down
