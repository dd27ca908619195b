"""The localisation itself: find the first intermediate beyond its tolerance, rank the nodes, check that exposing
outputs did not change the answer, cut a repro and, when optimisations are to blame, name the pass.

    from harness.localize import LocalizeOptions, localize
    found = localize("cnn", "cpu-fp16", LocalizeOptions(rtol=1e-4, atol=1e-5))
    found.first.node, found.suspects[0].ep, found.repro.path

Steps, each bounded in memory by one batch (``cap_mb`` of exposed tensors per side):
1. plain run of both sides on each data set until one fails (none fails: the case passes, nothing to localise);
2. the original graph in topological order, the intermediates both sides still have, cut into batches by size;
3. per batch: expose, run both sides, judge every tensor by the scope rule (scope.py), check that the graph
   outputs' error did not move (exposing an output can break a fusion), drop the values;
4. if exposing moved the result: bisect on extracted prefix subgraphs (the original outputs only, no exposure);
5. rank by amplification, cut the repro on the first diverging node, blame a pass when noopt removes it.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.utils

from harness.api import MatrixOptions, load_profiles
from harness.compare.comparator import compare_value
from harness.compare.tolerances import ToleranceOverride, resolve_tolerance
from harness.errors import UsageError
from harness.golden.cases import Case, discover
from harness.golden.manifest import CaseManifest
from harness.localize import expose as X
from harness.localize.passes import PassBlame, blame
from harness.localize.rank import Suspect, rank
from harness.localize.repro import Repro, cut
from harness.localize.scope import DEFAULT_GROWTH, RULE, TensorError, base_of, judge
from harness.localize.sides import Side, SideFailed, as_array, saved
from harness.profiles.schema import Profile
from harness.run.executor import probe
from harness.run.plan import CasePlan, plan_case
from harness.run.pool import WorkerPool
from harness.run.verdict import tolerance_layers

MOVED_FACTOR = 4.0  # exposing outputs "moved" the result when an output's error changes by more than this


@dataclass
class LocalizeOptions:
    against: str = "cpu"  # the reference profile; "reference" is the fp64 onnx.reference evaluator
    cap_mb: float = 64.0  # exposed bytes per side and batch
    growth: float = DEFAULT_GROWTH
    rtol: float | None = None  # with atol: replaces the profile's tolerance, for the outputs and the scope rule
    atol: float | None = None
    out: Path | None = None  # the repro folder (default results/localize/<case>__<profile>)
    bisect: bool = False  # binary search for the first diverging batch instead of comparing every batch
    repro: bool = True
    blame_passes: bool = True
    dims: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    timeout_s: float | None = None
    in_process: bool = False
    matrix: MatrixOptions = field(default_factory=MatrixOptions)  # root and profile folders
    edit_profile_model: Callable[[onnx.ModelProto], None] | None = None  # test-only: perturb the profile side


@dataclass
class Localization:
    case: str
    profile: str
    against: str
    status: str  # "passes", "localized", "outputs only" (no intermediate beyond its tolerance)
    dataset: int | None = None
    rule: str = RULE
    base: float = 0.0
    growth: float = DEFAULT_GROWTH
    outputs: list[dict[str, Any]] = field(default_factory=list)  # the failing graph outputs, plain run
    first: dict[str, Any] | None = None  # the first tensor beyond its tolerance, with its node
    suspects: list[Suspect] = field(default_factory=list)
    tensors: list[TensorError] = field(default_factory=list)
    batches: int = 0
    cap_bytes: int = 0
    largest_batch_bytes: int = 0
    skipped: int = 0  # intermediates a transform renamed away (not on both sides)
    worker_peak_bytes: int = 0  # the largest peak RSS a worker reported for one of this localisation's runs
    exposure: dict[str, Any] | None = None  # set when exposing outputs moved a graph output's error
    fallback: dict[str, Any] | None = None
    repro: Repro | None = None
    pass_blame: PassBlame | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("suspects", "tensors", "repro", "pass_blame")}
        data["suspects"] = [s.to_dict() for s in self.suspects]
        data["tensors"] = [t.to_dict() for t in self.tensors]
        data["repro"] = self.repro.to_dict() if self.repro else None
        data["pass_blame"] = self.pass_blame.to_dict() if self.pass_blame else None
        return {"schema": "onnx-harness/localization", "schema_version": 1, **data}


def _override(options: LocalizeOptions) -> ToleranceOverride | None:
    if options.rtol is None and options.atol is None:
        return None
    if options.rtol is None or options.atol is None:
        raise UsageError("--rtol and --atol are given together or not at all", hint="e.g. --rtol 1e-4 --atol 1e-5")
    return ToleranceOverride.from_mapping({"rtol": options.rtol, "atol": options.atol, "elementwise": True},
                                          "--rtol/--atol")


class _Search:
    """One localisation's state: the two sides, the graph, what has been compared."""

    def __init__(self, plan: CasePlan, profile: Profile, reference: Profile, pool: WorkerPool,
                 options: LocalizeOptions) -> None:
        self.plan, self.profile, self.reference, self.pool, self.options = plan, profile, reference, pool, options
        self.override = _override(options)
        self.result = Localization(plan.case.name, profile.name, reference.name, "passes", growth=options.growth)

    # --- tolerances
    def tolerance(self, name: str, golden_dtype: np.dtype, actual_dtype: np.dtype):
        layers = tolerance_layers(self.plan.case, self.profile, name, golden_dtype)
        return resolve_tolerance(golden_dtype, actual_dtype, [*layers, self.override])

    def failing_outputs(self, ref: dict[str, Any], act: dict[str, Any]) -> list[dict[str, Any]]:
        failed = []
        for name in self.plan.info.output_names:
            if name not in ref:
                continue
            got = act.get(name)
            cmp = compare_value(name, ref[name], got if got is not None else np.zeros((0,)),
                                lambda g, a, n=name: self.tolerance(n, g, a), against=self.reference.name)
            if not cmp.passed:
                failed.append({"output": name, "reasons": cmp.reasons, "tolerance": cmp.tolerance.describe()})
        return failed

    # --- step 1: a failing data set
    def find_failing_dataset(self, ref_side: Side, act_side: Side) -> tuple[int, dict[str, Any]] | None:
        for ds in self.plan.datasets:
            ref_side.dataset = act_side.dataset = ds.index
            ref, act = ref_side.run([]).outputs, act_side.run([]).outputs
            failed = self.failing_outputs(ref, act)
            if failed:
                self.result.outputs = failed
                return ds.index, self.output_errors(ref, act)
        return None

    def output_errors(self, ref: dict[str, Any], act: dict[str, Any]) -> dict[str, float]:
        errors = {}
        for name in self.plan.info.output_names:
            r, a = as_array(ref.get(name)), as_array(act.get(name))
            if r is not None and a is not None:
                errors[name] = judge(name, r, a, 0.0, 0.0, 0.0).error
        return errors

    def base(self, dtype: np.dtype) -> float:
        return base_of(self.tolerance("", dtype, dtype))


