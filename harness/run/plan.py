"""Case -> plan: everything checked and prepared in the parent before any worker runs.

Bad input (model, goldens, inputs that don't fit the model) is refused here, before the run starts,
so the CLI can exit 2 with one line instead of filling the matrix with errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import GoldenError
from harness.golden.cases import Case
from harness.golden.layout import DataSet, Value, graph_types, value_kind
from harness.golden.validate import errors as data_errors
from harness.golden.validate import validate
from harness.model.inputs import generate_inputs, symbolic_dims
from harness.model.loader import ModelInfo, TensorSig
from harness.suggest import did_you_mean
from harness.task import case_task
from harness.worker.protocol import value_nbytes


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

    @property
    def generates_inputs(self) -> bool:
        """The inputs are generated (no data set was read from a folder), so --dim binds their dimensions."""
        return all(ds.path is None for ds in self.datasets)

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

    def feed(self) -> dict[str, Value]:
        """All inputs of all data sets, keyed "<k>/<input>" as the worker protocol expects (tensors, lists for
        sequences, dicts for maps, None for absent optionals)."""
        return {f"{ds.index}/{name}": value for ds in self.datasets for name, value in ds.inputs.items()}

    def feed_nbytes(self) -> int:
        """Payload bytes of ``feed()`` on the wire, for deciding whether it fits in the worker's pipe."""
        return sum(value_nbytes(value) for value in self.feed().values())


_KIND_WORDS = {"tensor": "a tensor", "sequence": "a sequence (list)", "map": "a map (dict)",
               "optional": "an optional"}


def _kind_of(value: Value) -> str:
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, dict):
        return "map"
    return "optional" if value is None else "tensor"


def _check_kind(where: str, declared: str, value: Value) -> bool:
    """The value is of the kind the graph declares (an optional takes None or its element's kind). True when
    the value is a tensor to be checked against the signature."""
    got = _kind_of(value)
    if declared == "optional":
        return False  # None, or the element (whose own type the session checks)
    if got != declared:
        raise GoldenError(f"{where}: the model expects {_KIND_WORDS[declared]} but the file holds "
                          f"{_KIND_WORDS[got]}", hint="regenerate the inputs")
    return declared == "tensor"


def _check_input(case: str, ds: DataSet, sig: TensorSig, array: np.ndarray) -> None:
    where = f"case {case!r} test_data_set_{ds.index} input {sig.name!r}"
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
    """Every stored input of a data set fits the model's signature: its kind (tensor, sequence, optional, map)
    and, for a tensor, its dtype (every ONNX element type, ml_dtypes for the exotic ones), rank and fixed dims."""
    sigs = {s.name: s for s in info.inputs}
    types = graph_types(info.path) if any(s.dtype is None for s in info.inputs) else {}
    for name, value in ds.inputs.items():
        where = f"case {case!r} test_data_set_{ds.index} input {name!r}"
        declared = value_kind(types.get(name)) if sigs[name].dtype is None else "tensor"
        if _check_kind(where, declared, value):
            _check_input(case, ds, sigs[name], value)


def _tensors_in(value: Value):
    """Every tensor inside a value (sequence items, map values, an optional's element)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item)


def _nan_count(value: Value) -> int:
    return sum(int(np.isnan(t.astype(np.float32) if t.dtype.kind == "V" else t).sum())
               for t in _tensors_in(value) if "float" in t.dtype.name)


def _check_goldens_all_or_none(case: Case, datasets: list[DataSet]) -> None:
    """A set without goldens beside sets with them would run uncompared (or not at all) while the others pass."""
    with_goldens = [ds for ds in datasets if ds.outputs]
    without = [ds for ds in datasets if not ds.outputs]
    if with_goldens and without:
        raise GoldenError(f"case {case.name!r} test_data_set_{without[0].index}: no output_*.pb while "
                          f"test_data_set_{with_goldens[0].index} holds goldens (a case's data sets all hold "
                          f"goldens, or none does)",
                          hint="restore its output_<j>.pb files or remove the set; 'harness bless --force' "
                               "re-blesses every set of the case")


def _check_input_ranges(case: Case, info: ModelInfo) -> None:
    """case.json input_ranges for an input the model lacks would be ignored: a typo that changes nothing."""
    for name in case.manifest.input_ranges:
        if name not in info.input_names:
            raise GoldenError(f"{case.path / 'case.json'}: input_ranges names input {name!r}"
                              f"{did_you_mean(name, info.input_names)}, but the model's inputs are {info.input_names}",
                              hint="fix the name, or drop the entry")


def _check_case_dims(case: Case, info: ModelInfo) -> None:
    """case.json dims that no input dimension has would bind nothing (as an unused --dim, which is refused)."""
    offered = sorted(symbolic_dims(info.inputs))
    for name in case.manifest.dims:
        if name not in offered:
            raise GoldenError(f"{case.path / 'case.json'}: dims names {name!r}{did_you_mean(name, offered)}, but no "
                              f"input of the model has a dimension by that name; its inputs' symbolic dimensions are "
                              f"{', '.join(offered) or 'none'}", hint="fix the name, or drop the entry")


def check_data(case: Case, info: ModelInfo, datasets: list[DataSet]) -> list[str]:
    """harness.golden.validate over every stored data set: an error refuses the case in one line naming the file
    (with how many more there are), warnings (NaN fed on purpose, a duplicate set) are returned for the record."""
    found = validate(case.name, info, datasets, case.manifest.input_ranges)
    bad = data_errors(found)
    if bad:
        more = f" (+{len(bad) - 1} more problem(s); 'harness validate {case.name}' lists each)" if len(bad) > 1 else ""
        raise GoldenError(bad[0].line + more, hint="fix or regenerate the file, or re-bless the case with "
                                                   "'harness bless --force'")
    return [p.line for p in found]


def plan_case(case: Case, *, dims: dict[str, int], seed: int, blessing: bool = False) -> CasePlan:
    """``blessing``: the plan's outputs are about to become every set's goldens, so sets missing theirs are
    what the bless repairs, not bad input."""
    info = case.info
    datasets = case.datasets()
    warnings = []
    if not blessing:
        _check_goldens_all_or_none(case, datasets)
    _check_input_ranges(case, info)
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
            nans = _nan_count(golden)
            if nans:
                warnings.append(f"case {case.name!r} test_data_set_{ds.index} golden {name!r} holds "
                                f"{nans} NaN(s): allowed, matched only by NaN")
    warnings.extend(check_data(case, info, datasets))
    case_task(case)  # a bad case.json task (unknown kind, output or key) is bad input before the run
    case.validate_tolerances()  # a typo is bad input before the run, not an error in every cell
    # A set without inputs has nothing to run, unless the model takes none (Constant, RandomNormal...).
    datasets = [ds for ds in datasets if ds.inputs or (ds.outputs and not info.input_names)]
    if not datasets:
        _check_case_dims(case, info)
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
