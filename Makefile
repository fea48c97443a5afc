# The two commands a fresh clone needs (README.md):
#   make demo   set up, start the local stack, run the main job and show its results
#   make test   set up, then run the default test tier (unit + end-to-end on the real stack)
.PHONY: setup demo test test-unit test-full stack-up stack-down clean

setup:
	@scripts/bootstrap.sh

demo: setup
	.venv/bin/riskctl stack up
	.venv/bin/riskctl demo

test: setup
	.venv/bin/python -m pytest -m "not full" -p no:cacheprovider --durations=25

test-unit: setup
	.venv/bin/python -m pytest tests/unit -p no:cacheprovider

test-full: setup
	.venv/bin/python -m pytest -p no:cacheprovider

stack-up: setup
	.venv/bin/riskctl stack up

stack-down:
	.venv/bin/riskctl stack down
