"""The campaign's report, built from its journal alone: findings per op and profile, throughput, coverage.

fuzz-report.json is versioned like the run record (``schema``, ``schema_version``); ``lines`` renders the same data
for the terminal. Everything is counted from journal lines, so a resumed campaign reports all its sessions.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_bytes
from harness.fuzzing.journal import CAMPAIGN_NAME, JOURNAL_NAME, Journal

REPORT_NAME = "fuzz-report.json"
REPORT_SCHEMA = "onnx-harness/fuzz-report"
REPORT_VERSION = 1
_MAX_VALUES = 40  # attribute values listed per op and attribute in the coverage


def build_report(folder: Path) -> dict[str, Any]:
    header = json.loads((folder / CAMPAIGN_NAME).read_text(encoding="utf-8"))
    lines = Journal(folder / JOURNAL_NAME).read()
    graphs = [line for line in lines if line.get("type") == "graph"]
    findings = [line for line in lines if line.get("type") == "finding"]
    elapsed = sum(line.get("elapsed_s", 0.0) for line in lines if line.get("type") == "session")
    compared = [g for g in graphs if g.get("status") == "compared"]
    status = Counter(g.get("status") for g in graphs)
    occurrences = Counter(key for g in compared for key in g.get("findings", []))
    return {
        "schema": REPORT_SCHEMA, "schema_version": REPORT_VERSION,
        "campaign": {k: header[k] for k in ("seed", "profiles", "reference", "generator")},
        "sessions": sum(1 for line in lines if line.get("type") == "session"),
        "elapsed_s": round(elapsed, 1),
        "graphs": {"generated": len(graphs), **{str(k): v for k, v in sorted(status.items())}},
        "throughput": {"graphs_per_minute": _rate(len(graphs), elapsed),
                       "compared_per_minute": _rate(len(compared), elapsed)},
        "verdicts": _verdicts(compared),
        "disagreements": _disagreement_counts(compared),
        "findings": [_finding_entry(f, occurrences) for f in findings],
        "findings_by_op": _by_op(findings, occurrences),
        "not_run": _not_run(compared),
        "coverage": _coverage(compared),
        "rejected_reasons": dict(Counter(g.get("reason", "")[:120] for g in graphs
                                         if g.get("status") in ("rejected", "generator_bug", "unusable")).most_common(10)),
    }


def _rate(count: int, seconds: float) -> float:
    return round(count / (seconds / 60.0), 1) if seconds > 0 else 0.0


def _verdicts(graphs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    per: dict[str, Counter] = defaultdict(Counter)
    for graph in graphs:
        for profile, verdict in graph.get("verdicts", {}).items():
            per[profile][verdict] += 1
    return {p: dict(sorted(c.items())) for p, c in sorted(per.items())}


def _disagreement_counts(graphs: list[dict[str, Any]]) -> dict[str, int]:
    counted: Counter = Counter()
    for graph in graphs:
        for d in graph.get("disagreements", []):
            pair = f"{d['profile']}~{d['other']}" if d.get("other") else d["profile"]
            counted[f"{pair} ({d['kind']}{', explained' if d.get('explained_by') else ''})"] += 1
    return dict(sorted(counted.items()))


def _finding_entry(finding: dict[str, Any], occurrences: Counter) -> dict[str, Any]:
    keep = ("key", "kind", "profile", "other", "op", "attributes", "dtype", "graph", "path", "localized", "shrink",
            "reproduces", "shape_conflicts", "assessment", "reasons")
    return {**{k: finding.get(k) for k in keep}, "occurrences": occurrences.get(finding["key"], 0)}


def _by_op(findings: list[dict[str, Any]], occurrences: Counter) -> dict[str, dict[str, dict[str, int]]]:
    """op -> profile -> {"findings": distinct keys, "occurrences": graphs}."""
    table: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: {"findings": 0,
                                                                                            "occurrences": 0}))
    for f in findings:
        cell = table[f["op"]][f["profile"]]
        cell["findings"] += 1
        cell["occurrences"] += occurrences.get(f["key"], 0)
    return {op: dict(per) for op, per in sorted(table.items())}


def _not_run(graphs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Cells that did not run (UNSUPPORTED: no kernel for an op and dtype, a transform that failed): not
    findings, but what the campaign could not test, with the commonest reasons."""
    per: dict[str, Counter] = defaultdict(Counter)
    for graph in graphs:
        for profile, detail in graph.get("details", {}).items():
            per[profile][f"{graph['verdicts'].get(profile)}: {_reason(detail, graph.get('dtype', '?'))}"] += 1
    return {p: {"cells": sum(c.values()), "reasons": dict(c.most_common(8))} for p, c in sorted(per.items())}


_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\)")


def _reason(detail: str, dtype: str) -> str:
    """A reason that groups: onnxruntime's missing kernel as 'no kernel for Op(opset) in a <dtype> graph', counts
    in other messages replaced by N."""
    missing = _NO_KERNEL.search(detail)
    if missing:
        return f"no kernel for {missing.group(1)}({missing.group(2)}) in a {dtype} graph"
    return re.sub(r"\b\d+\b", "N", detail)[:120]


def _coverage(graphs: list[dict[str, Any]]) -> dict[str, Any]:
    ops: Counter = Counter()
    dtypes: Counter = Counter()
    attributes: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for graph in graphs:
        ops.update(graph.get("ops", []))
        dtypes[graph.get("dtype", "?")] += 1
        for op, attrs in graph.get("coverage", {}).items():
            for name, values in attrs.items():
                attributes[op][name].update(values)
    return {"ops": dict(sorted(ops.items())), "graph_dtypes": dict(sorted(dtypes.items())),
            "attributes": {op: {name: sorted(values)[:_MAX_VALUES] for name, values in sorted(attrs.items())}
                           for op, attrs in sorted(attributes.items())}}


def write_json(path: Path, report: dict[str, Any]) -> Path:
    atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode("utf-8"))
    return path


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    return write_json(folder / REPORT_NAME, report)


def lines(report: dict[str, Any]) -> list[str]:
    """The report for the terminal: throughput, verdicts, findings (one line each), coverage in one line."""
    g, t = report["graphs"], report["throughput"]
    out = [f"{g['generated']} graphs in {report['elapsed_s']:.0f}s ({t['graphs_per_minute']}/min generated, "
           f"{t['compared_per_minute']}/min compared): " + ", ".join(f"{k} {v}" for k, v in g.items() if k != "generated")]
    for profile, verdicts in report["verdicts"].items():
        out.append(f"  {profile}: " + ", ".join(f"{v} {n}" for v, n in verdicts.items()))
    out.append(f"{len(report['findings'])} finding(s):")
    for f in report["findings"]:
        repro = f.get("reproduces") or {}
        out.append(f"  {f['key']}  x{f['occurrences']}  {f['shrink'].get('nodes_before')}->"
                   f"{f['shrink'].get('nodes_after')} nodes  {f['path']}  reproduces: {repro.get('verdict')}  "
                   f"{f['assessment']}")
    cov = report["coverage"]
    out.append(f"coverage: {len(cov['ops'])} ops, dtypes {cov['graph_dtypes']}, "
               f"{sum(len(v) for a in cov['attributes'].values() for v in a.values())} attribute values")
    return out


__all__ = ["REPORT_NAME", "REPORT_SCHEMA", "REPORT_VERSION", "build_report", "lines", "write_json", "write_report"]
