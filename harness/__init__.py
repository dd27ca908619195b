"""Cross-device ONNX inference conformance harness.

Kept import-free on purpose: the isolated worker (``harness.worker``) imports this package and must
only pull in numpy, onnxruntime and its protocol module.
"""

__version__ = "0.1.0"
