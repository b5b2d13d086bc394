# The two commands of the README: `make demo` and `make test` (both as root on Debian 12).
PY ?= .venv/bin/python
LAB_INDEX ?= 0
NODES ?= 2

.PHONY: deps demo test unit lab-up lab-down bench

deps:
	bash scripts/install-deps.sh

# Bring the lab up (lb, node1, node2, db), deploy the cluster with the shipped hosts.toml,
# show the LB answering from both nodes. The lab stays up: `make lab-down` removes it.
demo:
	bash scripts/demo.sh

# Every test: unit tests and the real-host lab tests (needs root; never skipped).
test:
	bash scripts/test.sh

unit: deps
	$(PY) -m pytest tests/unit -q

lab-up: deps
	$(PY) lab/lab.py up --index $(LAB_INDEX) --nodes $(NODES)

lab-down:
	$(PY) lab/lab.py down --index $(LAB_INDEX)

bench: deps
	$(PY) bench/bench.py
