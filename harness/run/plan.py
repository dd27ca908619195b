"""Case -> plan: everything checked and prepared in the parent before any worker runs.

Bad input (model, goldens, inputs that don't fit the model) is refused here, before the run starts,
so the CLI can exit 2 with one line instead of filling the matrix with errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import GoldenError
from harness.golden.cases import Case
from harness.golden.layout import DataSet
from harness.model.inputs import generate_inputs
from harness.model.loader import ModelInfo, TensorSig


@dataclass
class CasePlan:
    case: Case
    info: ModelInfo
    datasets: list[DataSet]
    has_goldens: bool
    warnings: list[str] = field(default_factory=list)
    against: str = "golden"  # what outputs are compared with: the goldens, or a reference profile's name
    no_golden_reason: str = "no golden outputs to compare against; create them with 'harness bless'"
    calibration: list[dict[str, np.ndarray]] | None = None  # int8-static: inputs to calibrate on
    calibration_source: str = "case data sets"

    def calibration_feeds(self) -> list[dict[str, np.ndarray]]:
        """--calibration-data where given, else the case's own (stored or generated) inputs."""
        return self.calibration if self.calibration is not None else [ds.inputs for ds in self.datasets]

    def use_reference(self, profile: str, outputs: dict[str, np.ndarray] | None, cell) -> None:
        """Compare with ``profile``'s outputs (keyed "<k>/<output>") instead of goldens the case lacks."""
        if outputs is None:
            self.no_golden_reason = (f"nothing to compare with: the reference profile {profile!r} gave "
                                     f"{cell.verdict} ({cell.detail[:200]})")
            return
        for ds in self.datasets:
            ds.outputs = {name: outputs[f"{ds.index}/{name}"] for name in self.info.output_names
                          if f"{ds.index}/{name}" in outputs}
        self.has_goldens = any(ds.outputs for ds in self.datasets)
        self.against = profile

    def feed(self) -> dict[str, np.ndarray]:
        """All inputs of all data sets, keyed "<k>/<input>" as the worker protocol expects."""
        return {f"{ds.index}/{name}": arr for ds in self.datasets for name, arr in ds.inputs.items()}


def _check_input(case: str, ds: DataSet, sig: TensorSig, array: np.ndarray) -> None:
    where = f"case {case!r} test_data_set_{ds.index} input {sig.name!r}"
    if array.dtype.kind in "OSU":
        raise GoldenError(f"{where}: string tensors are not supported (the worker protocol carries numeric "
                          f"tensors only)", hint="this model cannot be run by the harness yet")
    if sig.dtype is not None and array.dtype != sig.dtype:
        raise GoldenError(f"{where}: dtype {array.dtype} but the model expects {sig.dtype}",
                          hint="regenerate the inputs, or fix the model's input type")
    if sig.shape and len(sig.shape) != array.ndim:
        raise GoldenError(f"{where}: rank {array.ndim} {list(array.shape)} but the model expects rank "
                          f"{len(sig.shape)} {list(sig.shape)}", hint="regenerate the inputs")
    for axis, (want, got) in enumerate(zip(sig.shape, array.shape)):
        if isinstance(want, int) and want >= 0 and want != got:
            raise GoldenError(f"{where}: axis {axis} is {got} but the model fixes it to {want} "
                              f"(shape {list(array.shape)} vs {list(sig.shape)})", hint="regenerate the inputs")


def check_inputs(case: str, ds: DataSet, info: ModelInfo) -> None:
    """Every stored input of a data set fits the model's signature (dtype, rank, fixed dims)."""
    sigs = {s.name: s for s in info.inputs}
    for name, array in ds.inputs.items():
        _check_input(case, ds, sigs[name], array)


def plan_case(case: Case, *, dims: dict[str, int], seed: int) -> CasePlan:
    info = case.info
    datasets = case.datasets()
    warnings = []
    for ds in datasets:
        missing = [n for n in info.input_names if n not in ds.inputs]
        if ds.outputs and not ds.inputs and info.input_names:
            # Without their inputs the goldens cannot be reproduced; dropping them would pass silently.
            raise GoldenError(f"case {case.name!r} test_data_set_{ds.index}: golden outputs but no input files",
                              hint="restore the input_<k>.pb files, or re-bless the case with 'harness bless --force'")
        if missing and ds.inputs:
            raise GoldenError(f"case {case.name!r} test_data_set_{ds.index}: missing input(s) {missing}")
        check_inputs(case.name, ds, info)
        for name, golden in ds.outputs.items():
            if golden.dtype.kind == "f" and np.isnan(golden).any():
                warnings.append(f"case {case.name!r} test_data_set_{ds.index} golden {name!r} holds "
                                f"{int(np.isnan(golden).sum())} NaN(s): allowed, matched only by NaN")
    case.validate_tolerances()  # a typo is bad input before the run, not an error in every cell
    datasets = [ds for ds in datasets if ds.inputs]
    if not datasets:
        bound = {**case.manifest.dims, **dims}
        if case.model_file is not None:  # a user's bare model: unbound dims default to 1, said once
            free = sorted({d for s in info.inputs for d in s.shape if isinstance(d, str) and d and d not in bound})
            bound.update(dict.fromkeys(free, 1))
            if free:
                warnings.append(f"case {case.name!r}: symbolic dimension(s) {', '.join(free)} set to 1 for "
                                f"generated inputs; pass --dim NAME=N to choose")
        inputs = generate_inputs(info.inputs, case=case.name, seed=seed, dims=bound, ranges=case.manifest.input_ranges)
        datasets = [DataSet(0, None, inputs, {})]
    has_goldens = any(ds.outputs for ds in datasets)
    return CasePlan(case, info, datasets, has_goldens, warnings)
