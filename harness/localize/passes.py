"""Blame a graph optimisation, not only a node (onnxruntime #24711: optimisations alone change outputs).

When the divergence vanishes with every optimisation off (as under the ``cpu-noopt`` profile), the passes that
changed the graph are read from onnxruntime's verbose log ("GraphTransformer X modified: 1"), and bisected with
``InferenceSession(..., disabled_optimizers=[...])``: halve the set of passes that are disabled until one pass,
disabled alone, makes the divergence vanish. ``disabled_optimizers`` is a session argument the worker protocol does
not carry, so these sessions run in this process, built with the worker's own session options for the profile.
Plugin EPs (registered libraries) and the reference evaluator have no onnxruntime optimisers to blame.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from harness.model.transforms import captured
from harness.profiles.schema import Profile
from harness.worker.session import REFERENCE_EP, session_options

_MODIFIED = re.compile(r"GraphTransformer (\S+) modified: 1")
_LEVEL_SUFFIX = re.compile(r"L\d$")  # LayerNormFusionL1: one instance of a pass registered at several levels


def _instances(name: str) -> list[str]:
    """A pass and its instances at the other levels: disabling LayerNormFusionL1 alone lets the level-2
    LayerNormFusion fuse the same nodes, so a pass is disabled at every level or not at all."""
    base = _LEVEL_SUFFIX.sub("", name)
    return list(dict.fromkeys([name, base, f"{base}L1", f"{base}L2"]))

Judge = Callable[[dict[str, Any]], bool]  # outputs by name -> still diverges


@dataclass
class PassBlame:
    searched: bool
    reason: str  # why not searched, or what was found, in one line
    passes: list[str] = field(default_factory=list)  # the pass(es) to blame: disabling them removes the divergence
    modified: list[str] = field(default_factory=list)  # the passes that changed the graph
    sessions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spec(profile: Profile, level: str | None = None) -> dict[str, Any]:
    spec = profile.worker_spec()
    if level is not None:
        spec["session"] = {**(spec.get("session") or {}), "graph_optimization": level}
    return spec


def _run(model: Path, spec: dict[str, Any], feed: dict[str, Any], disabled: list[str],
         verbose: bool = False) -> tuple[dict[str, Any], str]:
    so = session_options(spec)
    if verbose:
        so.log_severity_level = 0
        so.log_verbosity_level = 0
    providers: list[Any] = [spec["ep"]] + (["CPUExecutionProvider"] if spec["ep"] != "CPUExecutionProvider" else [])
    log = io.StringIO()
    with captured(log):
        session = ort.InferenceSession(str(model), so, providers=providers, disabled_optimizers=disabled)
        names = [o.name for o in session.get_outputs()]
        values = session.run(None, feed)
    return dict(zip(names, values)), log.getvalue()


def blame(profile: Profile, model: Path, feed: dict[str, Any], diverges: Judge) -> PassBlame:
    """Which onnxruntime pass makes ``model`` diverge on ``profile`` (``diverges`` judges its outputs)."""
    spec = _spec(profile)
    if spec["ep"] == REFERENCE_EP or spec.get("plugin"):
        return PassBlame(False, f"{spec['ep']} is not run by onnxruntime's own graph optimisers: no pass to blame")
    if (spec.get("session") or {}).get("graph_optimization", "all") == "disable":
        return PassBlame(False, f"profile {profile.name!r} already runs with every optimisation off")
    outputs, log = _run(model, spec, feed, [], verbose=True)
    modified = _modified(log)
    if not diverges(outputs):
        return PassBlame(False, "the divergence does not show in an in-process session of this profile", [],
                         modified, 1)
    if diverges(_run(model, _spec(profile, "disable"), feed, [])[0]):
        return PassBlame(False, "the divergence stays with every optimisation off (as under cpu-noopt): it is the "
                                "kernels', not a pass's", [], modified, 2)
    return _bisect(model, spec, feed, diverges, modified)


MAX_ROUNDS = 5  # disabling a pass lets another take over the same nodes (LayerNormFusion -> SimplifiedLayerNormFusion)


def _modified(log: str) -> list[str]:
    return list(dict.fromkeys(_LEVEL_SUFFIX.sub("", n) for n in _MODIFIED.findall(log)))


def _expanded(disabled: list[str]) -> list[str]:
    return [instance for name in disabled for instance in _instances(name)]


def _bisect(model: Path, spec: dict[str, Any], feed: dict[str, Any], diverges: Judge, modified: list[str]) -> PassBlame:
    sessions = 2

    def vanishes(disabled: list[str]) -> bool:
        nonlocal sessions
        sessions += 1
        return not diverges(_run(model, spec, feed, _expanded(disabled))[0])

    suspects = list(modified)
    for _ in range(MAX_ROUNDS):  # with these off, which passes modify the graph now?
        outputs, log = _run(model, spec, feed, _expanded(suspects), verbose=True)
        sessions += 1
        if not diverges(outputs):
            break
        fresh = [n for n in _modified(log) if n not in suspects]
        if not fresh:
            return PassBlame(False, "it vanishes with optimisations off, but not with every pass onnxruntime reported "
                                    "as modifying the graph disabled (a pass it does not log, or the optimisation level "
                                    "itself)", [], suspects, sessions)
        suspects += fresh
    else:
        return PassBlame(False, f"passes kept taking over after {MAX_ROUNDS} rounds of disabling", [], suspects, sessions)
    every = list(suspects)
    while len(suspects) > 1:
        half = suspects[: len(suspects) // 2]
        if vanishes(half):
            suspects = half
        elif vanishes(suspects[len(half):]):
            suspects = suspects[len(half):]
        else:
            break
    for name in list(suspects) if len(suspects) > 1 else []:  # keep only the passes without which it comes back
        if vanishes([s for s in suspects if s != name]):
            suspects.remove(name)
    call = f"InferenceSession(..., disabled_optimizers={_expanded(suspects)!r})"
    if len(suspects) == 1:
        return PassBlame(True, f"the divergence vanishes with only {suspects[0]} disabled ({call})", suspects,
                         every, sessions)
    return PassBlame(True, f"no single pass: the divergence vanishes only with {', '.join(suspects)} all disabled "
                           f"({call}); with any one of them on it comes back (each causes part of it, or takes over "
                           f"the nodes another left)", suspects, every, sessions)
