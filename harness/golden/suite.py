"""The ONNX node suite as a case source: onnx's 1884 node tests, built once per onnx version, cached on disk.

onnx 1.23 no longer ships the node tests as files: ``onnx.backend.test.loader.load_model_tests(kind="node")``
builds them in memory (about 15 s). Here they are written once into the ONNX test-data layout, exactly as
onnx's own ``backend-test-tools generate-data`` writes them (TensorProto, SequenceProto, OptionalProto or
MapProto per the graph's declared type), so the folder is also a plain directory of cases that any tool
reading that layout can run:

    <cache>/suites/onnx-node-<onnx version>-f<format>/
        suite.json                     index: each case's name, operator and tolerance
        test_abs/model.onnx
        test_abs/test_data_set_0/input_0.pb, output_0.pb
        test_abs/data.json             {"rtol": 1e-3, "atol": 1e-7}: what onnx's loader reads
        test_abs/case.json             the operator under test, where the tolerances came from, and
                                       output_tolerance for bfloat16 outputs (rtol 2^-6, as onnx's runner)

The build happens in a temporary folder beside the cache and is renamed into place only when complete, so a
killed build leaves no half cache and two concurrent runs never see one another's half-written files. The
cache key is the onnx version (the tests are onnx's source code) and this writer's format number.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from harness.atomic import atomic_write_bytes
from harness.errors import GoldenError
from harness.golden.cases import Case, filter_names, load_case
from harness.golden import layout
from harness.golden.layout import MODEL_NAME
from harness.golden.manifest import MANIFEST_NAME, CaseManifest
from harness.model.transforms import cache_root as shared_cache_root

SUITE = "onnx-node"
FORMAT = 1  # bump when what is written changes: older caches are then rebuilt, never misread
INDEX_NAME = "suite.json"
_INDEX_SCHEMA = "onnx-harness/suite-index"
# onnx's loader and runner: TestCase rtol/atol default to these; bfloat16 outputs get max(rtol, 2**-6),
# two bfloat16 ULPs (onnx/backend/test/runner assert_similar_outputs).
DEFAULT_RTOL, DEFAULT_ATOL = 1e-3, 1e-7
BFLOAT16_RTOL = 2.0 ** -6
_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")
_BUILDING = ".building-"


@dataclass(frozen=True)
class SuiteEntry:
    """One case in the index: enough to filter and label it without opening its folder."""

    name: str
    op: str
    rtol: float
    atol: float
    tolerance: str  # which tolerances applied, and why, in words


def suite_dir(cache_root: Path | None = None) -> Path:
    """Where this onnx version's suite lives (built or not)."""
    root = cache_root if cache_root is not None else shared_cache_root()
    return root / "suites" / f"{SUITE}-{onnx.__version__}-f{FORMAT}"


def read_index(folder: Path) -> list[SuiteEntry] | None:
    """The entries of a complete cache, or None when ``folder`` is missing, half-made or from another build."""
    try:
        data = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or (data.get("schema"), data.get("format"), data.get("onnx")) != (
            _INDEX_SCHEMA, FORMAT, onnx.__version__):
        return None
    try:
        entries = [SuiteEntry(**e) for e in data["cases"]]
    except (KeyError, TypeError):
        return None
    return entries if len(entries) == data.get("count") else None


