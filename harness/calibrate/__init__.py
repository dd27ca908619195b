"""Tolerances from a measured noise floor (``harness calibrate``).

A case is run on benign variants of the CPU EP (graph optimisation DISABLE_ALL, BASIC and ALL) and on the float64
reference evaluator, in isolated workers and in parallel (``runs``); how far those runs stray from the goldens, in
ULPs, is each output's noise floor (``noise``); the floor and the rule built on it are written into the case's
case.json 'calibration' block (``calibrate``), which the verdict then applies (harness.run.verdict).
"""
