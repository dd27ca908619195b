"""A finding: a minimal graph on which a profile disagrees with another (or fails), de-duplicated and saved as a
case folder that ``harness run <folder> --profile P`` reproduces.

De-duplication is by (op type, attribute signature, dtype, profile pair): the op of the node where the two part
ways in the shrunk graph, its attributes with categorical values kept (ints, strings: ``ceil_mode=1``) and
continuous ones reduced to their name (``alpha``), the element type it reads, and the two profiles. A thousand
graphs whose fp16 Exp overflows are one finding seen a thousand times.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from harness.atomic import atomic_write_bytes
from harness.fuzzing.ops import DTYPE_NAMES

FINDING_NAME = "finding.json"


def attribute_signature(node: onnx.NodeProto) -> str:
    """``name=value`` for ints, int lists and strings; ``name`` alone for floats (a continuous value would make
    every graph its own finding); sorted by name."""
    parts = []
    for attr in sorted(node.attribute, key=lambda a: a.name):
        if attr.type in (onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS):
            parts.append(attr.name)
        else:
            value = onnx.helper.get_attribute_value(attr)
            text = value.decode() if isinstance(value, bytes) else str(list(value) if isinstance(value, (list, tuple))
                                                                          else value)
            parts.append(f"{attr.name}={text.replace(' ', '')}")
    return ",".join(parts)


def finding_key(op: str, signature: str, dtype: str, pair: str) -> str:
    return f"{op}[{signature}]:{dtype}:{pair}"


def node_dtype(node: onnx.NodeProto, types: dict[str, onnx.TypeProto]) -> str:
    """The element type of the node's first input (the data it computes on)."""
    for name in node.input:
        if name and name in types:
            elem = types[name].tensor_type.elem_type
            return DTYPE_NAMES.get(elem, onnx.TensorProto.DataType.Name(elem).lower())
    return "?"


@dataclass
class Finding:
    key: str
    kind: str  # "mismatch", or the failing cell's verdict (CRASH, TIMEOUT, OOM, ERROR)
    profile: str
    other: str  # the profile it disagrees with ("" for a failure)
    op: str
    attributes: str
    dtype: str
    graph: str  # the first graph it was seen on
    path: str = ""  # the repro's case folder, relative to the campaign folder
    reasons: list[str] = field(default_factory=list)
    localized: dict[str, Any] | None = None  # the first diverging node in the original graph (locate.py)
    shrink: dict[str, Any] = field(default_factory=dict)  # nodes before/after, attributes dropped, tests
    reproduces: dict[str, Any] = field(default_factory=dict)  # what 'harness run <path> --profile P' gave
    shape_conflicts: list[str] = field(default_factory=list)  # reference shapes that contradict shape inference
    assessment: str = ""  # expected (a documented precision) or an EP difference to investigate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def slug(finding: Finding) -> str:
    """A folder name that says what the finding is and stays unique: op, dtype, profiles and a short hash."""
    digest = hashlib.sha256(finding.key.encode()).hexdigest()[:8]
    other = f"-vs-{finding.other}" if finding.other else f"-{finding.kind.lower()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{finding.op}-{finding.dtype}-{finding.profile}{other}-{digest}")


def write_finding(folder: Path, finding: Finding) -> None:
    atomic_write_bytes(folder / FINDING_NAME, (json.dumps(finding.to_dict(), indent=1) + "\n").encode("utf-8"))


__all__ = ["FINDING_NAME", "Finding", "attribute_signature", "finding_key", "node_dtype", "slug", "write_finding"]
