"""A differential fuzzing campaign: generate graphs, run them on every profile, turn disagreements into findings.

    from harness.fuzzing import CampaignOptions, run_campaign
    report = run_campaign(CampaignOptions(profiles=["cpu", "cpu-fp16"], budget_s=600, seed=7, out=Path("fuzz")))

Per batch of graphs (``batch``): each graph is a case folder (model.onnx and its inputs, no goldens) under
``graphs/``; ``harness.api.run_matrix`` runs the batch on the reference profile first (its outputs are the
comparison, as for any case without goldens) and then on every profile, with the same workers for the whole batch
and numerics only. A cell that crashes or hangs is that cell's verdict (CRASH, TIMEOUT), never the campaign's end.
Then every profile is compared with the reference (the run's own verdict) and with every other profile
(``judge.judge_pair``, from the outputs the run saved). A pairwise disagreement that one side's disagreement with
the reference already explains is recorded as explained and not pursued.

Each disagreement left is localised (``locate``: the first node beyond the scope rule), checked against the
findings so far by its key (``findings.finding_key``; a duplicate is counted and dropped before any shrinking),
shrunk (``shrink``), saved as a case folder under ``findings/`` with the reference's outputs as goldens, and
checked: ``run_matrix`` on the saved folder and the profile must give the failing verdict again.

The campaign folder holds ``campaign.json`` (seed, profiles, generator settings), ``journal.jsonl`` (a line per
graph, per finding and per session, appended as they happen) and ``fuzz-report.json``; ``resume`` continues it
from the journal with the graph after the last one journalled (graph i of a seed is always the same graph).

The budget is checked between batches: a batch that started is finished, its disagreements pursued (each shrink
stops reducing after ``shrink_s``), so a campaign overruns its budget by at most one batch and its findings.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import api
from harness.errors import HarnessError, UsageError
from harness.fuzzing.findings import (
    Finding,
    attribute_signature,
    finding_key,
    node_dtype,
    slug,
    write_finding,
)
from harness.fuzzing.generate import (
    Generated,
    GeneratorBug,
    GeneratorConfig,
    Rejected,
    generate,
    graph_name,
)
from harness.fuzzing.journal import CAMPAIGN_NAME, JOURNAL_NAME, Journal
from harness.fuzzing.judge import FAILURE_KINDS, KIND_MISMATCH, Disagreement, judge_pair
from harness.fuzzing.locate import first_divergence
from harness.fuzzing.report import build_report, write_report
from harness.fuzzing.shrink import shrink, value_types
from harness.fuzzing.sides import Runner, write_case
from harness.golden.cases import Case, load_case
from harness.profiles.schema import Profile
from harness.run import record as R

CAMPAIGN_SCHEMA = "onnx-harness/fuzz-campaign"
RAN = (R.PASS, R.PASS_FELL_BACK, R.FAIL, R.XFAIL, R.XPASS)  # cells whose outputs exist
NOT_RUN = (R.UNSUPPORTED, R.TRANSFORM_FAILED, R.NOT_APPLICABLE, R.SKIPPED, R.NO_GOLDEN)


@dataclass
class CampaignOptions:
    profiles: list[str]
    reference: str = "reference"
    budget_s: float = 600.0
    seed: int = 0
    out: Path = Path("results/fuzz")
    batch: int = 12
    timeout_s: float = 60.0  # per cell and per shrinking run: a hang becomes a TIMEOUT finding
    jobs: int = 0  # cells at a time in run_matrix (0: every core, numerics only)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    resume: bool = False
    max_graphs: int | None = None  # stop after this many graphs in this session (tests and benches)
    shrink_s: float = 60.0  # shrinking one finding stops reducing after this long
    keep_graphs: bool = False  # keep every graph's case folder and saved outputs (default: only where they disagreed)
    matrix: api.MatrixOptions = field(default_factory=api.MatrixOptions)  # profile folders, built-ins
    say: Callable[[str], None] = lambda line: None  # one progress line per batch and per finding

    def header(self) -> dict[str, Any]:
        return {"schema": CAMPAIGN_SCHEMA, "schema_version": 1, "seed": self.seed, "profiles": list(self.profiles),
                "reference": self.reference, "batch": self.batch, "timeout_s": self.timeout_s,
                "generator": {"opset": self.generator.opset, "ops": self.generator.op_names(),
                              "max_nodes": self.generator.max_nodes, "input_tries": self.generator.input_tries}}


def _check(options: CampaignOptions) -> None:
    if not options.profiles:
        raise UsageError("harness fuzz needs at least one --profile", hint="e.g. --profile cpu --profile cpu-fp16")
    if options.reference in options.profiles:
        raise UsageError(f"--profile {options.reference} is the reference already",
                         hint="drop it from --profile; every profile is compared with the reference")
    if not (options.budget_s > 0) or options.batch < 1:
        raise UsageError(f"--budget {options.budget_s}s / batch {options.batch}: both must be above 0")


def _open(options: CampaignOptions) -> tuple[CampaignOptions, Journal]:
    """The campaign folder: a new one (refused when it holds a campaign, unless resuming), or the one resumed,
    whose settings win over the options (a resumed campaign draws the graphs the original would have)."""
    folder = options.out
    header_path = folder / CAMPAIGN_NAME
    if options.resume:
        options = _resumed(options, header_path)
        _check(options)
        return options, Journal(folder / JOURNAL_NAME)
    _check(options)
    if header_path.exists():
        raise UsageError(f"--out {folder} holds a campaign already",
                         hint="continue it with --resume, or pass another --out folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        header_path.write_text(json.dumps(options.header(), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--out {folder}: cannot write there ({exc.strerror or exc})",
                         hint="pass a writable folder") from None
    return options, Journal(folder / JOURNAL_NAME)


def _resumed(options: CampaignOptions, header_path: Path) -> CampaignOptions:
    if not header_path.is_file():
        raise UsageError(f"--resume {header_path.parent}: no {CAMPAIGN_NAME} there", hint="pass a campaign folder")
    try:
        saved = json.loads(header_path.read_text(encoding="utf-8"))
        made = saved["generator"]
        generator = replace(options.generator, opset=int(made["opset"]), ops=tuple(made["ops"]),
                            max_nodes=int(made["max_nodes"]), input_tries=int(made["input_tries"]))
        return replace(options, seed=int(saved["seed"]), profiles=[str(p) for p in saved["profiles"]],
                       reference=str(saved["reference"]), batch=int(saved["batch"]),
                       timeout_s=float(saved["timeout_s"]), generator=generator)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"--resume {header_path}: not a campaign header ({type(exc).__name__}: {exc})",
                         hint="restore it, or start a new campaign folder") from None


class Campaign:
    def __init__(self, options: CampaignOptions) -> None:
        self.options, self.journal = _open(options)
        self.folder = self.options.out
        self.profiles = {p.name: p for p in api.load_profiles([*self.options.profiles, self.options.reference],
                                                               self.options.matrix)}
        past = self.journal.read()
        self.next_index = 1 + max((line["index"] for line in past if line.get("type") == "graph"), default=-1)
        # Keys of the findings so far, and of the original graphs' diverging nodes that shrank into them (an
        # alias): a later graph whose localised node matches either is a duplicate, found before any shrinking.
        self.aliases = {line["key"]: line["finding"] for line in past if line.get("type") == "alias"}
        self.keys = {line["key"] for line in past if line.get("type") == "finding"}
        self.started = time.monotonic()
        self.deadline = self.started + self.options.budget_s
        self.graphs_this_session = 0
        self.runner = Runner(self.options.timeout_s)

    # --- the loop
    def run(self) -> None:
        self.options.say(f"fuzz: seed {self.options.seed}, profiles {', '.join(self.options.profiles)} against "
                         f"{self.options.reference}, budget {self.options.budget_s:.0f}s, campaign {self.folder}")
        try:
            while self._time_left() and not self._enough():
                self.batch()
        finally:
            self.runner.close()
            self.journal.append([{"type": "session", "elapsed_s": round(time.monotonic() - self.started, 3),
                                  "graphs": self.graphs_this_session, "ended": R.now_iso()}])

    def _time_left(self) -> bool:
        return time.monotonic() < self.deadline

    def _enough(self) -> bool:
        return self.options.max_graphs is not None and self.graphs_this_session >= self.options.max_graphs

    def batch(self) -> None:
        count = self.options.batch
        if self.options.max_graphs is not None:
            count = min(count, self.options.max_graphs - self.graphs_this_session)
        indices = list(range(self.next_index, self.next_index + count))
        self.next_index += count
        self.graphs_this_session += count
        lines, graphs = [], []
        for index in indices:
            made = self._generate(index)
            if isinstance(made, Generated):
                graphs.append(made)
            else:
                lines.append(made)
        if graphs:
            lines += self._compare(graphs)
        self.journal.append(lines)
        compared = sum(1 for line in lines if line.get("status") == "compared")
        self.options.say(f"fuzz: graphs {indices[0]}..{indices[-1]}: {compared} compared, "
                         f"{sum(len(line.get('findings', [])) for line in lines)} disagreement(s), "
                         f"{len(self.keys)} finding(s) so far")

    def _generate(self, index: int) -> Generated | dict[str, Any]:
        try:
            return generate(self.options.seed, index, self.options.generator)
        except Rejected as why:
            return {"type": "graph", "index": index, "name": graph_name(self.options.seed, index),
                    "status": "rejected", "reason": str(why)}
        except GeneratorBug as bug:  # reported, never the campaign's end: the next graph is another draw
            return {"type": "graph", "index": index, "name": graph_name(self.options.seed, index),
                    "status": "generator_bug", "reason": bug.message}

    # --- one batch through run_matrix
    def _compare(self, graphs: list[Generated]) -> list[dict[str, Any]]:
        cases = [load_case(write_case(self.folder / "graphs" / g.name, g.model, g.inputs), g.name) for g in graphs]
        record = api.run_matrix(cases, self._profile_list(), self._matrix_options())
        run_dir = record.location.parent if record.location else self.folder / "runs" / record.run_id
        cells = {(c.case, c.profile): c for c in record.cells}
        lines = []
        for graph, case in zip(graphs, cases):
            line = self._graph_line(graph, case, cells, run_dir)
            lines.append(line)
            if not line["disagreements"] and not self.options.keep_graphs:
                shutil.rmtree(case.path, ignore_errors=True)
        if not any(line["disagreements"] for line in lines) and not self.options.keep_graphs:
            shutil.rmtree(run_dir / "cells", ignore_errors=True)  # every output agreed: 3 MB a batch, kept nowhere
        return lines

    def _profile_list(self, names: list[str] | None = None) -> list[Profile]:
        """The campaign's profiles as loaded when it started: passed as objects, so that run_matrix does not read
        the profile folders again each batch (a profile file edited meanwhile cannot change or end a campaign)."""
        return [self.profiles[n] for n in names or [*self.options.profiles, self.options.reference]]

    def _matrix_options(self) -> api.MatrixOptions:
        return replace(self.options.matrix, out=self.folder / "runs", numerics_only=True,
                       reference=self.options.reference, save_outputs="all", timeout_s=self.options.timeout_s,
                       jobs=self.options.jobs, named_profiles=list(self.options.profiles), console=None,
                       source={"source": "fuzz", "seed": self.options.seed}, resume=None)

    def _graph_line(self, graph: Generated, case: Case, cells: dict[tuple[str, str], R.CellResult],
                    run_dir: Path) -> dict[str, Any]:
        verdicts = {p: cells[(graph.name, p)].verdict for p in (*self.options.profiles, self.options.reference)
                    if (graph.name, p) in cells}
        line = {"type": "graph", "index": graph.index, "name": graph.name, "status": "compared",
                "dtype": graph.dtype, "ops": graph.ops, "coverage": graph.coverage, "input_tries": graph.input_tries,
                "verdicts": verdicts, "details": {p: cells[(graph.name, p)].detail[:300] for p in verdicts
                                                  if verdicts[p] not in RAN},
                "disagreements": [], "findings": []}
        if verdicts.get(self.options.reference) not in RAN:
            line["status"] = "unusable"
            line["reason"] = f"the reference gave {verdicts.get(self.options.reference)}"
            return line
        found = self._disagreements(graph, case, cells, run_dir)
        line["disagreements"] = [d.to_dict() for d in found]
        for disagreement in found:
            if disagreement.explained_by:
                continue
            try:
                line["findings"].append(self._pursue(graph, case, disagreement))
            except HarnessError as exc:  # a finding that could not be pursued is said, never the campaign's end
                line.setdefault("pursuit_errors", []).append(f"{disagreement.pair}: {exc.one_line()[:300]}")
        return line

    def _disagreements(self, graph: Generated, case: Case, cells: dict[tuple[str, str], R.CellResult],
                       run_dir: Path) -> list[Disagreement]:
        found: list[Disagreement] = []
        outputs: dict[str, dict[str, Any]] = {}
        for name in self.options.profiles:
            cell = cells.get((graph.name, name))
            if cell is None:
                continue
            if cell.verdict == R.FAIL:
                failed = [o for o in cell.outputs if not o.get("comparison", {}).get("passed", True)]
                found.append(Disagreement(name, self.options.reference, KIND_MISMATCH,
                                          [o["comparison"]["name"] for o in failed],
                                          [(o["comparison"].get("reasons") or [""])[0] for o in failed]))
            elif cell.verdict in FAILURE_KINDS:
                found.append(Disagreement(name, "", cell.verdict, [], [cell.detail[:300]]))
            if cell.verdict in RAN:
                outputs[name] = R.read_saved_outputs(run_dir, cell).get(0, {})
        failing = {d.profile for d in found}
        ran = [p for p in self.options.profiles if outputs.get(p)]
        for i, first in enumerate(ran):
            for second in ran[i + 1:]:
                pair = judge_pair(case, self.profiles[first], self.profiles[second], graph.inputs, outputs[first],
                                  outputs[second], self.options.reference)
                if pair is not None:
                    explained = [p for p in (first, second) if p in failing]
                    pair.explained_by = f"{explained[0]}~{self.options.reference}" if explained else ""
                    found.append(pair)
        return found

    # --- a disagreement into a finding
    def _pursue(self, graph: Generated, case: Case, d: Disagreement) -> str:
        """Localise, de-duplicate, shrink, save and check one disagreement; returns the finding's key."""
        profile = self.profiles[d.profile]
        other = self.profiles[d.other or self.options.reference]
        located = first_divergence(self.runner, case, graph.model, profile, other) if d.kind == KIND_MISMATCH else None
        types = value_types(graph.model)
        early = ""
        if located is not None:
            node = graph.model.graph.node[located.index]
            early = finding_key(node.op_type, attribute_signature(node), node_dtype(node, types), d.pair)
            if early in self.keys or early in self.aliases:
                return self.aliases.get(early, early)
        elif d.kind != KIND_MISMATCH and (known := self._known_failure(graph, d, types)):
            return known
        test = self._test(case, d, profile, other)
        shrunk = shrink(graph.model, graph.inputs, test)
        node = self._blamed(shrunk.model, located)
        small_types = value_types(shrunk.model)
        key = finding_key(node.op_type, attribute_signature(node), node_dtype(node, small_types), d.pair)
        alias = [{"type": "alias", "key": early, "finding": key}] if early and early != key else []
        if alias:
            self.aliases[early] = key
        if key in self.keys:
            self.journal.append(alias)
            return key
        finding = Finding(key, d.kind, d.profile, d.other, node.op_type, attribute_signature(node),
                          node_dtype(node, small_types), graph.name, reasons=d.reasons,
                          localized=located.to_dict() if located else None,
                          shrink={"nodes_before": shrunk.nodes_before, "nodes_after": shrunk.nodes_after,
                                  "attributes_dropped": shrunk.attributes_dropped, "tests": shrunk.tests})
        self._save(finding, shrunk.model, shrunk.feed)
        self.keys.add(key)
        self.journal.append([{"type": "finding", **finding.to_dict()}] + alias)
        self.options.say(f"fuzz: finding {key}: {shrunk.nodes_before} -> {shrunk.nodes_after} node(s), "
                         f"{finding.path}, reproduces: {finding.reproduces.get('verdict')}")
        return key

    def _known_failure(self, graph: Generated, d: Disagreement, types: dict[str, Any]) -> str:
        """A failure (crash, hang) has no diverging node to key it before shrinking: when the graph holds a node
        with the key of a failure already found on this profile, it is counted as that one, unshrunk."""
        for node in graph.model.graph.node:
            key = finding_key(node.op_type, attribute_signature(node), node_dtype(node, types), d.pair)
            if key in self.keys:
                return key
        return ""

    def _test(self, case: Case, d: Disagreement, profile: Profile, other: Profile
              ) -> Callable[[Any, dict[str, np.ndarray]], bool]:
        """Does the disagreement persist on a candidate graph? A mismatch: both sides run and still disagree by
        the same rule; a failure: the profile still fails where the reference runs. Stops reducing (False) once
        ``shrink_s`` is spent."""
        stop = time.monotonic() + self.options.shrink_s

        def still_fails(model: Any, feed: dict[str, np.ndarray]) -> bool:
            if time.monotonic() > stop:
                return False
            mine = self.runner.run_model(model, feed, profile)
            if d.kind != KIND_MISMATCH:
                return not mine.ok and self.runner.run_model(model, feed, other).ok
            theirs = self.runner.run_model(model, feed, other)
            if not (mine.ok and theirs.ok):
                return False
            return judge_pair(case, profile, other, feed, mine.outputs, theirs.outputs,
                              self.options.reference) is not None
        return still_fails

    @staticmethod
    def _blamed(model: Any, located: Any) -> Any:
        """The node the finding is about: the localised one where the shrunk graph kept it, else its last node
        (the shrunk graph's disagreement ends there)."""
        nodes = list(model.graph.node)
        if located is not None:
            for node in nodes:
                if node.name == located.node:
                    return node
        return nodes[-1]

    def _save(self, finding: Finding, model: Any, feed: dict[str, np.ndarray]) -> None:
        """The repro: the shrunk graph, its inputs and the reference's outputs as goldens; then checked."""
        folder = self.folder / "findings" / slug(finding)
        reference = self.runner.run_model(model, feed, self.profiles[self.options.reference])
        goldens = {o.name: reference.outputs[o.name] for o in model.graph.output if o.name in reference.outputs}
        finding.shape_conflicts = shape_conflicts(model, goldens)
        if finding.shape_conflicts:  # goldens of another shape than declared would be refused as bad goldens
            model = _symbolic_outputs(model, [c.split(":")[0] for c in finding.shape_conflicts])
        write_case(folder, model, feed, goldens if len(goldens) == len(model.graph.output) else None)
        finding.path = str(folder.relative_to(self.folder))
        finding.reproduces = self._reproduce(folder, finding.profile)
        finding.assessment = assess(finding, self.profiles)
        write_finding(folder, finding)

    def _reproduce(self, folder: Path, profile: str) -> dict[str, Any]:
        """``harness run <folder> --profile P``, as the library runs it: the verdict and its one line."""
        options = replace(self._matrix_options(), save_outputs="none", named_profiles=[profile],
                          source={"source": "fuzz-finding"})
        command = f"harness run {folder} --profile {profile}"
        try:
            record = api.run_matrix([load_case(folder, folder.name)], self._profile_list([profile]), options)
        except HarnessError as exc:  # the repro is refused as a case: said in the finding, the campaign goes on
            return {"command": command, "verdict": "REFUSED", "detail": exc.one_line()[:300], "failing": False}
        cell = next((c for c in record.cells if c.profile == profile), None)
        verdict = cell.verdict if cell else "?"
        return {"command": command, "verdict": verdict, "detail": cell.detail[:300] if cell else "",
                "failing": verdict in R.FAILING}

    def close(self) -> None:
        self.runner.close()


