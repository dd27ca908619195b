"""Per-device task metrics: the bundled classifier on every available profile, scored against ground truth.

1. A labelled copy of the bundled classifier case is written to a scratch folder: the zoo's model, 4 data sets of
   128 samples drawn as its training data was (uniform in [-2, 2]^20), labelled by the fixed linear teacher the zoo
   trained it on (harness.zoo.models.SoftmaxClassifier, rebuilt here from the same seed), goldens from eager PyTorch,
   and case.json ``"task": {"kind": "classification", "labels": {...}}``.
2. It runs on every profile this host can run (unavailable ones are SKIPPED, and said); each cell's task metrics
   (harness.task) give accuracy, macro precision/recall/F1 against the labels and the F1 drop against the golden.
3. The int8 check: the bundled classifier on cpu-int8 under the per-dtype default elementwise tolerance (float32
   rtol 1e-4, atol 1e-5) with task gates top1_agreement >= 0.99 and f1_drop <= 0.01: its verdict and reason line.
4. The detector: its goldens reordered, then one box moved beyond the IoU gate, on cpu with recall/precision gates.

Every number printed is measured. Needs the export extra (torch) for step 1.

    python bench/task_metrics.py [--profiles a,b,...] [--samples 128] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import api  # noqa: E402
from harness.golden.layout import write_dataset  # noqa: E402
from harness.golden.manifest import read_manifest  # noqa: E402
from harness.model.loader import load_model_info  # noqa: E402
from harness.profiles.schema import ProfileTolerance  # noqa: E402
from harness.report.reason import reason  # noqa: E402
from harness.task.gates import parse_task_table  # noqa: E402
from harness.task.table import case_tables, text_table  # noqa: E402


def teacher_labels(features: np.ndarray) -> np.ndarray:
    """The zoo classifier's ground truth: argmax(features @ teacher), the teacher drawn as SoftmaxClassifier._fit
    draws it (seed 5, after the network's own initialisation)."""
    import torch
    from torch import nn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10))  # consumes the RNG as the zoo's build does
        teacher = torch.randn(20, 10)
    return (torch.from_numpy(features) @ teacher).argmax(dim=1).numpy()


def labelled_case(folder: Path, samples: int, sets: int = 4) -> Path:
    from harness.zoo.export import eager_outputs
    from harness.zoo.models import ZOO
    spec = ZOO["classifier"]
    folder.mkdir(parents=True)
    shutil.copy(REPO / "reference_outputs" / "classifier" / "model.onnx", folder / "model.onnx")
    info = load_model_info(folder / "model.onnx")
    rng = np.random.default_rng(2026)
    labels = {}
    for k in range(sets):
        features = rng.uniform(-2, 2, (samples, 20)).astype(np.float32)
        inputs = {"features": features}
        write_dataset(folder, k, inputs, eager_outputs(spec, inputs), info.input_names, info.output_names, force=True)
        labels[f"test_data_set_{k}"] = teacher_labels(features).tolist()
    manifest = read_manifest(REPO / "reference_outputs" / "classifier")
    manifest = replace(manifest, case="classifier_labelled", calibration={},
                       task={"kind": "classification", "labels": labels, "k": 3})
    (folder / "case.json").write_text(manifest.to_json(), encoding="utf-8")
    return folder


def gated(profile, *gates: str, tight: bool = False):
    return replace(profile, tolerance=ProfileTolerance() if tight else profile.tolerance,
                   task_gates=parse_task_table({"gates": list(gates)}, f"{profile.name}.toml"))


def prf_table(case: Path, names: list[str] | None, out: Path) -> None:
    options = api.MatrixOptions(out=out, numerics_only=True)
    profiles = api.load_profiles(names, options)
    record = api.run_matrix([case], profiles, options)
    for case_name, (kind, header, rows) in case_tables(record.cells).items():
        print(f"\n{case_name}: {kind}")
        print("\n".join(text_table(header, rows)))
    skipped = [f"{c.profile}: {c.verdict} {c.detail[:120]}" for c in record.cells if not c.task]
    if skipped:
        print("\nno task metrics (not run here):\n  " + "\n  ".join(skipped))


def int8_check(out: Path) -> None:
    [int8] = api.load_profiles(["cpu-int8"], api.MatrixOptions())
    profile = gated(int8, "top1_agreement >= 0.99", "f1_drop <= 0.01", tight=True)
    record = api.run_matrix([REPO / "reference_outputs" / "classifier"], [profile],
                            api.MatrixOptions(out=out, numerics_only=True))
    [cell] = record.cells
    print(f"\nint8 check: classifier on cpu-int8, float32 default elementwise tolerance + task gates: {cell.verdict}")
    print(f"  reason: {reason(cell)}")


def detector_check(out: Path) -> None:
    from onnx import numpy_helper
    [cpu] = api.load_profiles(["cpu"], api.MatrixOptions())
    profile = gated(cpu, "recall >= 1", "precision >= 1")
    for label, moved in (("boxes in another order", False), ("one box moved 12 px (beyond IoU 0.5)", True)):
        with tempfile.TemporaryDirectory() as tmp:
            case = shutil.copytree(REPO / "reference_outputs" / "detector", Path(tmp) / "detector")
            for ds in sorted(case.glob("test_data_set_*")):
                paths = [ds / f"output_{j}.pb" for j in range(3)]
                values = [numpy_helper.to_array(numpy_helper.from_array(np.zeros(1)).FromString(p.read_bytes()))
                          for p in paths]
                if moved and ds.name.endswith("_0"):
                    values[0] = values[0].copy()
                    values[0][0, 2] += 12.0
                for path, name, value in zip(paths, ("boxes", "scores", "classes"), values):
                    path.write_bytes(numpy_helper.from_array(np.ascontiguousarray(value[:, ::-1]), name)
                                     .SerializeToString())
            record = api.run_matrix([case], [cpu, profile], api.MatrixOptions(out=out, numerics_only=True))
            plain, cell = record.cells
            m = cell.task["metrics"]
            print(f"\ndetector, {label}: without task gates {plain.verdict}; with recall/precision >= 1 {cell.verdict}; "
                  f"recall {m['recall']:.4g}, precision {m['precision']:.4g}, matched {m['matched']}/"
                  f"{m['golden_boxes']}, max coord error {m['max_coord_error']:.3g} ({m['matcher']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", help="comma-separated profiles (default: every profile)")
    parser.add_argument("--samples", type=int, default=128, help="samples per data set (4 sets)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "task_metrics_bench")
    args = parser.parse_args()
    names = [n for n in args.profiles.split(",") if n] if args.profiles else None
    with tempfile.TemporaryDirectory() as tmp:
        case = labelled_case(Path(tmp) / "classifier_labelled", args.samples)
        prf_table(case, names, args.out)
    int8_check(args.out)
    detector_check(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