def localize(case: str | Path | Case, profile: str, options: LocalizeOptions | None = None) -> Localization:
    """Localise where ``profile`` parts ways with ``options.against`` on ``case``. Bad input (unknown case or
    profile, a reference that cannot run here) raises a HarnessError; a case that passes returns status "passes"."""
    options = options or LocalizeOptions()
    _override(options)
    if profile == options.against:
        raise UsageError(f"--profile {profile} and --against {options.against} are the same profile: nothing to compare",
                         hint="compare with another profile, e.g. --against cpu or --against reference")
    the_case = case if isinstance(case, Case) else _one_case(str(case), options.matrix.root)
    target, reference = load_profiles([profile, options.against], options.matrix)
    plan = plan_case(the_case, dims=options.dims, seed=options.seed)
    pool = _pool(options)
    try:
        _require_available(pool, target, reference)
        return _localize(plan, target, reference, pool, options)
    finally:
        pool.close()


def _one_case(selector: str, root: Path) -> Case:
    cases = discover([selector], root)
    if len(cases) != 1:
        raise UsageError(f"{selector!r} names {len(cases)} cases; localize takes one",
                         hint="name one case folder or case name")
    return cases[0]


def _pool(options: LocalizeOptions) -> WorkerPool:
    if options.in_process:
        from harness.run.runner import InProcessRunner
        return WorkerPool(InProcessRunner)
    return WorkerPool()