def _symbolic_outputs(model: Any, names: list[str]) -> Any:
    """A copy of ``model`` whose outputs ``names`` declare symbolic dims, so that goldens of the reference's
    (contradicting) shape are a valid case and the run reports the shape mismatch as the failure it is."""
    copy = type(model)()
    copy.CopyFrom(model)
    for output in copy.graph.output:
        if output.name in names:
            for axis, dim in enumerate(output.type.tensor_type.shape.dim):
                dim.dim_param = f"{output.name}_d{axis}"
    return copy


def shape_conflicts(model: Any, goldens: dict[str, Any]) -> list[str]:
    """Outputs whose reference value has another shape than onnx's shape inference gives the graph: then the
    reference, not the device, contradicts the specification."""
    declared = {o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in model.graph.output}
    return [f"{name}: reference {tuple(np.shape(value))}, onnx shape inference {declared[name]}"
            for name, value in goldens.items() if name in declared and tuple(np.shape(value)) != declared[name]]


def assess(finding: Finding, profiles: dict[str, Profile]) -> str:
    """A first reading, for the person who triages: a reference whose output shape contradicts onnx's shape
    inference is the reference's bug; a mismatch on a profile that runs a reduced-precision copy of the model is
    expected within its documented precision; anything else is an EP difference to look at."""
    profile = profiles.get(finding.profile)
    if finding.shape_conflicts:
        return f"reference bug: {finding.shape_conflicts[0]}; the device follows the specification"
    if finding.kind != KIND_MISMATCH:
        return f"EP failure ({finding.kind}): the profile fails where the reference runs; report it"
    if profile is not None and profile.transform != "none":
        why = profile.tolerance.why.split(".")[0].strip() if profile.tolerance.why else ""
        return (f"expected: {finding.profile} runs a {profile.transform} copy of the model"
                + (f" ({why})" if why else ""))
    return f"EP difference: {finding.profile} and {finding.other} disagree beyond tolerance on {finding.op}; investigate"


def run_campaign(options: CampaignOptions) -> dict[str, Any]:
    """Run (or resume) a campaign until its budget is spent; returns the report, also written as fuzz-report.json."""
    campaign = Campaign(options)
    try:
        campaign.run()
    finally:  # a campaign stopped by an error or Ctrl-C still reports what its journal holds
        report = build_report(campaign.folder)
        write_report(campaign.folder, report)
    return report


__all__ = ["Campaign", "CampaignOptions", "assess", "run_campaign"]
