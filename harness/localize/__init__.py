"""Find the node where two profiles part ways, rank the suspects, and cut a minimal repro (issue 11).

One job per module: ``expose`` (topological order, bounded batches of intermediates as extra outputs), ``sides``
(a profile's model, transformed as in a run, run through its worker), ``scope`` (the per-tensor tolerance),
``rank`` (amplification ranking with op, attributes and EP), ``repro`` (extract_model + a case folder),
``passes`` (onnxruntime optimiser bisection), ``search`` (the steps in order) and ``render`` (the text output).
"""

from harness.localize.search import Localization, LocalizeOptions, localize

__all__ = ["Localization", "LocalizeOptions", "localize"]