def _require_available(pool: WorkerPool, target: Profile, reference: Profile) -> None:
    for role, p in (("reference", reference), ("profile", target)):
        state = probe(p, pool)
        if not state.available:
            flag = "--against" if role == "reference" else "--profile"
            raise UsageError(f"{role} profile {p.name!r} cannot run here: {state.reason}",
                             hint=f"pick another with {flag} NAME ('harness profiles' lists what runs here)")


def _localize(plan: CasePlan, target: Profile, reference: Profile, pool: WorkerPool,
              options: LocalizeOptions) -> Localization:
    search = _Search(plan, target, reference, pool, options)
    ref_side = Side(reference, plan, plan.datasets[0].index, pool, timeout_s=options.timeout_s)
    act_side = Side(target, plan, plan.datasets[0].index, pool, timeout_s=options.timeout_s,
                    edit=options.edit_profile_model)
    found = search.find_failing_dataset(ref_side, act_side)
    result = search.result
    if found is None:
        result.notes.append(f"every output of every data set is within tolerance on {target.name} vs {reference.name}: "
                            f"nothing to localise")
        return result
    result.dataset, plain_errors = found
    view, sizes = _graph(plan, ref_side, result)
    names = X.candidates(view, [X.node_outputs(ref_side.model()), X.node_outputs(act_side.model())])
    result.skipped = sum(1 for n in view.nodes for t in n.output if t) - len(names) - len(view.graph_outputs)
    result.cap_bytes = int(options.cap_mb * (1 << 20))
    batches = _Batches(search, view, sizes, ref_side, act_side, plain_errors)
    schedule = X.batches(names, sizes, result.cap_bytes)
    (_bisect if options.bisect and len(schedule) > 2 else _scan)(batches, schedule)
    _conclude(search, view, batches.errors, batches.carried(), ref_side, act_side)
    result.worker_peak_bytes = max(ref_side.peak_worker_bytes, act_side.peak_worker_bytes)
    return result


def _graph(plan: CasePlan, ref_side: Side, result: Localization) -> tuple[X.GraphView, dict[str, int]]:
    """The original graph's structure (weights dropped) and the tensor sizes shape inference finds for the data
    set's input shapes; nested subgraphs are said not searched."""
    original = onnx.load(str(plan.case.model_path))
    X.strip_weights(original, keep_below=X.SHAPE_TENSOR_BYTES)  # before the copy shape inference makes
    feed_shapes = {k: tuple(v.shape) for k, v in ref_side.feed().items() if isinstance(v, np.ndarray)}
    sizes = X.estimate_sizes(original, feed_shapes)
    X.strip_weights(original)
    view = X.view_of(original)
    if view.nested:
        result.notes.append(f"{len(view.nested)} node(s) hold subgraphs ({', '.join(view.nested[:5])}): localised at "
                            f"the top level; the inside was not searched")
    return view, sizes


