"""Zoo -> committed cases: export each bundled PyTorch module to ONNX and write goldens from PyTorch eager,
the source of truth. ``--check`` re-exports into a scratch folder and regression-checks the fresh export
(and today's eager outputs) against the committed goldens."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import shutil
import tempfile
from pathlib import Path

from harness.api import MatrixOptions, failing, run_matrix
from harness.compare.comparator import compare_output, format_failure
from harness.compare.tolerances import default_tolerance
from harness.errors import ExportError, GoldenError, UsageError
from harness.atomic import atomic_write_bytes
from harness.golden.layout import MODEL_NAME, dataset_dirs, read_dataset, write_dataset
from harness.golden.manifest import MANIFEST_NAME, CaseManifest
from harness.model.loader import load_model_info
from harness.report.console import make_console, print_report
from harness.run.record import machine_info
from harness.suggest import did_you_mean

# Two data sets per case: the spec's dims, and a larger batch (and sequence) so that a dynamic axis that
# was silently pinned, or batch-dependent numerics, show up.
SECOND_SET_GROWTH = 3


class _Entry:
    """What every zoo entry offers: export(path), make_inputs(seed, dims), reference(inputs), source(),
    input_ranges(); subclasses adapt a framework's spec to it."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.name, self.description, self.task = spec.name, spec.description, spec.task
        self.dims = dict(spec.dims)


class _TorchEntry(_Entry):

    def export(self, path: Path) -> None:
        from harness.zoo.export import export_onnx
        export_onnx(self.spec, path)

    def make_inputs(self, seed: int, dims: dict[str, int]):
        from harness.zoo.export import make_inputs
        return make_inputs(self.spec, seed=seed, dims=dims)

    def reference(self, inputs):
        from harness.zoo.export import eager_outputs
        return eager_outputs(self.spec, inputs)

    def source(self) -> dict:
        from harness.zoo.export import torch_version
        return {"kind": "framework", "framework": "torch", "version": torch_version(),
                "exporter": self.spec.exporter, "reference": "eager"}

    def input_ranges(self) -> dict:
        return {i.name: {"low": i.low, "high": i.high} for i in self.spec.inputs}


class _SklearnEntry(_Entry):
    def export(self, path: Path) -> None:
        self.spec.export(path)

    def make_inputs(self, seed: int, dims: dict[str, int]):
        return self.spec.make_inputs(seed, dims)

    def reference(self, inputs):
        return self.spec.reference(inputs)

    def source(self) -> dict:
        return self.spec.source()

    def input_ranges(self) -> dict:
        return self.spec.input_ranges()


def _entries(names: list[str]) -> list:
    from harness.zoo.export import EXPORT_HINT
    from harness.zoo.sklearn_models import SKLEARN_ZOO
    try:
        from harness.zoo.models import ZOO
    except ModuleNotFoundError as exc:
        raise ExportError(f"exporting the zoo needs the export extra ({exc.name} is missing)", hint=EXPORT_HINT) from None
    known = {**{n: _TorchEntry(s) for n, s in ZOO.items()}, **{n: _SklearnEntry(s) for n, s in SKLEARN_ZOO.items()}}
    for name in names:
        if name not in known:
            raise UsageError(f"no zoo model named {name!r}{did_you_mean(name, known)}", hint=f"known: {', '.join(known)}")
    return [known[n] for n in (names or known)]


def _dims_sets(entry) -> list[dict[str, int]]:
    return [dict(entry.dims), {k: v + SECOND_SET_GROWTH for k, v in entry.dims.items()}]


def _manifest(entry, info) -> CaseManifest:
    return CaseManifest(
        case=entry.name, description=entry.description, model_sha256=info.sha256, opset=info.opset,
        source=entry.source(), host=machine_info(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        task=entry.task, dims=dict(entry.dims), input_ranges=entry.input_ranges())


def export_case(entry, case_dir: Path, *, force: bool) -> Path:
    if (case_dir / MODEL_NAME).exists() and not force:
        raise GoldenError(f"{case_dir}: model and goldens already exist", hint="pass --force to overwrite them")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / MODEL_NAME
        entry.export(scratch)
        atomic_write_bytes(case_dir / MODEL_NAME, scratch.read_bytes())
    info = load_model_info(case_dir / MODEL_NAME)
    for k, dims in enumerate(_dims_sets(entry)):
        inputs = entry.make_inputs(k, dims)
        write_dataset(case_dir, k, inputs, entry.reference(inputs), info.input_names, info.output_names, force=True)
    atomic_write_bytes(case_dir / MANIFEST_NAME, _manifest(entry, info).to_json().encode())
    return case_dir


def export_zoo(names: list[str], root: Path, *, force: bool) -> list[Path]:
    specs = _entries(names)
    if not force:
        existing = [s.name for s in specs if (root / s.name / MODEL_NAME).exists()]
        if existing:
            raise GoldenError(f"goldens already exist for {', '.join(existing)} under {root}",
                              hint="pass --force to overwrite them, or --check to regression-check a re-export")
    return [export_case(spec, root / spec.name, force=force) for spec in specs]


def _eager_drift(spec, case_dir: Path) -> list[str]:
    """Today's framework outputs against the committed goldens (catches an upgrade that moves numerics)."""
    info = load_model_info(case_dir / MODEL_NAME)
    problems = []
    for k, path in dataset_dirs(case_dir):
        ds = read_dataset(path, k, info.input_names, info.output_names)
        for name, actual in spec.reference(ds.inputs).items():
            golden = ds.outputs[name]
            cmp = compare_output(name, golden, actual, default_tolerance(golden.dtype, actual.dtype))
            if not cmp.passed:
                problems.append(format_failure(cmp, case=f"{spec.name} [test_data_set_{k}]", profile=spec.source()["framework"]))
    return problems


def check_zoo(names: list[str], root: Path, options: MatrixOptions) -> int:
    """Re-export into a scratch folder and run it on the cpu profile against the committed goldens;
    returns the exit code (0 all passed, 1 any drift or failure)."""
    specs = _entries(names)
    missing = [s.name for s in specs if not (root / s.name / MODEL_NAME).is_file()]
    if missing:
        raise GoldenError(f"no committed goldens for {', '.join(missing)} under {root}", hint="run 'harness export' first")
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for spec in specs:
            fresh = Path(tmp) / "cases" / spec.name
            export_case(spec, fresh, force=True)
            for _k, path in dataset_dirs(fresh):
                shutil.rmtree(path)
            for _k, path in dataset_dirs(root / spec.name):
                shutil.copytree(path, fresh / path.name)
            shutil.copy2(root / spec.name / MANIFEST_NAME, fresh / MANIFEST_NAME)
            problems += _eager_drift(spec, root / spec.name)
            dirs.append(str(fresh))
        for block in problems:
            print(block)
        console = make_console()
        run = dataclasses.replace(options, numerics_only=True, out=Path(tmp) / "results", named_profiles=["cpu"],
                                  console=console)
        record = run_matrix(dirs, ["cpu"], run)
        print_report(console, record)
    return 1 if problems or failing(record) else 0
