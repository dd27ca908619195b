"""Data validation before anything runs: a case's stored inputs and goldens against the model's signature.

What harness.run.plan already refuses one value at a time (a tensor's dtype, rank and fixed dims against its graph
input) is checked here for every value of every data set, together with what only the whole set shows:

- goldens against the graph outputs: dtype, rank, fixed dims;
- symbolic dims bound consistently within a data set ('batch' is 2 in every input and golden that names it);
- NaN or Inf in an input (of a case whose case.json declares input ranges);
- input values outside case.json ``input_ranges``;
- an empty data set (a test_data_set_<k> folder with no .pb file);
- a duplicate data set (the same inputs as an earlier one: it tests nothing new).

Each problem is one line naming the file. ``severity`` "error" problems are bad input (the plan refuses the case,
exit 2): inputs whose symbolic dims disagree, NaN/Inf in an input with a declared range, values outside it.
"warning" problems are kept in the record and printed with the run: a golden that does not fit the declared output
(declared output shapes are often stale; the comparison then shows both shapes as the cell's FAIL), NaN/Inf in an
input with no declared range, an empty data set (not run) and a duplicate one.
A case whose case.json declares no input_ranges (the ONNX node suite, which feeds NaN to IsNaN on purpose) is not
told about NaN/Inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.golden.layout import DataSet, Value, value_digest
from harness.model.loader import ModelInfo, TensorSig

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    severity: str  # ERROR or WARNING
    file: str  # the file (or data set folder) at fault
    message: str  # what is wrong, with the numbers

    @property
    def line(self) -> str:
        return f"{self.file}: {self.message}"


def _file(ds: DataSet, role: str, index: int, case_name: str) -> str:
    folder = ds.path if ds.path is not None else Path(f"{case_name} (generated) test_data_set_{ds.index}")
    return str(folder / f"{role}_{index}.pb")


def _signature(sig: TensorSig, array: np.ndarray, what: str) -> list[str]:
    """dtype, rank and fixed dims of one tensor against its declared type: what is wrong, one phrase each."""
    if sig.dtype is not None and array.dtype != sig.dtype:
        return [f"{what} {sig.name!r} is {array.dtype} but the model declares {sig.dtype}"]
    if sig.shape and len(sig.shape) != array.ndim:
        return [f"{what} {sig.name!r} has rank {array.ndim} {list(array.shape)} but the model declares rank "
                f"{len(sig.shape)} {list(sig.shape)}"]
    return [f"{what} {sig.name!r} axis {axis} is {got} but the model fixes it to {want}"
            for axis, (want, got) in enumerate(zip(sig.shape, array.shape))
            if isinstance(want, int) and want >= 0 and want != got]


def _tensor_values(ds: DataSet, sigs: list[TensorSig], role: str, case_name: str):
    """(file, signature, array) of each tensor value the data set holds for these graph values."""
    values = ds.inputs if role == "input" else ds.outputs
    for index, sig in enumerate(sigs):
        value = values.get(sig.name)
        if isinstance(value, np.ndarray) and sig.dtype is not None:
            yield _file(ds, role, index, case_name), sig, value


def _symbolic(ds: DataSet, info: ModelInfo, case_name: str) -> list[Problem]:
    """A symbolic dim takes one value across the data set's inputs and goldens."""
    bound: dict[str, tuple[int, str]] = {}
    problems = []
    for role, sigs in (("input", info.inputs), ("output", info.outputs)):
        for file, sig, array in _tensor_values(ds, sigs, role, case_name):
            if len(sig.shape) != array.ndim:
                continue  # said as a rank problem
            for axis, (name, size) in enumerate(zip(sig.shape, array.shape)):
                if not isinstance(name, str) or not name:
                    continue
                first = bound.setdefault(name, (size, f"{Path(file).name} axis {axis}"))
                if first[0] != size:
                    problems.append(Problem(ERROR if role == "input" else WARNING, file, f"{role} {sig.name!r} axis {axis} binds {name!r} to {size}, "
                                                         f"but {first[1]} binds it to {first[0]}"))
    return problems


def _finite_and_ranges(ds: DataSet, info: ModelInfo, ranges: dict[str, dict[str, float]] | None,
                       case_name: str) -> list[Problem]:
    """NaN/Inf is said only for a case whose case.json describes its inputs (``ranges`` not empty): a suite that
    does not (the ONNX node tests) feeds NaN and Inf on purpose."""
    problems = []
    for file, sig, array in _tensor_values(ds, info.inputs, "input", case_name):
        if array.dtype.kind not in "fiu" or array.size == 0:
            continue
        declared = (ranges or {}).get(sig.name)
        if array.dtype.kind == "f" and ranges:
            nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
            if nan or inf:
                severity = ERROR if declared else WARNING
                why = " (case.json input_ranges declares finite values)" if declared else ""
                problems.append(Problem(severity, file, f"input {sig.name!r} holds {nan} NaN and {inf} Inf of "
                                                        f"{array.size} values{why}"))
                continue
        if declared and array.dtype.kind in "fiu":
            low, high = float(declared["low"]), float(declared["high"])
            outside = int(np.sum((array < low) | (array > high)))
            if outside:
                problems.append(Problem(ERROR, file, f"input {sig.name!r}: {outside} of {array.size} values outside "
                                                     f"the declared range [{low:g}, {high:g}] (min {array.min():g}, "
                                                     f"max {array.max():g})"))
    return problems


def _empty(ds: DataSet) -> bool:
    return ds.path is not None and not any(ds.path.glob("*.pb"))


def validate(case_name: str, info: ModelInfo, datasets: list[DataSet],
             ranges: dict[str, dict[str, float]] | None = None) -> list[Problem]:
    """Every problem with the case's data sets, in data set order (see the module docstring). ``ranges``: case.json
    input_ranges ({} or None: none declared)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for ds in datasets:
        if _empty(ds):
            problems.append(Problem(WARNING, str(ds.path), "empty data set: no input_<i>.pb or output_<j>.pb in it, "
                                                           "so it is not run (inputs are generated if no set has any)"))
            continue
        for role, sigs in (("input", info.inputs), ("output", info.outputs)):
            what, severity = ("input", ERROR) if role == "input" else ("golden", WARNING)
            for file, sig, array in _tensor_values(ds, sigs, role, case_name):
                problems.extend(Problem(severity, file, m) for m in _signature(sig, array, what))
        problems.extend(_symbolic(ds, info, case_name))
        problems.extend(_finite_and_ranges(ds, info, ranges, case_name))
        if ds.inputs:
            digest = value_digest(ds.inputs)
            if digest in seen:
                problems.append(Problem(WARNING, str(ds.path), f"the same inputs as test_data_set_{seen[digest]}: "
                                                               f"a duplicate data set tests nothing new"))
            seen.setdefault(digest, ds.index)
    return problems


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]


