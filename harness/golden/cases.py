"""Find cases: any folder holding model.onnx in the ONNX test-data layout, with or without case.json."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare.tolerances import ToleranceOverride
from harness.errors import GoldenError, UsageError
from harness.golden.layout import MODEL_NAME, DataSet, dataset_dirs, read_dataset
from harness.golden.manifest import MANIFEST_NAME, CaseManifest, read_manifest
from harness.model.loader import ModelInfo, load_model_info
from harness.perf.budgets import Budgets, parse_budgets
from harness.suggest import did_you_mean


@dataclass
class Case:
    name: str
    path: Path
    manifest: CaseManifest
    has_manifest: bool
    _info: ModelInfo | None = field(default=None, repr=False)
    model_file: Path | None = None  # a bare .onnx file given on its own: no data sets, no goldens
    tested_op: str = ""  # the operator under test, when the case source knows it (the onnx node suite)

    @property
    def op(self) -> str:
        """The operator this case tests, for per-operator summaries: what its source said, else the op of a
        one-node graph, else '' (a whole model tests no single operator)."""
        return self.tested_op or self.info.single_op

    @property
    def model_path(self) -> Path:
        return self.model_file or self.path / MODEL_NAME

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            self._info = load_model_info(self.model_path)
        return self._info

    def datasets(self) -> list[DataSet]:
        if self.model_file is not None:
            return []
        info = self.info
        types = info.value_types or None  # the types the loader already parsed (None: layout reads them)
        return [read_dataset(d, k, info.input_names, info.output_names, types) for k, d in dataset_dirs(self.path)]

    @functools.cached_property
    def budgets(self) -> Budgets | None:
        """case.json 'budgets', parsed once (they override the profile's)."""
        if not self.manifest.budgets:
            return None
        return parse_budgets(self.manifest.budgets, f"{self.path / 'case.json'} budgets")

    @functools.cached_property
    def tolerance_overrides(self) -> CaseTolerances:
        """The case's own tolerance layers, parsed once: onnx backend tests' optional data.json (rtol/atol),
        case.json 'tolerance' and 'output_tolerance'. Bad values raise here, at plan time."""
        where = str(self.path / "case.json")
        manifest = self.manifest
        outputs = self.info.output_names
        for name in manifest.output_tolerance:
            if name not in outputs:
                raise GoldenError(f"{where}: output_tolerance names output {name!r}{did_you_mean(name, outputs)}, "
                                  f"but the model's outputs are {outputs}")
        data_json = self._read_data_json()
        return CaseTolerances(
            ToleranceOverride.from_mapping(data_json, str(self.path / "data.json")) if data_json else None,
            ToleranceOverride.from_mapping(manifest.tolerance, f"{where} tolerance") if manifest.tolerance else None,
            {name: ToleranceOverride.from_mapping(v, f"{where} output_tolerance.{name}")
             for name, v in manifest.output_tolerance.items()})

    def validate_tolerances(self) -> None:
        """Parse the case's tolerance layers now, so a bad value is refused before any cell runs."""
        _ = self.tolerance_overrides

    def _read_data_json(self) -> dict:
        path = self.path / "data.json"
        if self.model_file is not None or not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GoldenError(f"{path}: not valid JSON ({exc})") from None
        except RecursionError:
            raise _too_deep(path) from None
        if not isinstance(data, dict):
            raise GoldenError(f"{path}: must be a JSON object")
        return {k: data[k] for k in ("rtol", "atol") if k in data}  # validated by ToleranceOverride


@dataclass(frozen=True)
class CaseTolerances:
    data_json: ToleranceOverride | None
    case_wide: ToleranceOverride | None
    per_output: dict[str, ToleranceOverride]


def _too_deep(path: Path) -> GoldenError:
    return GoldenError(f"{path}: nested too deeply to read (Python's JSON parser recurses once per level)",
                       hint="a case's JSON holds a flat object of settings; restore it from git or delete it")


def load_case(path: Path, name: str) -> Case:
    try:
        manifest = read_manifest(path)
    except RecursionError:  # json.loads in read_manifest, on a file nested thousands of levels deep
        raise _too_deep(path / MANIFEST_NAME) from None
    return Case(name=name, path=path, manifest=manifest or CaseManifest(case=name), has_manifest=manifest is not None)


def _case_dirs(root: Path) -> list[Path]:
    if (root / MODEL_NAME).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(MODEL_NAME))


