# Tests and benchmarks. Benchmarks print their numbers and exit non-zero when they miss their target.
PYTHON ?= python

.PHONY: test bench bench-isolation bench-latency bench-memory bench-comparator

test:
	$(PYTHON) -m pytest -q

bench: bench-isolation bench-latency bench-memory bench-comparator

bench-isolation:
	-$(PYTHON) bench/isolation_overhead.py

bench-latency:
	-$(PYTHON) bench/latency_fidelity.py

bench-memory:
	-$(PYTHON) bench/memory_accuracy.py

bench-comparator:
	-$(PYTHON) bench/comparator_throughput.py
