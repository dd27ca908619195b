"""Latency fidelity: the p50 the harness reports (CLI -> isolated worker -> record.json) vs a bare
``perf_counter_ns`` loop around ``session.run`` with the same session options, on a ~0.1 ms and a ~20 ms
MatMul chain. Rounds are interleaved (bare, harness, bare, harness, ...) so machine drift hits both sides.
Target: the median over rounds of harness p50 / bare p50 within 1 +- 3%.

    python bench/latency_fidelity.py [--rounds 9] [--time-cap 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from harness.worker.stats import percentile_nearest_rank
from harness import api
from harness.worker.session import session_options

TOLERANCE = 0.03
# name -> (rows, width, layers): y = x @ W0 @ W1 ... ; sizes tuned on the 2-core dev VM.
MODELS = {"small_0.1ms": (16, 256, 4), "big_20ms": (128, 1024, 5)}


def matmul_chain(rows: int, width: int, layers: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, weights, prev = [], [], "x"
    for i in range(layers):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"W{i}"))
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [out]))
        prev = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, width])],
                              initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 9
    return model


def build_case(folder: Path, rows: int, width: int, layers: int) -> Path:
    """model.onnx + test_data_set_0 with the golden from onnxruntime CPU."""
    data = folder / "test_data_set_0"
    data.mkdir(parents=True)
    onnx.save(matmul_chain(rows, width, layers), str(folder / "model.onnx"))
    x = np.random.default_rng(1).uniform(-1, 1, (rows, width)).astype(np.float32)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    (data / "input_0.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    (data / "output_0.pb").write_bytes(numpy_helper.from_array(y, "y").SerializeToString())
    return folder


def bare_p50(case: Path, spec: dict, time_cap_s: float) -> float:
    """What a hand-written benchmark does: same session options, warm up, time session.run for time_cap_s."""
    session = ort.InferenceSession(str(case / "model.onnx"), session_options(spec),
                                   providers=["CPUExecutionProvider"])
    feed = {"x": numpy_helper.to_array(onnx.load_tensor(str(case / "test_data_set_0" / "input_0.pb")))}
    run, clock = session.run, time.perf_counter_ns
    for _ in range(50):
        run(None, feed)
    samples: list[int] = []
    stop = time.perf_counter() + time_cap_s
    while time.perf_counter() < stop or len(samples) < 11:
        start = clock()
        run(None, feed)
        samples.append(clock() - start)
    return percentile_nearest_rank(samples, 50.0) / 1e6


def harness_p50(case: Path, out: Path, time_cap_s: float) -> tuple[float, int]:
    """The harness's p50 through its library entry point (the cell still runs in an isolated worker)."""
    record = api.run_matrix([case], ["cpu"], api.MatrixOptions(out=out, time_cap_s=time_cap_s))
    [cell] = record.cells
    if cell.verdict != "PASS" or not cell.latency.get("stats"):
        sys.exit(f"harness run did not pass: {cell.verdict} {cell.detail}")
    stats = cell.latency["stats"]
    return stats["p50"], stats["n"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--time-cap", type=float, default=1.0, help="sampling seconds per side and round")
    args = parser.parse_args()
    spec = api.load_profiles(["cpu"], api.MatrixOptions())[0].worker_spec()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.rounds} interleaved rounds, {args.time_cap:g} s sampling per side; p50 in ms (median of rounds); "
              "ratio = median over rounds of harness/bare")
        for name, shape in MODELS.items():
            case = build_case(Path(tmp) / name, *shape)
            bare, harness, counts = [], [], []
            for _ in range(args.rounds):
                bare.append(bare_p50(case, spec, args.time_cap))
                p50, n = harness_p50(case, Path(tmp) / "results", args.time_cap)
                harness.append(p50)
                counts.append(n)
            b, h = statistics.median(bare), statistics.median(harness)
            ratio = statistics.median(hv / bv for hv, bv in zip(harness, bare))  # paired: drift cancels per round
            within = abs(ratio - 1.0) <= TOLERANCE
            ok = ok and within
            print(f"{name:<12} {'x'.join(map(str, shape)):<12} bare p50 {b:9.4f}  harness p50 {h:9.4f} "
                  f"(n~{int(statistics.median(counts))})  paired ratio {ratio:.3f}  "
                  f"{'within' if within else 'OUTSIDE'} +-{TOLERANCE:.0%}")
            floor = min(harness) / min(bare)  # interference only ever adds time: the best rounds compare the floors
            print(f"{'':<12} best-round ratio {floor:.3f} ({min(harness):.4f} / {min(bare):.4f} ms), "
                  f"{'within' if abs(floor - 1.0) <= TOLERANCE else 'OUTSIDE'} +-{TOLERANCE:.0%}")
            print(f"{'':<12} per round bare   : {' '.join(f'{v:.4f}' for v in bare)}")
            print(f"{'':<12} per round harness: {' '.join(f'{v:.4f}' for v in harness)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
