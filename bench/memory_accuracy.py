"""Memory accuracy: two Gather models with known weight bytes (256 MB and 64 MB of float32 by default) run as
two cells of ONE harness run (same profile, so the same worker, big one first). Each cell's reported
session_delta_mb and peak_delta_mb are compared with the weight size. Target: within +-10% of the expected
size; the second, smaller cell must report its own peak, not the first cell's.

onnxruntime holds the parsed protobuf and its own copy of each initializer while the session is built, so the
peak during load is expected near 2x the weights and the steady session delta near 1x: both are printed.

    python bench/memory_accuracy.py [--big-mb 256] [--small-mb 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOLERANCE = 0.10
MB = 1 << 20
WIDTH = 1024  # floats per table row


def gather_model(rows: int) -> onnx.ModelProto:
    """y = W[idx]; W is a rows x WIDTH float32 table. idx is an input, so ORT cannot fold W away."""
    table = np.random.default_rng(rows).standard_normal((rows, WIDTH), dtype=np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["W", "idx"], ["y"], axis=0)], "table",
                              [helper.make_tensor_value_info("idx", TensorProto.INT64, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, WIDTH])],
                              initializer=[numpy_helper.from_array(table, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 9
    return model


def build_case(folder: Path, weight_mb: int) -> Path:
    rows = weight_mb * MB // (4 * WIDTH)
    model = gather_model(rows)
    data = folder / "test_data_set_0"
    data.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    idx = np.array([0, 1, rows // 2, rows - 1], dtype=np.int64)
    golden = numpy_helper.to_array(model.graph.initializer[0])[idx]  # numpy reference for Gather
    (data / "input_0.pb").write_bytes(numpy_helper.from_array(idx, "idx").SerializeToString())
    (data / "output_0.pb").write_bytes(numpy_helper.from_array(golden, "y").SerializeToString())
    return folder


def verdict(ratio: float) -> str:
    return "within" if abs(ratio - 1.0) <= TOLERANCE else "OUTSIDE"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=256)
    parser.add_argument("--small-mb", type=int, default=64)
    parser.add_argument("--profiles-dir", type=Path, default=Path("device_profiles"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {f"weights_{args.big_mb}mb": args.big_mb, f"weights_{args.small_mb}mb": args.small_mb}
        cases = [build_case(Path(tmp) / name, mb) for name, mb in sizes.items()]
        out = Path(tmp) / "results"
        proc = subprocess.run([sys.executable, "-m", "harness", "run", *map(str, cases), "--profile", "cpu",
                               "--profiles-dir", str(args.profiles_dir), "--root", str(Path(tmp) / "no-root"),
                               "--out", str(out), "--time-cap", "0.1"], capture_output=True, text=True)
        records = list(out.glob("*/record.json"))
        if proc.returncode != 0 or not records:
            sys.exit(f"harness run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        cells = {c["case"]: c for c in json.loads(records[0].read_text())["cells"]}
    methods = {cells[name]["memory"].get("method") for name in sizes}
    print(f"one harness run, {len(cells)} cells on profile cpu in one worker (memory method {', '.join(methods)}); "
          f"expected = weight bytes; target +-{TOLERANCE:.0%}")
    ok = True
    for name, mb in sizes.items():
        mem = cells[name]["memory"]
        session, peak = mem["session_delta_mb"], mem["peak_delta_mb"]
        rs, rp = session / mb, peak / mb
        ok = ok and abs(rs - 1.0) <= TOLERANCE
        print(f"{name:<16} weights {mb:5d} MB  rss_start {mem['rss_start'] / MB:7.1f} MB  "
              f"session delta {session:8.1f} MB (x{rs:.3f} {verdict(rs)})  "
              f"peak delta {peak:8.1f} MB (x{rp:.3f}: {verdict(rp / 2)} +-{TOLERANCE:.0%} of the 2x-weights load peak)")
    small = cells[f"weights_{args.small_mb}mb"]["memory"]["peak_delta_mb"]
    own = small < 0.75 * args.big_mb
    ok = ok and own
    print(f"second cell reports its own peak: {'yes' if own else 'NO'} "
          f"({small:.1f} MB vs first cell's weights {args.big_mb} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