def materialise(cache_root: Path | None = None,
                notify: Callable[[str], None] | None = None) -> tuple[Path, list[SuiteEntry]]:
    """The suite's folder and index, built on first use (once per onnx version), reused after that.
    ``notify`` hears one line before a build starts (it takes 15-30 s), e.g. to tell the user why."""
    target = suite_dir(cache_root)
    entries = read_index(target)
    if entries is not None:
        return target, entries
    if notify is not None:
        notify(f"building onnx {onnx.__version__}'s node test suite into {target} (once per onnx version)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_BUILDING}{target.name}-{os.getpid()}-", dir=target.parent))
        try:
            _build_into(tmp)
            _publish(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already when it was renamed into place
    except OSError as exc:  # a read-only or full disk
        raise GoldenError(f"{target.parent}: cannot write the onnx node suite there ({exc.strerror or exc})",
                          hint="set HARNESS_CACHE_DIR to a writable folder with ~100 MB free") from None
    entries = read_index(target)
    if entries is None:
        raise GoldenError(f"{target}: the onnx node suite was built but its index does not read back",
                          hint=f"delete {target} and run again")
    return target, entries


def _publish(tmp: Path, target: Path) -> None:
    """Rename the finished build into place; a concurrent run that got there first wins (same content)."""
    if target.exists() and read_index(target) is None:  # a damaged or foreign folder under our name
        stale = target.with_name(f"{_BUILDING}{target.name}-{os.getpid()}-stale")
        with contextlib.suppress(FileNotFoundError):  # another run moved it first
            os.rename(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if read_index(target) is None:
            raise GoldenError(f"{target}: could not move the built onnx node suite into place ({exc})",
                              hint=f"check that {target.parent} is writable") from None


def _remove_abandoned_builds(folder: Path) -> None:
    """Temporary folders left by a build that was killed (its process is gone)."""
    for child in folder.glob(f"{_BUILDING}*"):
        match = re.search(r"-(\d+)-[^-]*$", child.name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_node_tests() -> list[Any]:
    """onnx's node TestCases, built in memory; their numpy warnings (deliberate overflows in the Cast
    tests) are not ours to show."""
    try:
        from onnx.backend.test.loader import load_model_tests
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return list(load_model_tests(kind="node"))
    except Exception as exc:  # an onnx build without its backend tests, or one whose tests fail to build
        raise GoldenError(f"onnx {onnx.__version__}: its node tests could not be built "
                          f"({type(exc).__name__}: {str(exc)[:200]})",
                          hint="install a released onnx wheel (pip install onnx), which includes them") from None


def _build_into(folder: Path) -> None:
    started = time.perf_counter()
    tests = load_node_tests()
    by_name = {t.name: t for t in tests}
    schema_ops = _schema_ops()
    entries = []
    for test in tests:
        entry = _entry(test, _op_under_test(test, by_name, schema_ops))
        _write_case(folder / test.name, test, entry)
        entries.append(entry)
    index = {"schema": _INDEX_SCHEMA, "format": FORMAT, "suite": SUITE, "onnx": onnx.__version__,
             "count": len(entries), "build_s": round(time.perf_counter() - started, 2),
             "cases": [asdict(e) for e in entries]}
    atomic_write_bytes(folder / INDEX_NAME, (json.dumps(index, indent=1) + "\n").encode("utf-8"))


def _op_under_test(test: Any, by_name: dict[str, Any], schema_ops: dict[str, str]) -> str:
    """The op a node test is named after. A plain node test holds exactly that one node; an *_expanded test
    (the op's function body) takes its non-expanded sibling's; anything else, the longest schema name
    whose snake_case form starts the test name."""
    sibling = by_name.get(_EXPANDED.sub("", test.name), test)
    nodes = sibling.model.graph.node
    if len(nodes) == 1:
        return nodes[0].op_type
    stem = test.name.removeprefix("test_")
    matches = [snake for snake in schema_ops if stem == snake or stem.startswith(snake + "_")]
    return schema_ops[max(matches, key=len)] if matches else ""


@functools.cache
def _schema_ops() -> dict[str, str]:
    """snake_case name -> op name, for every operator schema onnx knows."""
    def snake(name: str) -> str:
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return {snake(s.name): s.name for s in onnx.defs.get_all_schemas_with_history()}


def _entry(test: Any, op: str) -> SuiteEntry:
    rtol, atol = float(test.rtol), float(test.atol)
    source = ("onnx's defaults" if (rtol, atol) == (DEFAULT_RTOL, DEFAULT_ATOL)
              else "this test's own, from onnx's loader")
    bf16 = _bfloat16_outputs(test.model)
    text = f"rtol {rtol:g}, atol {atol:g} ({source})"
    if bf16:
        text += f"; bfloat16 output(s) {', '.join(bf16)}: rtol {max(rtol, BFLOAT16_RTOL):g} (onnx's runner)"
    return SuiteEntry(test.name, op, rtol, atol, text)


def _bfloat16_outputs(model: onnx.ModelProto) -> list[str]:
    return [o.name for o in model.graph.output if o.type.HasField("tensor_type")
            and o.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16]


def _write_case(case_dir: Path, test: Any, entry: SuiteEntry) -> None:
    model = test.model
    graph = model.graph
    case_dir.mkdir()
    (case_dir / MODEL_NAME).write_bytes(model.SerializeToString())
    for k, (inputs, outputs) in enumerate(test.data_sets):
        ds_dir = case_dir / f"test_data_set_{k}"
        ds_dir.mkdir()
        for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
            if len(values) != len(infos):
                raise GoldenError(f"onnx node test {test.name}: {len(values)} {kind} value(s) for "
                                  f"{len(infos)} graph {kind}(s)", hint="report it to onnx")
            for j, (value, info) in enumerate(zip(values, infos)):
                (ds_dir / f"{kind}_{j}.pb").write_bytes(value_proto(value, info, test.name).SerializeToString())
    (case_dir / "data.json").write_text(json.dumps({"rtol": entry.rtol, "atol": entry.atol}) + "\n")
    bf16_rtol = max(entry.rtol, BFLOAT16_RTOL)
    manifest = CaseManifest(
        case=test.name, description=f"onnx node test {test.name} ({entry.op or 'operator unknown'})",
        opset=next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        source={"kind": "suite", "suite": SUITE, "onnx": onnx.__version__, "op": entry.op,
                "tolerance": entry.tolerance},
        output_tolerance={name: {"rtol": bf16_rtol, "atol": entry.atol} for name in _bfloat16_outputs(model)})
    (case_dir / MANIFEST_NAME).write_text(manifest.to_json())


def value_proto(value: Any, info: onnx.ValueInfoProto, test: str) -> Any:
    """The .pb message for one value, by the graph's declared type, as onnx's generate-data writes it:
    TensorProto, SequenceProto, OptionalProto or MapProto, named after the graph input/output. Tensors are
    handled here (onnx hands the exotic dtypes over as packed TensorProtos); the rest is layout's writer."""
    if info.type.HasField("tensor_type"):
        return _tensor_proto(value, info, test)
    try:
        return layout.value_proto(info.name, value, info.type)
    except (TypeError, ValueError, NotImplementedError, KeyError) as exc:
        raise GoldenError(f"onnx node test {test}: {info.name!r} cannot be stored as a .pb ({exc})",
                          hint="report it with your onnx version") from None


def _tensor_proto(value: Any, info: onnx.ValueInfoProto, test: str) -> onnx.TensorProto:
    """A TensorProto as given (the exotic dtypes arrive packed this way), renamed after the graph value;
    or an array or numpy scalar converted. A value whose element type differs from the declared one is
    refused: writing it would make a golden the model can never produce. Python and numpy scalars (some
    tests give a bare bool or np.float32) take the declared element type, as the graph says they are."""
    declared = info.type.tensor_type.elem_type
    if isinstance(value, onnx.TensorProto):
        proto = onnx.TensorProto()
        proto.CopyFrom(value)
        proto.name = info.name
    else:
        array = value if isinstance(value, np.ndarray) else np.asarray(
            value, dtype=helper.tensor_dtype_to_np_dtype(declared))
        proto = numpy_helper.from_array(array, info.name)
    if proto.data_type != declared:
        raise GoldenError(f"onnx node test {test}: {info.name!r} holds {_elem_name(proto.data_type)} but the "
                          f"graph declares {_elem_name(declared)}", hint="report it with your onnx version")
    return proto


def _elem_name(elem_type: int) -> str:
    return helper.tensor_dtype_to_string(elem_type).removeprefix("TensorProto.")


class NodeSuite:
    """The "onnx-node" case source: every node test of the installed onnx, or those whose name matches."""

    name = SUITE

    def __init__(self, cache_root: Path | None = None, notify: Callable[[str], None] | None = None) -> None:
        self.cache_root = cache_root
        self.notify = notify

    def cases(self, pattern: str | None = None) -> list[Case]:
        folder, entries = materialise(self.cache_root, self.notify)
        ops = {e.name: e.op for e in entries}
        wanted = filter_names([e.name for e in entries], pattern, f"the {SUITE} suite (onnx {onnx.__version__})")
        missing = [name for name in wanted if not (folder / name / MODEL_NAME).is_file()]
        if missing:
            raise GoldenError(f"{folder}: the suite cache lacks {len(missing)} case(s) its index lists "
                              f"(first: {missing[0]})", hint=f"delete {folder} and run again to rebuild it")
        return [_suite_case(folder, name, ops[name]) for name in wanted]

    def describe(self, pattern: str | None = None) -> dict[str, Any]:
        """For the run record: where the cases came from and which tolerances the suite applied."""
        folder, entries = materialise(self.cache_root, self.notify)
        chosen = set(filter_names([e.name for e in entries], pattern, f"the {SUITE} suite"))
        own = [e.name for e in entries if e.name in chosen and (e.rtol, e.atol) != (DEFAULT_RTOL, DEFAULT_ATOL)]
        bf16 = [e.name for e in entries if e.name in chosen and "bfloat16" in e.tolerance]
        return {"source": SUITE, "onnx": onnx.__version__, "folder": str(folder), "filter": pattern,
                "cases": len(chosen), "tolerance": {"rtol": DEFAULT_RTOL, "atol": DEFAULT_ATOL},
                "bfloat16_outputs": {"rtol": BFLOAT16_RTOL, "cases": bf16},
                "own_tolerance_cases": own}


def _suite_case(folder: Path, name: str, op: str) -> Case:
    case = load_case(folder / name, name)
    case.tested_op = op
    return case


__all__: Sequence[str] = ["NodeSuite", "SuiteEntry", "materialise", "suite_dir", "read_index", "value_proto",
                          "load_node_tests", "SUITE", "DEFAULT_RTOL", "DEFAULT_ATOL",
                          "BFLOAT16_RTOL"]
