"""The worker package stands alone: a worker imports numpy, onnxruntime and harness.worker.* only, so any
interpreter that can import harness.worker (another Python, one under qemu) can run it. Checked in a fresh
interpreter that goes through a whole cell: hello (the probe session), a session, inference and latency sampling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.run.launchers import harness_import_path

SCRIPT = """
import io, json, sys
import numpy as np
from harness.worker import main, protocol
spec = {"name": "cpu", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
        "device_metadata": {}, "precision_hint": None, "session": {}, "env": {}, "cpu_cores": None,
        "memory_limit_mb": None}
from harness.worker.probe import PROBE_MODEL, PROBE_FEED
open(sys.argv[1], "wb").write(PROBE_MODEL)
requests = io.BytesIO()
protocol.write_message(requests, {"type": "load", "case": "c", "model_path": sys.argv[1]})
measure = {"warmup": {"count": 2}, "stopping": {"targets": ["p50"], "time_cap_s": 0.05}}
protocol.write_message(requests, {"type": "infer", "datasets": 1, "measure": measure}, {"0/x": PROBE_FEED["x"]})
protocol.write_message(requests, {"type": "bye"})
requests.seek(0)
replies = io.BytesIO()
main.serve(spec, requests, replies)
replies.seek(0)
types = []
while (message := protocol.read_message(replies)) is not None:
    types.append(message[0]["type"])
print(json.dumps({"types": types, "modules": sorted(sys.modules)}))
"""


def test_a_whole_cell_imports_nothing_outside_the_worker_package(tmp_path: Path) -> None:
    env = {"PYTHONPATH": harness_import_path(), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "m.onnx")], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["types"] == ["hello", "loaded", "result"]
    modules = seen["modules"]
    assert "harness.worker.stats" in modules and "harness.worker.session" in modules  # the check saw a real cell
    outside = [m for m in modules if m.startswith("harness.") and not m.startswith("harness.worker")]
    assert outside == []
    assert [m for m in modules if m == "onnx" or m.startswith("onnx.")] == []
    assert {m.partition(".")[0] for m in modules} & {"torch", "onnxconverter_common", "scipy", "pandas"} == set()
