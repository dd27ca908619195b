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
    modified = list(dict.fromkeys(_MODIFIED.findall(log)))
    if not diverges(outputs):
        return PassBlame(False, "the divergence does not show in an in-process session of this profile", [],
                         modified, 1)
    if diverges(_run(model, _spec(profile, "disable"), feed, [])[0]):
        return PassBlame(False, "the divergence stays with every optimisation off (as under cpu-noopt): it is the "
                                "kernels', not a pass's", [], modified, 2)
    return _bisect(model, spec, feed, diverges, modified)


def _bisect(model: Path, spec: dict[str, Any], feed: dict[str, Any], diverges: Judge, modified: list[str]) -> PassBlame:
    sessions = 2

    def vanishes(disabled: list[str]) -> bool:
        nonlocal sessions
        sessions += 1
        return not diverges(_run(model, spec, feed, disabled)[0])

    if not modified or not vanishes(modified):
        return PassBlame(False, "it vanishes with optimisations off, but disabling the passes onnxruntime reported as "
                                "modifying the graph does not remove it (a pass it does not log, or the optimisation "
                                "level itself)", [], modified, sessions)
    suspects = list(modified)
    while len(suspects) > 1:
        half = suspects[: len(suspects) // 2]
        if vanishes(half):
            suspects = half
        elif vanishes(suspects[len(half):]):
            suspects = suspects[len(half):]
        else:
            break
    for name in list(suspects) if len(suspects) > 1 else []:  # several passes each cause part of it: keep only
        if vanishes([s for s in suspects if s != name]):  # those without which it comes back (1-minimal)
            suspects.remove(name)
    call = f"InferenceSession(..., disabled_optimizers={suspects!r})"
    if len(suspects) == 1:
        return PassBlame(True, f"the divergence vanishes with only {suspects[0]} disabled ({call})", suspects,
                         modified, sessions)
    return PassBlame(True, f"no single pass: the divergence vanishes only with {', '.join(suspects)} all disabled "
                           f"({call}); each alone leaves part of it", suspects, modified, sessions)
