"""The calibration runs: the case on the CPU EP at three graph optimisation levels and on the float64 reference,
in the harness's isolated workers (the executor ``harness bless`` uses, capturing outputs), cached on disk.

The three CPU variants are derived from the ``cpu`` profile (its EP and session settings, with only
``graph_optimization`` changed), so they measure exactly what fusions move and nothing else. Threads and the
arena changed nothing in the experiment behind issue 13 and cost time, so they are not varied.

The cache is content-addressed: a run's file name is the sha256 of the model's sha256, the inputs' digest, the
profile's worker spec and the library versions, written atomically, so parallel calibrations share it safely.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.api import MatrixOptions, effective_jobs, load_profiles, shared_cores
from harness.atomic import atomic_write_bytes
from harness.errors import ProfileError
from harness.golden.layout import value_digest
from harness.model.transforms import cache_root
from harness.profiles.known_keys import REFERENCE_EP
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.executor import Availability, Executor, RunOptions, probe
from harness.run.plan import CasePlan
from harness.run.pool import WorkerPool

LEVELS = ("disable", "basic", "all")  # ORT's DISABLE_ALL, ENABLE_BASIC, ENABLE_ALL
REFERENCE = "reference"
_KEYS = "__keys__"


@dataclass
class RunOutcome:
    """One calibration run of one case: its outputs keyed "<k>/<output>" (None when it did not run), and why."""

    profile: str
    outputs: dict[str, np.ndarray] | None
    status: str  # "ran", "cached", or the verdict it ended with (SKIPPED, ERROR, TIMEOUT...)
    detail: str = ""
    seconds: float = 0.0


def cache_dir() -> Path:
    """~/.cache/onnx-harness/calibration (HARNESS_CACHE_DIR or XDG_CACHE_HOME move it, as for the transforms)."""
    return cache_root() / "calibration"


def calibration_profiles(options: MatrixOptions) -> list[Profile]:
    """cpu@disable, cpu@basic, cpu@all (the ``cpu`` profile at each level) and ``reference``."""
    cpu, reference = load_profiles(["cpu", REFERENCE], options)
    if cpu.ep != "CPUExecutionProvider" or cpu.transform != "none" or cpu.precision_hint:
        raise ProfileError(f"profile 'cpu' ({cpu.source}) is not the plain CPU EP: calibration derives its runs "
                           f"from it", hint="remove the user profile named 'cpu' that overrides the built-in one")
    if reference.ep != REFERENCE_EP:
        raise ProfileError(f"profile 'reference' ({reference.source}) is not the float64 reference evaluator",
                           hint="remove the user profile named 'reference' that overrides the built-in one")
    variants = [replace(cpu, name=f"cpu@{level}", session={**cpu.session, "graph_optimization": level},
                        known_failures=(), budgets=None, description=f"calibration: cpu at graph optimisation {level}")
                for level in LEVELS]
    return [*variants, replace(reference, known_failures=())]


def data_digest(plan: CasePlan) -> str:
    """The inputs every calibration run is fed, as one digest (names, types, shapes and bytes)."""
    return value_digest(plan.feed())


def run_key(plan: CasePlan, profile: Profile, versions: dict[str, str]) -> str:
    spec = {k: v for k, v in profile.worker_spec().items() if k != "name"}
    text = json.dumps({"model": plan.info.sha256, "data": data_digest(plan), "spec": spec,
                       "transform": profile.transform, "versions": versions}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _cacheable(outputs: dict) -> dict[str, np.ndarray]:
    """Numeric tensors only: sequences, maps and strings are not calibrated, and .npz holds no objects."""
    return {k: v for k, v in outputs.items() if isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}


def load_cached(path: Path) -> dict[str, np.ndarray] | None:
    """A cached run, or None when absent or unreadable (a damaged file is recomputed, never trusted)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [str(k) for k in data[_KEYS]]
            return {key: data[f"a{i}"] for i, key in enumerate(keys)}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def save_cached(path: Path, outputs: dict[str, np.ndarray]) -> None:
    arrays = _cacheable(outputs)
    buffer = io.BytesIO()
    np.savez(buffer, **{_KEYS: np.array(list(arrays), dtype=str)},
             **{f"a{i}": value for i, value in enumerate(arrays.values())})
    atomic_write_bytes(path, buffer.getvalue())


def run_calibration(plans: list[CasePlan], profiles: list[Profile], *, jobs: int = 0,
                    cache: Path | None = None) -> dict[tuple[str, str], RunOutcome]:
    """Every (case, profile) run, from the cache where it holds one, else in parallel workers (``jobs``: 0 = every
    core). Keyed (case name, profile name). A run that fails is an outcome without outputs, never an exception."""
    cache = cache or cache_dir()
    versions = R.versions()
    options = MatrixOptions(numerics_only=True, jobs=jobs)
    options = replace(options, jobs=effective_jobs(options))
    profiles = [shared_cores(p, options) for p in profiles]
    outcomes: dict[tuple[str, str], RunOutcome] = {}
    todo: list[tuple[CasePlan, Profile, Path]] = []
    for plan in plans:
        for profile in profiles:
            path = cache / f"{run_key(plan, profile, versions)}.npz"
            cached = load_cached(path) if path.is_file() else None
            if cached is not None:
                outcomes[(plan.case.name, profile.name)] = RunOutcome(profile.name, cached, "cached")
            else:
                todo.append((plan, profile, path))
    if todo:
        outcomes.update(_run(todo, options.jobs))
    return outcomes


def _run(todo: list[tuple[CasePlan, Profile, Path]], jobs: int) -> dict[tuple[str, str], RunOutcome]:
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-") as scratch:
        executor = Executor(RunOptions(Path(scratch), jobs=jobs, capture_outputs=True), None, WorkerPool())
        try:
            needed = list({p.name: p for _, p, _ in todo}.values())
            availability: dict[str, Availability] = {p.name: probe(p, executor.pool) for p in needed}
            started = time.perf_counter()
            cells = executor.run([(plan, profile) for plan, profile, _ in todo], availability)
            elapsed = time.perf_counter() - started
        finally:
            executor.close()
    outcomes = {}
    for (plan, profile, path), cell in zip(todo, cells):
        outputs = executor.captured.get(cell.key)
        if outputs is None:
            outcome = RunOutcome(profile.name, None, cell.verdict, cell.detail[:300], cell.duration_s)
        else:
            outcome = RunOutcome(profile.name, _cacheable(outputs), "ran", "", cell.duration_s or elapsed)
            try:
                save_cached(path, outputs)
            except OSError as exc:  # a full or read-only cache costs the next calibration time, not this one
                outcome.detail = f"not cached ({path.parent}: {exc.strerror or exc})"
        outcomes[(plan.case.name, profile.name)] = outcome
    return outcomes
