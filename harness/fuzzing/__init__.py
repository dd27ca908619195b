"""Differential fuzzing (``harness fuzz``): random valid ONNX graphs run on every profile and the float64
reference; where devices disagree, a localised, shrunk, de-duplicated repro in the ONNX test-data layout.

One job per module: ``ops`` (the operators and their builders), ``generate`` (graphs, checked; inputs searched until
the reference is finite), ``judge`` (the verdict rule between any two profiles), ``sides`` (repeated runs through
kept workers), ``locate`` (the first diverging node), ``shrink`` (delta debugging on nodes, then attributes),
``findings`` (keys, repro folders), ``journal`` (journal.jsonl), ``campaign`` (batches through
harness.api.run_matrix, resume) and ``report`` (fuzz-report.json).
"""

from harness.fuzzing.campaign import CampaignOptions, run_campaign
from harness.fuzzing.generate import GeneratorConfig, generate

__all__ = ["CampaignOptions", "GeneratorConfig", "generate", "run_campaign"]
