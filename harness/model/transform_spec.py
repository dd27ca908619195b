"""What a precision transform is asked to do (TransformSpec) and how it can decline (the two exceptions).

Kept apart from the dispatcher (transforms.py) so that the converters (fp16.py, int8.py) can use them
without importing the module that imports them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

KINDS = ("none", "fp16", "fp16-mixed", "int8-dynamic", "int8-static")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")  # int8-static; int8._CALIBRATION maps each to onnxruntime's
# Bump when a transform's code changes what it produces, so stale cached models are not reused.
CACHE_VERSION = 3


class TransformNotApplicable(Exception):
    """The transform makes no sense for this model (already quantised, nothing float to convert)."""

    log: str = ""  # what the libraries printed before the transform gave up (set by transform_model)

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransformFailed(Exception):
    """The transform applies but did not produce a model that loads; `message` is the library's own words."""

    log: str = ""  # what the libraries printed before the transform gave up (set by transform_model)

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}. Note: {hint}")
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class TransformSpec:
    """Everything that decides what a transform produces; `cache_tag` digests all of it."""

    kind: str  # "none" | "fp16" | "fp16-mixed" | "int8-dynamic" | "int8-static"
    keep_io_types: bool = True
    calibration: str = "minmax"  # minmax | entropy | percentile
    per_channel: bool = True
    op_block_list: tuple[str, ...] = ()  # extra op types kept in fp32 (fp16) / not quantised (int8)
    mixed_rtol: float | None = None  # fp16-mixed: bound on a node's fp16 error
    mixed_atol: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown transform {self.kind!r}; known: {', '.join(KINDS)}")

    @classmethod
    def from_profile_fields(cls, kind: str, keep_io_types: bool, options: dict) -> TransformSpec:
        """Build from a profile's [precision] table (schema.py has validated the keys and values)."""
        return cls(kind=kind, keep_io_types=bool(keep_io_types),
                   calibration=str(options.get("calibration", "minmax")),
                   per_channel=bool(options.get("per_channel", True)),
                   op_block_list=tuple(options.get("op_block_list", ())),
                   mixed_rtol=_float_or_none(options.get("mixed_rtol")),
                   mixed_atol=_float_or_none(options.get("mixed_atol")))

    def cache_tag(self) -> str:
        """Short stable digest of every field (and the cache version), for the cache key."""
        text = json.dumps({**asdict(self), "version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _float_or_none(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
