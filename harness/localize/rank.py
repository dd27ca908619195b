"""Rank the nodes by how much error they add: relative error out / relative error in (the CRADLE/LEMON idea).

The first tensor beyond its tolerance says where the divergence becomes visible; the ranking says which node
made it grow the most, which is the one to send the vendor. Each suspect carries its op, attributes, the EP that
ran it (from the placement audit the worker records with ``session.record_ep_graph_assignment_info``) and the
error on its inputs and output.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from harness.localize.expose import GraphView
from harness.localize.scope import TensorError, _json_number, amplification

_ATTR_CHARS = 80  # an attribute's value as shown; tensors and graphs are described, not printed


@dataclass
class Suspect:
    node: str
    op_type: str
    attributes: dict[str, str]
    ep: str
    output: str
    inputs: dict[str, float]  # input tensor -> its error (0 for graph inputs and weights)
    error_in: float
    error_out: float
    amplification: float
    beyond: bool  # its output is beyond its scope tolerance
    position: int  # in topological order
    ep_source: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) if not isinstance(v, dict) else {a: _json_number(b) for a, b in v.items()}
                for k, v in asdict(self).items()}

    def line(self) -> str:
        amp = "inf" if math.isinf(self.amplification) else f"{self.amplification:.3g}x"
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return (f"{self.node} ({self.op_type}{': ' + attrs if attrs else ''}) on {self.ep}: error in "
                f"{_num(self.error_in)} -> out {_num(self.error_out)} (amplification {amp})"
                + (" [beyond its tolerance]" if self.beyond else ""))


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def attributes(node: onnx.NodeProto) -> dict[str, str]:
    shown = {}
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            shown[attr.name] = "<subgraph>"
        elif attr.type in (onnx.AttributeProto.TENSOR, onnx.AttributeProto.SPARSE_TENSOR):
            shown[attr.name] = f"<tensor {list(attr.t.dims)}>"
        else:
            value = onnx.helper.get_attribute_value(attr)
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            shown[attr.name] = text if len(text) <= _ATTR_CHARS else text[:_ATTR_CHARS] + "..."
    return shown


def ep_of(node: onnx.NodeProto, placement: dict[str, Any], profile_ep: str) -> tuple[str, str]:
    """(EP, how we know). The audit lists the nodes that left the profile's EP by name; a node not listed ran on
    the profile's EP, or was fused away into a node that did (the audit sees the optimised graph)."""
    if not placement.get("available"):
        return profile_ep, f"assumed: no placement audit ({placement.get('reason', 'not reported')})"
    for entry in placement.get("fell_back", []):
        name, _, ep = entry.rpartition("->")
        if name.startswith(f"{node.name}("):
            return ep, "placement audit: fell back"
    shown = len(placement.get("fell_back", []))
    if placement.get("fell_back_count", 0) > shown:
        return profile_ep, f"placement audit lists only {shown} of {placement['fell_back_count']} fallbacks"
    share = placement.get("per_ep", {})
    return profile_ep, f"placement audit: {share}"


def rank(view: GraphView, errors: dict[str, TensorError], carried: dict[str, float], base: float,
         placement: dict[str, Any], profile_ep: str) -> list[Suspect]:
    """Every compared node, the largest amplification first (ties: earlier in the graph first)."""
    suspects = []
    for index, node in enumerate(view.nodes):
        compared = [t for t in node.output if t in errors]
        if not compared:
            continue
        worst = max(compared, key=lambda t: errors[t].error)
        inputs = {t: carried.get(t, 0.0) for t in view.inputs_of(index)}
        error_in = max(inputs.values(), default=0.0)
        ep, source = ep_of(node, placement, profile_ep)
        suspects.append(Suspect(node.name or f"#{index}", node.op_type, attributes(node), ep, worst, inputs, error_in,
                                errors[worst].error, amplification(errors[worst].error, error_in, base),
                                errors[worst].beyond, index, source))
    return sorted(suspects, key=lambda s: (-_sortable(s.amplification), s.position))


def _sortable(x: float) -> float:
    return 1e308 if math.isinf(x) else x
