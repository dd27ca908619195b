"""A planted fault for the campaign tests: the worker's onnxruntime computes ``FAULT_OP`` as HardSigmoid (a wrong
kernel) and the process dies on a session for any graph holding ``FAULT_CRASH_OP`` (a crashing kernel).

A test profile starts its worker through this file (``[worker] command = [python, this file]``); the rest of the
argument list is the worker's own (``-m harness.worker --spec ...``), which is run unchanged after the patch.
"""

import os
import runpy
import sys

import onnx
import onnxruntime as ort

_Real = ort.InferenceSession


class FaultySession(_Real):
    def __init__(self, model, *args, **kwargs):
        proto = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        if os.environ.get("FAULT_CRASH_OP") in {n.op_type for n in proto.graph.node}:
            os._exit(3)
        for node in proto.graph.node:
            if node.op_type == os.environ.get("FAULT_OP"):
                node.op_type = "HardSigmoid"
        super().__init__(proto.SerializeToString(), *args, **kwargs)


ort.InferenceSession = FaultySession
sys.argv = [sys.argv[0], *sys.argv[3:]]  # drop "-m harness.worker"
runpy.run_module("harness.worker", run_name="__main__", alter_sys=True)
