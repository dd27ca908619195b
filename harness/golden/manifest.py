"""The readable per-case manifest (``case.json``) that sits beside the ONNX test-data layout.

The layout itself stays exactly what onnx's backend loader and onnx_test_runner read; everything they do
not know about (provenance, task kind, symbolic dims, input ranges, tolerance overrides) lives here.
A case without a manifest is still a valid case: every field has a default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.compare.tolerances import CalibratedRule
from harness.errors import GoldenError, HarnessError
from harness.suggest import did_you_mean

MANIFEST_NAME = "case.json"
SCHEMA_VERSION = 1

_FIELDS = (
    "schema_version", "case", "description", "model_sha256", "opset", "source", "host", "created",
    "task", "dims", "input_ranges", "tolerance", "output_tolerance", "budgets", "calibration",
)
# case.json 'calibration' (written by 'harness calibrate'): the measured rule per output, and how it was measured.
CALIBRATION_KEYS = ("outputs", "runs", "reference", "review", "versions", "host", "model_sha256", "data_sha256",
                    "goldens_sha256", "created", "k")


@dataclass
class CaseManifest:
    case: str = ""
    description: str = ""
    model_sha256: str = ""
    opset: int | None = None
    # Where the goldens came from: {"kind": "framework", "framework": "torch", "version": ...}
    # or {"kind": "profile", "profile": "cpu", "ep": ..., "onnxruntime": ...}.
    source: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    task: str = "generic"
    dims: dict[str, int] = field(default_factory=dict)
    input_ranges: dict[str, dict[str, float]] = field(default_factory=dict)
    tolerance: dict[str, Any] = field(default_factory=dict)
    output_tolerance: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    # {"k", "outputs": {name: CalibratedRule fields}, "runs": [...], "reference": {...}, "review": "" or why,
    #  "versions": {...}, "model_sha256", "data_sha256", "created"}; {} = not calibrated
    calibration: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def calibrated_rules(self) -> dict[str, CalibratedRule]:
        """The calibrated rule of each output ({} when the case is not calibrated); checked on load."""
        outputs = self.calibration.get("outputs") or {}
        return {name: CalibratedRule.from_mapping(entry, f"case.json calibration.outputs.{name}")
                for name, entry in outputs.items()}

    @property
    def calibration_review(self) -> str:
        """Why the calibration is not to be trusted ('' when it is): the float64 reference deviated from the
        golden by more than the review threshold, so the goldens' own resolution is coarser than the noise."""
        return str(self.calibration.get("review") or "")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "CaseManifest":
        if not isinstance(data, dict):
            raise GoldenError(f"{where}: manifest must be a JSON object")
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise GoldenError(f"{where}: unknown manifest key {unknown[0]!r}{did_you_mean(unknown[0], _FIELDS)}",
                              hint="fix or remove the key")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise GoldenError(f"{where}: manifest schema_version {version!r} is not supported (this harness reads {SCHEMA_VERSION})")
        manifest = cls(**data)
        _check_types(manifest, where)
        return manifest


def _check_types(m: CaseManifest, where: str) -> None:
    for name in ("source", "host", "dims", "input_ranges", "tolerance", "output_tolerance", "budgets", "calibration"):
        if not isinstance(getattr(m, name), dict):
            raise GoldenError(f"{where}: manifest field {name!r} must be an object")
    for dim, value in m.dims.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise GoldenError(f"{where}: dims[{dim!r}] must be a positive integer, got {value!r}")
    for name, rng in m.input_ranges.items():
        valid = (isinstance(rng, dict) and {"low", "high"} <= set(rng)
                 and _is_number(rng["low"]) and _is_number(rng["high"]) and rng["low"] < rng["high"])
        if not valid:
            raise GoldenError(f"{where}: input_ranges[{name!r}] must be {{\"low\": a, \"high\": b}} with a < b")
    if m.calibration:
        _check_calibration(m, where)


def _check_calibration(m: CaseManifest, where: str) -> None:
    """A hand-edited or truncated calibration is refused when the case is read, never in the middle of a run."""
    unknown = [key for key in m.calibration if key not in CALIBRATION_KEYS]
    if unknown:
        raise GoldenError(f"{where}: unknown calibration key {unknown[0]!r}{did_you_mean(unknown[0], CALIBRATION_KEYS)}",
                          hint="rewrite it with 'harness calibrate CASE --force'")
    if not isinstance(m.calibration.get("outputs"), dict) or not isinstance(m.calibration.get("review", ""), str):
        raise GoldenError(f"{where}: calibration must hold an 'outputs' object (and 'review' is a string)",
                          hint="rewrite it with 'harness calibrate CASE --force'")
    try:
        m.calibrated_rules()
    except HarnessError as exc:
        raise GoldenError(f"{where}: {exc.message}", hint=exc.hint) from None


def _is_number(value: Any) -> bool:
    # Strings compare with '<' too, and would only fail later, inside input generation, with a traceback.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_manifest(case_dir: Path) -> CaseManifest | None:
    path = case_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenError(f"{path}: not valid JSON ({exc})", hint="restore it from git or delete it") from None
    return CaseManifest.from_dict(data, str(path))
