"""Cut a minimal repro: the diverging node (or the smallest range ending in it that still fails) extracted with
``onnx.utils.extract_model``, fed the real intermediate values the reference side computed, with the reference's
outputs as goldens, written as a case folder in the ONNX test-data layout. ``harness run <dir> --profile P`` then
reproduces the failure alone, and the folder is small enough to attach to a vendor's bug report.

Only what the reference side computes is written: the repro's goldens are the reference profile's answer for that
subgraph on those inputs, so the repro fails for the profile's own reason, not for an error it inherited.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx
import onnx.utils

from harness.golden.layout import write_dataset
from harness.golden.manifest import MANIFEST_NAME, CaseManifest
from harness.localize.expose import GraphView

MAX_TRIES = 5  # ranges of 1, 2, 4, 8, 16 nodes ending at the diverging one


@dataclass
class Repro:
    path: str
    nodes: list[str]
    inputs: list[str]
    outputs: list[str]
    model_bytes: int
    folder_bytes: int
    fails_alone: bool
    detail: str  # the repro's own verdict line on the profile
    tries: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ancestors_within(view: GraphView, last: int, span: int) -> list[int]:
    """``last`` and the nodes among the ``span - 1`` before it that feed it: a connected range, in order."""
    lowest = max(0, last - span + 1)
    keep, todo = {last}, [last]
    while todo:
        for tensor in view.inputs_of(todo.pop()):
            producer = view.producer.get(tensor)
            if producer is not None and producer >= lowest and producer not in keep:
                keep.add(producer)
                todo.append(producer)
    return sorted(keep)


def boundary(view: GraphView, nodes: list[int]) -> tuple[list[str], list[str]]:
    """(inputs the range reads from outside it, outputs of its last node)."""
    produced = {t for i in nodes for t in view.nodes[i].output if t}
    inputs = list(dict.fromkeys(t for i in nodes for t in view.inputs_of(i) if t not in produced))
    outputs = [t for t in view.nodes[nodes[-1]].output if t]
    return inputs, outputs


def write_case(folder: Path, source_model: Path, inputs: dict[str, Any], outputs: dict[str, Any],
               manifest: CaseManifest) -> None:
    """Extract the subgraph between ``inputs`` and ``outputs`` and write it with one data set and case.json."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model_path = folder / "model.onnx"
    onnx.utils.extract_model(str(source_model), str(model_path), list(inputs), list(outputs), check_model=True)
    (folder / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    write_dataset(folder, 0, inputs, outputs, list(inputs), list(outputs), force=True)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def extract_only(source_model: Path, folder: Path, inputs: list[str], outputs: list[str]) -> None:
    """The bare subgraph, for running it before its goldens exist."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.utils.extract_model(str(source_model), str(folder / "model.onnx"), inputs, outputs, check_model=True)


def cut(view: GraphView, source_model: Path, last: int, folder: Path, *,
        capture: Callable[[list[str]], dict[str, Any]],
        golden: Callable[[Path, dict[str, Any]], dict[str, Any]],
        verify: Callable[[Path], tuple[bool, str]],
        manifest: Callable[[list[str]], CaseManifest]) -> Repro:
    """Grow the range ending at node ``last`` (1, 2, 4... nodes) until its repro fails alone on the profile.

    ``capture(names)``: the reference side's values of those tensors in the full model; ``golden(model, feed)``: the
    reference side's outputs of the extracted model; ``verify(folder)``: (fails alone, verdict line) on the profile;
    ``manifest(nodes)``: the case.json to write."""
    attempt = 0
    while True:
        repro = _attempt(view, source_model, last, folder, 2 ** attempt, capture, golden, verify, manifest)
        repro.tries = attempt + 1
        attempt += 1
        # it fails, the range already reaches back to the graph's inputs, or the tries are spent
        if repro.fails_alone or 2 ** (attempt - 1) > last or attempt == MAX_TRIES:
            return repro


def _attempt(view: GraphView, source_model: Path, last: int, folder: Path, span: int,
             capture: Callable[[list[str]], dict[str, Any]], golden: Callable[[Path, dict[str, Any]], dict[str, Any]],
             verify: Callable[[Path], tuple[bool, str]], manifest: Callable[[list[str]], CaseManifest]) -> Repro:
    """One repro: the connected range of at most ``span`` nodes ending at ``last``, written and verified."""
    nodes = ancestors_within(view, last, span)
    inputs, outputs = boundary(view, nodes)
    feed = capture(inputs)
    scratch = folder.with_name(folder.name + ".partial")
    extract_only(source_model, scratch, inputs, outputs)
    goldens = golden(scratch / "model.onnx", feed)
    shutil.rmtree(scratch, ignore_errors=True)
    names = [view.nodes[i].name or f"#{i}" for i in nodes]
    write_case(folder, source_model, feed, {k: goldens[k] for k in outputs}, manifest(names))
    fails, detail = verify(folder)
    return Repro(str(folder), names, inputs, outputs, (folder / "model.onnx").stat().st_size, folder_bytes(folder),
                 fails, detail, 1)
