"""Robustness per device: ``--perturb noise:σ`` / ``quantize:bits`` reruns each case with seeded input perturbations
and says, per device, how far the task metric moves. Some devices amplify small input noise more than others.

- ``noise:σ``: Gaussian noise of standard deviation σ (in the input's own units) added to every float input;
- ``quantize:bits``: every float input rounded to 2^bits evenly spaced levels between its own min and max (an
  8-bit sensor, a quantised pre-processing step).

Integer inputs (token ids, indices) are never perturbed. The perturbed run is scored against the same goldens as
the clean one, with the same task metrics; each clean cell's ``task["perturbed"][spec]`` keeps the perturbed
metrics and how far each moved (perturbed - clean). The perturbed cells themselves are not cells of the run.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import UsageError
from harness.golden.layout import DataSet
from harness.task.gates import METRICS

_SPEC = re.compile(r"^(noise|quantize):([0-9.eE+-]+)$")
# The metric whose move is the headline for each kind (the first of METRICS is the kind's main agreement).
MAIN = {kind: names[0] for kind, names in METRICS.items()}


@dataclass(frozen=True)
class Perturbation:
    kind: str  # "noise" or "quantize"
    amount: float  # σ, or bits

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.amount:g}"

    def apply(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if array.dtype.kind != "f" or array.size == 0:
            return array
        wide = array.astype(np.float64)
        if self.kind == "noise":
            return (wide + rng.normal(0.0, self.amount, array.shape)).astype(array.dtype)
        low, high = float(wide.min()), float(wide.max())
        if high <= low:
            return array
        steps = 2 ** int(self.amount) - 1
        return (np.round((wide - low) / (high - low) * steps) / steps * (high - low) + low).astype(array.dtype)


def parse(text: str) -> Perturbation:
    """'noise:0.05' or 'quantize:8', refused in one line otherwise."""
    found = _SPEC.match(text.strip()) if isinstance(text, str) else None
    try:
        amount = float(found.group(2)) if found else None
    except ValueError:
        amount = None
    if not found or amount is None or not np.isfinite(amount) or amount <= 0:
        raise UsageError(f"--perturb {text!r}: expected noise:σ (σ > 0) or quantize:bits (bits 1..24)",
                         hint="e.g. --perturb noise:0.05 --perturb quantize:8")
    if found.group(1) == "quantize" and (amount != int(amount) or not 1 <= amount <= 24):
        raise UsageError(f"--perturb {text!r}: bits must be a whole number from 1 to 24")
    return Perturbation(found.group(1), amount)


def perturbed_datasets(datasets: list[DataSet], perturbation: Perturbation, seed: int) -> list[DataSet]:
    """Copies of the data sets with perturbed inputs and the same goldens (seeded per data set)."""
    rng = np.random.default_rng(seed)
    out = []
    for ds in datasets:
        inputs = {name: perturbation.apply(value, rng) if isinstance(value, np.ndarray) else value
                  for name, value in ds.inputs.items()}
        out.append(DataSet(ds.index, ds.path, inputs, ds.outputs))
    return out


def perturbed_plan(plan: Any, perturbation: Perturbation, seed: int) -> Any:
    """A shallow copy of a harness.run.plan.CasePlan whose data sets carry perturbed inputs."""
    twin = copy.copy(plan)
    twin.datasets = perturbed_datasets(plan.datasets, perturbation, seed)
    return twin


def movement(clean: dict[str, Any], perturbed: dict[str, Any]) -> dict[str, Any]:
    """The perturbed cell's metrics and how far each moved from the clean cell's (perturbed - clean)."""
    kind = clean.get("kind", "")
    before, after = clean.get("metrics") or {}, perturbed.get("metrics") or {}
    if "error" in after:
        return {"error": after["error"]}
    numbers = {name: after[name] for name in METRICS.get(kind, ()) if _is_number(after.get(name))}
    moved = {name: numbers[name] - before[name] for name in numbers if _is_number(before.get(name))}
    return {"metrics": numbers, "moved": moved, "main": MAIN.get(kind, "")}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_perturbed(texts: Iterable[str], plans: list[Any], profiles: list[Any], clean_cells: list[Any], seed: int,
                  run_cells: Callable[[list[tuple[Any, Any]]], list[Any]]) -> None:
    """Rerun every (plan, profile) whose clean cell has task metrics with each perturbation (``run_cells`` runs
    cells and returns their CellResults, not journalled), and keep the movement in the clean cell's task."""
    by_key = {(c.case, c.profile): c for c in clean_cells if c.task and "error" not in (c.task.get("metrics") or {})}
    for text in texts:
        perturbation = parse(text)
        todo = [(perturbed_plan(plan, perturbation, seed), profile) for profile in profiles for plan in plans
                if (plan.case.name, profile.name) in by_key]
        for result in run_cells(todo):
            clean = by_key[(result.case, result.profile)]
            moved = movement(clean.task, result.task) if result.task else {"error": f"{result.verdict}: {result.detail}"}
            clean.task.setdefault("perturbed", {})[perturbation.text] = moved


def lines(cells: Iterable[Any]) -> list[str]:
    """One line per (case, perturbation): the main metric's move on each profile, worst first."""
    rows: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for cell in cells:
        for text, found in ((cell.task or {}).get("perturbed") or {}).items():
            main = found.get("main", "")
            if main in found.get("moved", {}):
                rows.setdefault((cell.case, f"{text} {main}"), []).append((found["moved"][main], cell.profile))
    return [f"{case} under {what}: " + ", ".join(f"{p} {m:+.4g}" for m, p in sorted(moves))
            for (case, what), moves in rows.items()]