def discover(selectors: list[str], root: Path) -> list[Case]:
    """Resolve CLI selectors (paths or case names under ``root``) to cases; no selector means all of root."""
    known = {str(p.relative_to(root)): p for p in _case_dirs(root)} if root.is_dir() else {}
    if not selectors:
        if not known:
            where = f"{root}/ holds no model.onnx" if root.is_dir() else f"no {root}/ folder in {Path.cwd()}"
            raise UsageError(f"no cases to run here ({where})",
                             hint="to start, check your own model across devices with 'harness run path/to/model.onnx', "
                                  "or pass a folder of cases (model.onnx + test_data_set_<k>/)")
        return [load_case(p, n) for n, p in sorted(known.items())]
    cases: dict[Path, Case] = {}
    names: dict[str, Path] = {}
    for selector in selectors:
        for name, path in _resolve(selector, root, known):
            resolved = path.resolve()
            if name in names and names[name] != resolved:
                # Cells, artifacts and --resume are keyed by case name: two folders must not share one.
                raise UsageError(f"two different cases are both named {name!r}: {names[name]} and {resolved}",
                                 hint="pass their parent folders instead, so each gets a distinct relative name")
            names[name] = resolved
            cases.setdefault(resolved, _bare_case(path, name) if path.is_file() else load_case(path, name))
    return list(cases.values())


def filter_names(names: list[str], pattern: str | None, where: str) -> list[str]:
    """The names ``re.search(pattern)`` finds (``--filter``); all of them for no pattern. A bad regex, or one
    matching nothing, is a UsageError naming ``where`` the cases came from."""
    if pattern is None:
        return list(names)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--filter {pattern!r} is not a valid regular expression ({exc})",
                         hint="it is a Python regex searched in each case name, e.g. 'conv|gemm' or '^test_add_'"
                         ) from None
    chosen = [n for n in names if regex.search(n)]
    if not chosen:
        raise UsageError(f"--filter {pattern!r} matches none of the {len(names)} case(s) in {where}"
                         f"{did_you_mean(pattern, names)}",
                         hint="the filter is a Python regex searched anywhere in each case name (re.search)")
    return chosen


def _bare_case(model: Path, name: str) -> Case:
    """A model file on its own: no manifest, no data sets; inputs are generated and outputs are compared
    with a reference profile."""
    return Case(name=name, path=model.parent, manifest=CaseManifest(case=name), has_manifest=False, model_file=model)


def _resolve(selector: str, root: Path, known: dict[str, Path]) -> list[tuple[str, Path]]:
    if selector in known:
        return [(selector, known[selector])]
    by_folder = [n for n in known if Path(n).name == selector]
    if len(by_folder) == 1:  # a nested case by its folder name, as the did-you-mean below offers it
        return [(by_folder[0], known[by_folder[0]])]
    if by_folder:
        raise UsageError(f"case name {selector!r} is ambiguous: {', '.join(sorted(by_folder))}",
                         hint="use the full name shown by 'harness list'")
    path = Path(selector)
    if path.is_file() and path.suffix == ".onnx":
        if path.name == MODEL_NAME:  # the model of a case folder: the folder is the case
            return [(_name_for(path.parent, path.parent, root), path.parent)]
        return [(path.stem, path)]
    if path.is_dir():
        dirs = _case_dirs(path)
        if not dirs:
            raise UsageError(f"{selector}: no {MODEL_NAME} found in this directory or below",
                             hint="a case is a folder with model.onnx and test_data_set_<k>/ folders")
        return [(_name_for(d, path, root), d) for d in dirs]
    if path.exists():
        raise UsageError(f"{selector}: not a case folder or an .onnx model",
                         hint="pass a model file (.onnx) or the case's folder, not another file inside it")
    names = dict.fromkeys(list(known) + [Path(n).name for n in known])
    raise UsageError(f"no case or directory named {selector!r}{did_you_mean(selector, names)}",
                     hint="'harness list' shows the cases")


def _name_for(case_dir: Path, selected: Path, root: Path) -> str:
    resolved = case_dir.resolve()
    for base in (root.resolve(), selected.resolve().parent):
        if resolved.is_relative_to(base) and resolved != base:
            return str(resolved.relative_to(base))
    return case_dir.name
