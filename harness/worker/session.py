"""Build an onnxruntime session from a profile's worker spec (plain JSON). Worker-side: imports only
onnxruntime, numpy, the stdlib and sibling worker modules, so a worker in a foreign Python (e.g. aarch64 under
qemu) can carry it.

Plugin EPs (OpenVINO, WebGPU) are registered with ``register_execution_provider_library`` and bound to a
device from ``get_ep_devices()`` via ``add_provider_for_devices``; the legacy ``providers=[...]`` route
silently falls back to the CPU EP for them, so it is never used for plugins.

The pseudo-EP ``ReferenceEvaluator`` is onnx.reference, not onnxruntime: require_ep, check_available and
create_session hand it to ``harness.worker.reference`` (imported only then, since it needs the onnx package),
whose session offers the subset of InferenceSession the worker calls.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import onnxruntime as ort

from harness.worker.ort_message import ort_message_of
from harness.worker.probe import PROBE_FEED, PROBE_MODEL, Unavailable, explain_failure


_OPT = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
        "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL"}
_PRECISION = {"f32": "f32", "f16": "f16", "bf16": "bf16"}
_registered: dict[str, str] = {}
# The pseudo-EP run by onnx.reference; the same name as harness.profiles.known_keys (a test checks they agree).
REFERENCE_EP = "ReferenceEvaluator"


def register_plugin(spec: dict[str, Any]) -> None:
    module_name = spec.get("plugin")
    if not module_name or spec["ep"] in _registered:
        return
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unavailable(f"plugin package {module_name!r} is not installed ({exc})", "not_installed") from None
    for key, value in (spec.get("env") or {}).items():
        os.environ.setdefault(key, value)
    path = module.get_library_path()
    try:
        ort.register_execution_provider_library(spec["ep"], str(path))
    except Exception as exc:  # ORT raises its own Fail/RuntimeError types
        raise Unavailable(f"could not register {spec['ep']} from {path}: {exc}") from None
    _registered[spec["ep"]] = str(path)


def select_devices(spec: dict[str, Any]) -> list[Any]:
    wanted_type = spec.get("device_type")
    wanted_meta = spec.get("device_metadata") or {}
    devices = []
    for device in ort.get_ep_devices():
        if device.ep_name != spec["ep"]:
            continue
        if wanted_type and device.device.type.name != wanted_type:
            continue
        meta = {**dict(device.device.metadata), **dict(device.ep_metadata)}
        if all(meta.get(k) == v for k, v in wanted_meta.items()):
            devices.append(device)
    if not devices:
        seen = sorted({d.ep_name for d in ort.get_ep_devices()})
        vendor = next((d.device.vendor for d in ort.get_ep_devices()), "?")
        raise Unavailable(f"{spec['ep']} offers no device matching type={wanted_type} {wanted_meta} on this host "
                          f"(CPU vendor {vendor}; EPs with devices: {', '.join(seen)})")
    return devices[:1]


def ep_options(spec: dict[str, Any]) -> dict[str, str]:
    options = {k: str(v) for k, v in (spec.get("ep_options") or {}).items()}
    hint = spec.get("precision_hint")
    if hint and spec["ep"] == "OpenVINOExecutionProvider":
        device = (spec.get("device_metadata") or {}).get("ov_device", "CPU")
        options["load_config"] = json.dumps({device: {"INFERENCE_PRECISION_HINT": _PRECISION[hint]}})
    return options


def session_options(spec: dict[str, Any]) -> ort.SessionOptions:
    s = spec.get("session") or {}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if s.get("intra_op_threads") is not None:
        so.intra_op_num_threads = int(s["intra_op_threads"])
    if s.get("inter_op_threads") is not None:
        so.inter_op_num_threads = int(s["inter_op_threads"])
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT[s.get("graph_optimization", "all")])
    so.enable_cpu_mem_arena = bool(s.get("cpu_arena", True))
    so.enable_mem_pattern = bool(s.get("memory_pattern", True))
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if s.get("execution_mode") == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if s.get("strict_placement"):
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in (s.get("config") or {}).items():
        so.add_session_config_entry(str(key), str(value))
    return so


def _reference() -> Any:
    """harness.worker.reference, or Unavailable saying what is missing: the module itself, or the onnx package
    it runs (a foreign worker Python may carry onnxruntime without onnx)."""
    try:
        reference = importlib.import_module("harness.worker.reference")
    except ImportError as exc:
        if exc.name == "harness.worker.reference":
            raise Unavailable("onnx.reference worker not built (harness.worker.reference is missing)",
                              "not_installed") from None
        raise Unavailable(f"{REFERENCE_EP} needs the onnx package in the worker's Python ({exc})",
                          "not_installed") from None
    return reference


def require_ep(spec: dict[str, Any]) -> None:
    """Raise Unavailable when the spec's EP cannot even be offered here: plugin package, registration, device
    (plugins), the onnx package (the reference evaluator) or the onnxruntime build (the rest)."""
    ep = spec["ep"]
    if ep == REFERENCE_EP:
        _reference()
    elif spec.get("plugin"):
        register_plugin(spec)
        select_devices(spec)
    elif ep not in ort.get_available_providers():
        raise Unavailable(f"{ep} is not in this onnxruntime build (available: {', '.join(ort.get_available_providers())})",
                          "not_in_build")


def check_available(spec: dict[str, Any]) -> None:
    """Raise Unavailable with the reason when this host cannot run the spec's EP: the EP must be offered, and a
    one-node session must be created and run on it, through the same options as a case's session (strict
    placement off: the probe asks whether the EP works, not whether it takes every node). The reference
    evaluator answers for itself."""
    if spec["ep"] == REFERENCE_EP:
        _reference().check_available(spec)
        return
    require_ep(spec)
    probe_spec = {**spec, "session": {**(spec.get("session") or {}), "strict_placement": False}}
    try:
        session = create_session(PROBE_MODEL, probe_spec)
        session.run(None, PROBE_FEED)
    except Exception as exc:  # ORT raises its own Fail/EPFail/RuntimeError types
        parsed = ort_message_of(exc)
        raise Unavailable(*explain_failure(spec["ep"], parsed.line, parsed.full)) from None
    providers = session.get_providers()
    if spec["ep"] not in providers:
        raise Unavailable(f"a one-node {spec['ep']} session ran on {', '.join(providers)} instead: onnxruntime "
                          f"dropped the EP (see the worker's stderr for why)", "probe_failed")


def create_session(model: str | bytes, spec: dict[str, Any]) -> Any:
    """A session for ``model`` (a path the worker can read, or serialised bytes) as the spec says: an
    onnxruntime InferenceSession, or the reference evaluator's stand-in for one."""
    ep = spec["ep"]
    if ep == REFERENCE_EP:
        return _reference().create_session(model, spec)
    so = session_options(spec)
    if spec.get("plugin"):
        register_plugin(spec)
        so.add_provider_for_devices(select_devices(spec), ep_options(spec))
        return ort.InferenceSession(model, so)
    require_ep(spec)
    providers: list[Any] = [(ep, ep_options(spec))]
    if ep == "TensorrtExecutionProvider":
        providers.append(("CUDAExecutionProvider", {}))
    if ep != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")
    return ort.InferenceSession(model, so, providers=providers)


def placement(session: ort.InferenceSession, expected_ep: str) -> dict[str, Any]:
    """Which EP ran each node: the fraction on the profile's EP, and the nodes that fell back."""
    per_ep: dict[str, int] = {}
    fell_back: list[str] = []
    try:
        assigned = session.get_provider_graph_assignment_info() or []
    except Exception as exc:  # older builds lack the API
        return {"available": False, "reason": str(exc)}
    for subgraph in assigned:
        nodes = list(subgraph.get_nodes())
        per_ep[subgraph.ep_name] = per_ep.get(subgraph.ep_name, 0) + len(nodes)
        if subgraph.ep_name != expected_ep:
            fell_back += [f"{n.name or '?'}({n.op_type})->{subgraph.ep_name}" for n in nodes]
    total = sum(per_ep.values())
    on_ep = per_ep.get(expected_ep, 0)
    return {"available": True, "nodes": total, "per_ep": per_ep, "on_profile_ep": on_ep,
            "fraction_on_ep": (on_ep / total) if total else 1.0, "fell_back": fell_back[:50],
            "fell_back_count": len(fell_back)}