class _Batches:
    """Compares batches of intermediates on both sides and keeps what each tensor's judgement needs."""

    def __init__(self, search: _Search, view: X.GraphView, sizes: dict[str, int], ref_side: Side, act_side: Side,
                 plain_errors: dict[str, float]) -> None:
        self.search, self.view, self.sizes = search, view, sizes
        self.sides = (ref_side, act_side)
        self.plain_errors = plain_errors
        self.errors: dict[str, TensorError] = {}
        self.level: dict[str, float] = {}

    def compare(self, batch: list[str]) -> None:
        """Expose ``batch`` on both sides, judge each tensor, drop the values. A side that cannot run with these
        outputs exposed (onnxruntime has crashed on a fusion whose intermediate became a graph output): the batch is
        halved until the one tensor is found, and only it is skipped, with a note."""
        result = self.search.result
        result.batches += 1
        try:
            ref, act = (side.run(batch).outputs for side in self.sides)
        except SideFailed as exc:
            if len(batch) == 1:
                result.notes.append(f"exposing tensor {batch[0]!r} alone makes a side fail ({exc.message}); it was "
                                    f"not compared. That failure is itself worth reporting to the runtime's maintainers")
                return
            self.compare(batch[: len(batch) // 2])
            self.compare(batch[len(batch) // 2:])
            return
        result.largest_batch_bytes = max(result.largest_batch_bytes, sum(getattr(ref.get(t), "nbytes", 0) for t in batch))
        self.level.clear()  # carried errors are recomputed from what has been judged so far
        for name in batch:
            self._judge(name, as_array(ref.pop(name, None)), as_array(act.pop(name, None)))
        _check_exposure(self.search, result.batches - 1, len(batch), self.plain_errors,
                        self.search.output_errors(ref, act))

    def _judge(self, name: str, r: np.ndarray | None, a: np.ndarray | None) -> None:
        self.sizes[name] = r.nbytes if r is not None else self.sizes.get(name, 0)
        inputs = self.view.inputs_of(self.view.producer[name])
        carried = max((_level(self.view, t, self.errors, self.level) for t in inputs), default=0.0)
        if r is not None and a is not None:
            self.errors[name] = judge(name, r, a, carried, self.search.base(r.dtype), self.search.options.growth)

    def appeared(self, batch: list[str]) -> bool:
        """The divergence has appeared by this batch: a tensor in it is beyond its own rounding budget (``base``,
        without the allowance for inherited error), which, once a divergence starts, holds downstream too."""
        return any(self.errors[t].error > self.errors[t].allowed - self.search.options.growth * self.errors[t].carried
                   for t in batch if t in self.errors)

    def carried(self) -> dict[str, float]:
        self.level.clear()
        for name in self.view.graph_outputs:
            self.level.setdefault(name, self.plain_errors.get(name, 0.0))
        view = self.view
        return {t: _level(view, t, self.errors, self.level) for n in view.nodes for t in list(n.input) + list(n.output)
                if t}


def _scan(batches: _Batches, plan: list[list[str]]) -> None:
    """Every batch in order: every node judged, so the ranking covers the whole graph."""
    for batch in plan:
        batches.compare(batch)


def _bisect(batches: _Batches, plan: list[list[str]]) -> None:
    """Binary search for the first batch where the divergence has appeared (log2 of the batches' count runs,
    assuming a divergence persists downstream), then that batch again after the one before it, so that its
    tensors are judged with the error their inputs carry. The ranking covers the batches that were run."""
    lo, hi, seen = 0, len(plan) - 1, set()
    while lo < hi:
        mid = (lo + hi) // 2
        batches.compare(plan[mid])
        seen.add(mid)
        if batches.appeared(plan[mid]):
            hi = mid
        else:
            lo = mid + 1
    if lo > 0 and lo - 1 not in seen:
        batches.compare(plan[lo - 1])
    for name in plan[lo]:
        batches.errors.pop(name, None)
    batches.compare(plan[lo])
    batches.search.result.notes.append(
        f"bisected: {batches.search.result.batches} of {len(plan)} batches run; suspects are ranked among the "
        f"{len(batches.errors)} tensors those batches held (run without --bisect to rank every node)")


def _level(view: X.GraphView, tensor: str, errors: dict[str, TensorError], level: dict[str, float]) -> float:
    """The error a tensor carries: its own when judged, else the largest on its producer's inputs (iteratively)."""
    if tensor in errors:
        return errors[tensor].error
    if tensor in level:
        return level[tensor]
    stack = [tensor]
    while stack:
        top = stack[-1]
        producer = view.producer.get(top)
        if producer is None:
            level[top] = 0.0
            stack.pop()
            continue
        pending = [t for t in view.inputs_of(producer) if t not in errors and t not in level]
        if pending:
            stack.extend(pending)
            continue
        level[top] = max((errors[t].error if t in errors else level[t] for t in view.inputs_of(producer)), default=0.0)
        stack.pop()
    return level[tensor]


def _check_exposure(search: _Search, index: int, count: int, plain: dict[str, float], exposed: dict[str, float]) -> None:
    """Exposing outputs can break the fusion that caused the divergence (NVIDIA/TensorRT #2571): say so plainly."""
    if search.result.exposure:
        return
    for name, before in plain.items():
        after = exposed.get(name)
        if after is None:
            continue
        hi, lo = max(before, after), min(before, after)
        floor = search.base(np.dtype(np.float32)) / 100
        if hi > floor and (math.isinf(hi) != math.isinf(lo) or hi > MOVED_FACTOR * max(lo, floor)):
            search.result.exposure = {
                "batch": index, "exposed": count, "output": name, "error_without": before, "error_with": after,
                "message": (f"exposing {count} intermediate(s) (batch {index + 1}) changed output {name!r}'s error "
                            f"from {before:.3g} to {after:.3g}: the exposed run is not the run that failed (a fusion "
                            f"probably broke), so intermediate errors were confirmed on extracted subgraphs")}
            return


def _conclude(search: _Search, view: X.GraphView, errors: dict[str, TensorError], carried: dict[str, float],
              ref_side: Side, act_side: Side) -> None:
    result = search.result
    result.base = search.base(np.dtype(np.float32))
    ordered = [errors[t] for n in view.nodes for t in n.output if t in errors]
    result.tensors = ordered
    result.suspects = rank(view, errors, carried, result.base, act_side.placement, search.profile.ep)
    first = next((e for e in ordered if e.beyond), None)
    if result.exposure:
        result.fallback = _prefix_bisect(search, view, [e.name for e in ordered], ref_side, act_side)
        confirmed = result.fallback.get("first")
        first = next((e for e in ordered if e.name == confirmed), None) if confirmed else None
    node_index = _repro_node(view, ordered, first, result)
    if first is not None:
        result.status = "localized"
        node = view.nodes[view.producer[first.name]]
        suspect = next((s for s in result.suspects if s.output == first.name), None)
        result.first = {"tensor": first.name, "node": node.name or f"#{view.producer[first.name]}", "op_type": node.op_type,
                        "ep": suspect.ep if suspect else search.profile.ep, "error": first.to_dict()}
    else:
        result.status = "outputs only"
        result.notes.append("no intermediate is beyond its scope tolerance: the divergence shows first in the graph "
                            "outputs; the repro is cut at the node that produces the first failing output")
    if search.options.repro and node_index is not None:
        result.repro = _repro(search, view, node_index, ref_side, act_side)
    if search.options.blame_passes:
        result.pass_blame = _blame(search, act_side, ref_side)


def _repro_node(view: X.GraphView, ordered: list[TensorError], first: TensorError | None,
                result: Localization) -> int | None:
    """Where the repro is cut: the first diverging node that reads a runtime tensor (a node computing from weights
    alone, e.g. a weight reshaped under fp16, has no inputs to feed a repro), else the failing output's producer."""
    if first is not None:
        start = ordered.index(first)
        fed = next((e for e in ordered[start:] if e.beyond and view.inputs_of(view.producer[e.name])), None)
        if fed is not None:
            if fed is not first:
                result.notes.append(f"the repro is cut at {view.nodes[view.producer[fed.name]].name!r}, the first "
                                    f"diverging node with a runtime input: {first.name!r} is computed from weights only")
            return view.producer[fed.name]
    failing = [o["output"] for o in result.outputs if o["output"] in view.producer]
    fed_outputs = [t for t in failing if view.inputs_of(view.producer[t])]
    return view.producer[fed_outputs[0]] if fed_outputs else None


def _prefix_bisect(search: _Search, view: X.GraphView, names: list[str], ref_side: Side,
                   act_side: Side) -> dict[str, Any]:
    """The first tensor whose prefix subgraph (graph inputs up to that tensor as the only output) diverges,
    assuming a divergence persists downstream: log2(n) runs, none of which exposes anything extra."""
    lo, hi, runs = 0, len(names), 0
    while lo < hi:
        mid = (lo + hi) // 2
        runs += 1
        if _prefix_diverges(search, names[mid], ref_side, act_side):
            hi = mid
        else:
            lo = mid + 1
    first = names[lo] if lo < len(names) else None
    return {"method": "bisection over prefix subgraphs extracted with onnx.utils.extract_model", "runs": runs,
            "first": first, "node": view.nodes[view.producer[first]].name if first else None}


def _prefix_diverges(search: _Search, tensor: str, ref_side: Side, act_side: Side) -> bool:
    values = []
    for side in (ref_side, act_side):
        model = side.model()
        inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        with saved(model, side.path) as whole:
            del model
            with tempfile.TemporaryDirectory(prefix="harness-prefix-") as work:
                part = Path(work) / "prefix.onnx"
                onnx.utils.extract_model(str(whole), str(part), inputs, [tensor], check_model=False)
                values.append(as_array(side.run([], model_path=part, feed=side.feed()).outputs.get(tensor)))
    ref, act = values
    if ref is None or act is None:
        return False
    return judge(tensor, ref, act, 0.0, search.base(ref.dtype), search.options.growth).beyond


def _repro(search: _Search, view: X.GraphView, node_index: int, ref_side: Side, act_side: Side) -> Repro:
    options, plan = search.options, search.plan
    folder = options.out or Path("results") / "localize" / f"{plan.case.name}__{search.profile.name}".replace("/", "_")

    def capture(names: list[str]) -> dict[str, Any]:
        feed = ref_side.feed()
        wanted = [n for n in names if n not in feed]
        got = ref_side.run(wanted).outputs if wanted else {}
        return {n: feed[n] if n in feed else got[n] for n in names}

    def golden(model: Path, feed: dict[str, Any]) -> dict[str, Any]:
        return ref_side.run([], model_path=model, feed=feed).outputs

    def verify(folder: Path) -> tuple[bool, str]:
        case = discover([str(folder)], folder.parent)[0]
        repro_plan = plan_case(case, dims={}, seed=0)
        side = Side(search.profile, repro_plan, 0, search.pool, timeout_s=options.timeout_s)
        got = side.run([]).outputs
        ds = repro_plan.datasets[0]
        sub = _Search(repro_plan, search.profile, search.reference, search.pool, options)
        failed = sub.failing_outputs(ds.outputs, got)
        if failed:
            return True, f"FAIL on {search.profile.name}: " + "; ".join(f"{f['output']}: {f['reasons'][0]}" for f in failed)
        return False, f"passes on {search.profile.name} alone (the divergence needs more of the graph around it)"

    def manifest(nodes: list[str]) -> CaseManifest:
        tol = search.override.to_dict() if search.override else {}
        return CaseManifest(case=folder.name, description=(
            f"repro cut by 'harness localize' from case {plan.case.name!r}: node(s) {', '.join(nodes)}; profile "
            f"{search.profile.name} vs {search.reference.name}, data set {search.result.dataset}"),
            source={"kind": "profile", "profile": search.reference.name, "cut_from": plan.case.name},
            tolerance={k: v for k, v in tol.items() if k in ("rtol", "atol")})

    return cut(view, plan.case.model_path, node_index, folder, capture=capture, golden=golden, verify=verify,
               manifest=manifest)


def _blame(search: _Search, act_side: Side, ref_side: Side) -> PassBlame:
    ref = ref_side.run([]).outputs
    feed = act_side.feed()

    def diverges(outputs: dict[str, Any]) -> bool:
        return bool(search.failing_outputs(ref, outputs))
    if act_side.edit is not None:
        return PassBlame(False, "the profile's model was edited by a test hook: its passes are not searched")
    return blame(search.profile, act_side.path, feed, diverges)
