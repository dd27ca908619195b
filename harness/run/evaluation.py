"""Latency and memory observations -> statistics, budget verdicts, baseline regressions, noise floor.

Raw samples stay in the run folder (``cells/<case>__<profile>-<hash>/latency_ns.npy``); everything in the run
record is derived from them and can be recomputed.
"""

from __future__ import annotations

import platform
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import BaselineError, UsageError
from harness.golden.cases import Case
from harness.perf.budgets import Budgets, check_budgets, parse_regression
from harness.worker.stats import PERCENTILE_NAMES, LatencyStats, min_samples_for, percentile_from_name
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.plan import CasePlan

BASE_TARGETS = ("p50", "p95")
MB = 1 << 20


def budgets_for(profile: Profile, case: Case) -> Budgets | None:
    case_budget = case.budgets
    if profile.budgets is None:
        return case_budget
    return profile.budgets.merged(case_budget)


def targets_for(budgets: Budgets | None) -> list[str]:
    targets = list(BASE_TARGETS)
    for key in (budgets.to_dict() if budgets else {}):
        name = key.removesuffix("_ms")
        if key.endswith("_ms") and name in PERCENTILE_NAMES and name not in targets:
            targets.append(name)
    return targets


def measure_spec(profiles: list[Profile], cases: list[Case],
                 time_cap_s: float) -> Callable[[Profile, CasePlan], dict | None]:
    """Per cell: which percentiles need a CI (the budgeted ones), and the sampling caps."""
    for profile in profiles:  # surface bad per-case budgets before the run starts
        for case in cases:
            budgets_for(profile, case)

    def spec(profile: Profile, plan: CasePlan) -> dict[str, Any] | None:
        if not profile.latency:  # a profile whose timings mean nothing is never sampled (its budgets cannot apply)
            return None
        targets = targets_for(budgets_for(profile, plan.case))
        return {"warmup": {"count": 5, "until_stable": True, "batch": 10, "max_batches": 10},
                "stopping": {"targets": targets, "rel_half_width": 0.02, "time_cap_s": time_cap_s,
                             "min_iters": max(10, max(min_samples_for(percentile_from_name(t)) for t in targets)),
                             "check_every": None}}
    return spec


def boot_count(n: int) -> int:
    """Bootstrap resamples for the record's CIs: 1000, fewer for very long sample runs (the cost is
    n x resamples; at 100k samples 1000 resamples take ~3 s a cell) but never below 200."""
    return max(200, min(1000, 20_000_000 // max(n, 1)))


def memory_summary(raw: dict[str, Any]) -> dict[str, Any]:
    start, peak = raw.get("rss_start"), raw.get("peak")
    if not start or peak is None:
        return dict(raw)
    after = raw.get("after_session") or start
    return {**raw, "session_delta_mb": round((after - start) / MB, 2), "peak_delta_mb": round((peak - start) / MB, 2),
            "steady_delta_mb": round(((raw.get("rss_end") or start) - start) / MB, 2), "peak_mb": round(peak / MB, 2)}


class Evaluator:
    """Called by the executor for each observed cell: stats, budgets, regressions."""

    def __init__(self, baseline: Path | None, regressions: list[str]) -> None:
        self.checks = [parse_regression(s) for s in (regressions or (["p50:10%"] if baseline else []))]
        self.baseline_dir: Path | None = None
        self.baseline_cells: dict[str, R.CellResult] = {}
        self.baseline_warning = ""
        if baseline is not None:
            record, self.baseline_dir = R.load_record(baseline)
            self.baseline_cells = {c.key: c for c in record.cells}
            _confine_artifacts(self.baseline_cells.values(), self.baseline_dir, baseline)
            if record.machine.get("node") != platform.node() or record.machine.get("cpu") != R.machine_info()["cpu"]:
                self.baseline_warning = (f"baseline {baseline} was measured on another host "
                                         f"({record.machine.get('node')}, {record.machine.get('cpu')}): "
                                         "latency differences may be the hardware, not the change")

    def check_coverage(self, keys: list[str], where: str) -> str:
        """A baseline that holds none of the run's cells would compare nothing and leave the run green: refuse
        it. One that holds some: a warning counting the cells that have nothing to compare with."""
        if self.baseline_dir is None or not keys:
            return ""
        missing = [k for k in keys if k not in self.baseline_cells]
        if len(missing) == len(keys):
            theirs = sorted({c.case for c in self.baseline_cells.values()})
            raise UsageError(f"--baseline {where} holds none of this run's {len(keys)} cell(s) (case|profile, e.g. "
                             f"{keys[0]!r}); it ran {len(theirs)} case(s): {', '.join(theirs[:5]) or 'none'}",
                             hint="pass a record of a run on the same cases and profiles")
        if missing:
            return (f"baseline {where} has no cell for {len(missing)} of this run's {len(keys)} cells (e.g. "
                    f"{missing[0]!r}): those are not checked for regressions")
        return ""

    def __call__(self, result: R.CellResult, plan: CasePlan, profile: Profile, samples: np.ndarray | None) -> None:
        result.memory = memory_summary(result.memory)
        budgets = budgets_for(profile, plan.case) if profile.latency else None  # emulated/fp64: not device timings
        stats = None
        if samples is not None and len(samples):
            targets = targets_for(budgets)
            stats = LatencyStats.from_samples(samples, ci_for=targets, n_boot=boot_count(len(samples)))
            result.latency["stats"] = stats.to_dict()
        if result.verdict not in (R.PASS, R.PASS_FELL_BACK):
            return
        violations = []
        if budgets:
            violations = check_budgets(budgets, stats, cold_start_ms=result.timing.get("session_ms"),
                                       first_inference_ms=result.timing.get("first_inference_ms"),
                                       peak_mb=result.memory.get("peak_delta_mb"))
        messages = [v.message() for v in violations]
        if violations and profile.target:
            messages.append(f"note: budgets are for {profile.target}; measured on {R.machine_info()['cpu']}")
        messages += self._regressions(result, samples)
        if messages:
            result.budget = messages
            result.verdict = R.OVER_BUDGET
            result.detail = messages[0]

    def _regressions(self, result: R.CellResult, samples: np.ndarray | None) -> list[str]:
        base = self.baseline_cells.get(result.key)
        if samples is None or base is None or "latency_ns" not in base.artifacts or self.baseline_dir is None:
            return []
        base_samples = np.load(self.baseline_dir / base.artifacts["latency_ns"], allow_pickle=False)
        found = []
        for check in self.checks:
            outcome = check.check(base_samples, samples)
            result.latency.setdefault("regression", []).append(outcome.to_dict())
            if outcome.regressed:
                found.append(outcome.message())
        return found


def _confine_artifacts(cells, folder: Path, where: Path) -> None:
    """A baseline's sample files lie inside its own run folder: a record is data, and must not make the harness
    read whatever file it names."""
    root = folder.resolve()
    for cell in cells:
        relative = cell.artifacts.get("latency_ns") if isinstance(cell.artifacts, dict) else None
        if relative is None:
            continue
        if not isinstance(relative, str) or not (root / relative).resolve().is_relative_to(root):
            raise BaselineError(f"baseline {where}: cell {cell.key!r} names latency samples {relative!r} outside "
                                f"its run folder", hint="pass an unedited run record")


def noise_floor(runs: list[list[R.CellResult]]) -> dict[str, Any]:
    """Run-to-run spread per profile: are outputs bitwise identical, and how much does p50 move?"""
    per_profile: dict[str, dict[str, Any]] = {}
    by_key: dict[str, list[R.CellResult]] = {}
    for run in runs:
        for cell in run:
            by_key.setdefault(cell.key, []).append(cell)
    for key, cells in by_key.items():
        entry = per_profile.setdefault(cells[0].profile, {"cells": 0, "bitwise_identical": 0, "p50_spread_pct": []})
        digests = {c.model.get("output_digest") for c in cells}
        entry["cells"] += 1
        entry["bitwise_identical"] += int(len(digests) == 1 and None not in digests)
        p50s = [c.latency["stats"]["p50"] for c in cells if c.latency.get("stats")]
        if len(p50s) > 1 and min(p50s) > 0:
            entry["p50_spread_pct"].append(round(100 * (max(p50s) / min(p50s) - 1), 2))
    for entry in per_profile.values():
        spreads = entry.pop("p50_spread_pct")
        entry["p50_spread_pct_median"] = round(statistics.median(spreads), 2) if spreads else None
        entry["p50_spread_pct_max"] = max(spreads) if spreads else None
    return per_profile


def run_repeats(executor, todo, availability, repeat: int, console=None) -> list[R.CellResult]:
    """Run the cells ``repeat`` times; the first run is the record, later ones only feed the noise floor.
    ``console``: a rich Console for the transient progress line (harness.run.progress: shown on a terminal
    only), or None for none."""
    from harness.run.progress import CellProgress
    runs = []
    with CellProgress(console) as progress:
        for attempt in range(repeat):
            progress.new_run(f"run {attempt + 1}/{repeat}", len(todo))
            # Later repeats keep their own artifacts (repeat-<n>/) and stay out of the journal: the record
            # is the first run; the others only measure the spread.
            saved_journal, saved_dir = executor.journal, executor.options.out_dir
            if attempt:
                executor.journal, executor.options.out_dir = None, saved_dir / f"repeat-{attempt}"
            try:
                runs.append(executor.run(todo, availability, progress.done, on_start=progress.started))
            finally:
                executor.journal, executor.options.out_dir = saved_journal, saved_dir
    if repeat > 1:
        executor.noise = noise_floor(runs)
    return runs[0]
