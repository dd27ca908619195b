"""Tolerances are data: a per-dtype default table, merged with per-profile and per-output overrides.

The element rule everywhere is onnx_test_runner's ``|actual - golden| <= atol + rtol*|golden|``. Optional
metric gates (cosine, SNR, top-k agreement) let a reduced-precision profile pass on what matters for it
instead of on a tolerance bumped until it goes green.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from harness.errors import ProfileError
from harness.suggest import did_you_mean

# (rtol, atol) per dtype name. When golden and actual are both floats the actual output's entry applies;
# between kinds the looser entry wins (torch.testing). See default_tolerance.
#
# float64: torch.testing's fp64 default (1e-7, 1e-7); nothing we run should be looser than that.
# float32: looser than torch.testing's (1.3e-6, 1e-5) because goldens come from another runtime, not the
#   same kernel: exported models matched eager within rtol 1e-4 / atol 1e-5 here, and the ONNX backend
#   tests already use rtol 1e-3. 1e-4 catches real bugs while tolerating kernel-order differences.
# float16: torch.testing uses (1e-3, 1e-5) for same-kernel comparisons; across runtimes fp16 accumulates
#   in different orders, and users' first complaint is that defaults fail fp16 (TensorRT#2709), so we start
#   at NNSmith's (1e-2, 1e-3). OpenVINO's fp16 validation is looser still (abs 1e-2 or rel 5e-2).
# bfloat16: 8 mantissa bits, eps = 2**-7. torch.testing uses rtol 1.6e-2 and the ONNX backend tests raise
#   rtol to 2**-6; we round to (2e-2, 1e-3) with an atol that matches float16's for near-zero values.
# float8 / float6 / float4: 2-3 mantissa bits; eps of e4m3 is 2**-3 = 0.125, so one rounding step.
# integers, bool, strings: exact, as in onnx_test_runner and torch.testing.
_FLOAT8_LOOSE = (1.25e-1, 1e-2)
_EXACT = (0.0, 0.0)
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1e-4, 1e-5),
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-3),
    "float8_e4m3fn": _FLOAT8_LOOSE,
    "float8_e4m3fnuz": _FLOAT8_LOOSE,
    "float8_e5m2": _FLOAT8_LOOSE,
    "float8_e5m2fnuz": _FLOAT8_LOOSE,
}
_LOW_PRECISION_PREFIXES = ("float8", "float6", "float4")

_RATIO_FIELDS = ("min_cosine", "min_topk_agreement", "max_mismatch_fraction")
# Gates on the signal as a whole; with ``elementwise = false`` one of them must take the element rule's place.
SIGNAL_GATES = ("min_cosine", "min_snr_db", "min_topk_agreement")


def _fmt(x: float) -> str:
    """1e-04 style for tolerances: short, and easy to compare by eye."""
    if x == 0 or math.isinf(x):
        return str(x) if math.isinf(x) else "0"
    mantissa, exponent = f"{x:.2e}".split("e")
    return mantissa.rstrip("0").rstrip(".") + "e" + exponent


@dataclass(frozen=True)
class ToleranceOverride:
    """A partial Tolerance: None means "not set here, keep what is underneath"."""

    rtol: float | None = None
    atol: float | None = None
    min_cosine: float | None = None
    min_snr_db: float | None = None
    min_topk_agreement: float | None = None
    topk: int | None = None
    max_mismatch_fraction: float | None = None
    elementwise: bool | None = None

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], where: str) -> ToleranceOverride:
        """Validate a [tolerance] table or case.json entry; ``where`` names it in every error."""
        names = [f.name for f in fields(cls)]
        if not isinstance(d, Mapping):
            raise ProfileError(f"{where}: expected a table of tolerance keys, got {d!r}",
                               hint="e.g. {rtol = 1e-3, atol = 1e-5}; allowed keys: " + ", ".join(names))
        for key in d:
            if key not in names:
                raise ProfileError(
                    f"{where}: unknown tolerance key {key!r}{did_you_mean(key, names)}",
                    hint="allowed keys: " + ", ".join(names),
                )
        values = {key: _check_value(key, d[key], where) for key in d}
        if ("rtol" in values) != ("atol" in values):
            raise ProfileError(
                f"{where}: rtol and atol must be given together or not at all",
                hint="give both, e.g. rtol = 1e-3 and atol = 1e-5",
            )
        if values.get("elementwise") is False:
            _check_no_elementwise(values, where)
        return cls(**values)

    def to_dict(self) -> dict[str, float | int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _check_no_elementwise(values: Mapping[str, Any], where: str) -> None:
    """``elementwise = false`` replaces the element rule, so the table that says it must name what gates
    instead; a later layer turns the rule back on with rtol/atol or ``elementwise = true``."""
    clash = [key for key in ("rtol", "atol", "max_mismatch_fraction") if key in values]
    if clash:
        raise ProfileError(
            f"{where}: elementwise = false cannot be combined with {' / '.join(clash)} in the same table",
            hint="drop elementwise = false to gate on rtol/atol, or drop rtol/atol to gate on signal quality only"
                 " (max_mismatch_fraction counts elements beyond rtol/atol, so it needs the elementwise rule)",
        )
    if not any(key in values for key in SIGNAL_GATES):
        raise ProfileError(
            f"{where}: elementwise = false with no min_cosine, min_snr_db or min_topk_agreement in the same"
            " table would gate nothing on float outputs",
            hint="add the gate that replaces the element rule, e.g. min_cosine = 0.99 and min_snr_db = 15",
        )


def without_replaced_rule(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` less the element-rule keys that ``over`` replaces, for merging a profile's [tolerance] table
    (or one [tolerance.dtype.X] table) over the one it extends: rtol/atol in ``over`` replace the parent's
    ``elementwise = false``, and ``elementwise = false`` in ``over`` replaces the parent's rtol/atol and
    max_mismatch_fraction, so that the merged table never holds both and fails as a clash nobody wrote."""
    dropped: tuple[str, ...] = ()
    if "rtol" in over or "atol" in over:
        dropped = ("elementwise",)
    if over.get("elementwise") is False:
        dropped = ("rtol", "atol", "max_mismatch_fraction")
    return {key: value for key, value in base.items() if key not in dropped}


_RULE_OFF = ("give a finite value; to gate on signal quality instead of elements, set elementwise = false with "
             "min_cosine or min_snr_db (case.json 'tolerance' or a profile's [tolerance]); to allow a few elements "
             "off, max_mismatch_fraction")
_NO_SENTINEL = {"rtol": _RULE_OFF, "atol": _RULE_OFF}


def _check_value(key: str, value: Any, where: str) -> float | int | bool:
    if key == "elementwise":
        if not isinstance(value, bool):
            raise ProfileError(f"{where}: elementwise must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ProfileError(f"{where}: {key} must be a number, got {value!r}")
    if math.isinf(value):  # an infinite rtol/atol passes everything: a sentinel, not a tolerance
        raise ProfileError(f"{where}: {key} must be finite, got {value!r}", hint=_NO_SENTINEL.get(key))
    if value < 0:
        raise ProfileError(f"{where}: {key} must not be negative, got {value!r}")
    if key == "topk":
        if not isinstance(value, int) or value < 1:
            raise ProfileError(f"{where}: topk must be a whole number >= 1, got {value!r}")
        return value
    if key in _RATIO_FIELDS and value > 1:
        raise ProfileError(f"{where}: {key} is a fraction in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Tolerance:
    """What an output must satisfy: each set gate applies. The element rule (rtol/atol, with the
    max_mismatch_fraction allowance) applies to float outputs unless ``elementwise`` is False; integer,
    bool and string outputs are always compared exactly. NaN must meet NaN and Inf the same Inf always."""

    rtol: float
    atol: float
    min_cosine: float | None = None
    min_snr_db: float | None = None
    min_topk_agreement: float | None = None
    topk: int = 1
    max_mismatch_fraction: float = 0.0
    elementwise: bool = True

    def __post_init__(self) -> None:
        if not self.elementwise and not self.has_signal_gate():
            raise ValueError("elementwise=False needs min_cosine, min_snr_db or min_topk_agreement")

    def has_signal_gate(self) -> bool:
        return any(getattr(self, key) is not None for key in SIGNAL_GATES)

    def merged(self, override: ToleranceOverride) -> Tolerance:
        """Later layer wins. Giving rtol/atol turns the element rule back on, as ``elementwise = true`` does."""
        changes = override.to_dict()
        if "rtol" in changes and "elementwise" not in changes:
            changes["elementwise"] = True
        return replace(self, **changes) if changes else self

    def describe(self) -> str:
        if self.elementwise:
            parts = [f"rtol={_fmt(self.rtol)} atol={_fmt(self.atol)}"]
        else:
            parts = ["no elementwise gate"]
        if self.max_mismatch_fraction and self.elementwise:
            parts.append(f"mismatch<={self.max_mismatch_fraction:.3g}")
        if self.min_cosine is not None:
            parts.append(f"cosine>={self.min_cosine:g}")
        if self.min_snr_db is not None:
            parts.append(f"snr>={self.min_snr_db:g} dB")
        if self.min_topk_agreement is not None:
            parts.append(f"top-{self.topk} agreement>={self.min_topk_agreement:g}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tolerance:
        """Records written before ``elementwise`` existed load with the element rule on, as they ran."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return dtype
    return np.dtype(dtype).name


def _table_entry(name: str) -> tuple[float, float]:
    if name in DEFAULT_TOLERANCES:
        return DEFAULT_TOLERANCES[name]
    if name.startswith(_LOW_PRECISION_PREFIXES):
        return _FLOAT8_LOOSE
    if name.startswith("float"):  # e.g. float128: at least as precise as float64
        return DEFAULT_TOLERANCES["float64"]
    return _EXACT  # ints (incl. int4/uint4), bool, str, object, bytes


def _is_float(name: str) -> bool:
    return name.startswith(("float", "bfloat"))


def default_tolerance(golden_dtype: Any, actual_dtype: Any) -> Tolerance:
    """Table default for the pair. Between two float dtypes the actual output's entry: the output is what is
    judged, so a golden narrower than it (float16 for a float32 output) cannot excuse float16-sized errors,
    and a wider one (float64) cannot ask for more than the output holds. Between kinds (an int golden for a
    float output) the looser entry wins, as in torch.testing."""
    golden, actual = _dtype_name(golden_dtype), _dtype_name(actual_dtype)
    a_rtol, a_atol = _table_entry(actual)
    if _is_float(golden) and _is_float(actual):
        return Tolerance(rtol=a_rtol, atol=a_atol)
    g_rtol, g_atol = _table_entry(golden)
    return Tolerance(rtol=max(g_rtol, a_rtol), atol=max(g_atol, a_atol))


def resolve_tolerance(
    golden_dtype: Any, actual_dtype: Any, overrides: Sequence[ToleranceOverride | None]
) -> Tolerance:
    """Default for the dtypes, then each override in order (profile, then case, then output...)."""
    tol = default_tolerance(golden_dtype, actual_dtype)
    for override in overrides:
        if override is not None:
            tol = tol.merged(override)
    return tol


# ---- The calibrated rule (harness calibrate): a tolerance measured from a case's own noise floor -----------------
#
# Per output, with golden g: S = max|g| (the output's scale), f = 1e-3*S (a floor, so near-zero elements do not
# inflate the relative error), ulp(x) = np.spacing(x) in the golden's float dtype, and U = the most ULPs of
# max(|g|, f) that benign CPU variants (graph optimisation DISABLE_ALL, BASIC, ALL, and the float64 reference)
# moved any element. An output passes iff every element has |a - g| <= k * max(U, 4) * ulp(max(|g|, f)).
# That is about rtol = k*U*eps and atol = rtol*f; validated on 8 real models with k = 8 (issue 13).
MIN_ULPS = 4.0  # a floor of 0 ULPs (bitwise-identical variants) would make the rule exact: no device is held to that
DEFAULT_K = 8.0
FLOOR_FRACTION = 1e-3
_ULP_DTYPES = ("float16", "float32", "float64")


def ulp_dtype(dtype: Any) -> str:
    """Whose ULP the rule counts in: the golden's float dtype where numpy has it, else float32 (bfloat16 and the
    float8 types have no np.spacing; float32 is the issue's rule)."""
    name = _dtype_name(dtype)
    return name if name in _ULP_DTYPES else "float32"


def floor_for(scale: float, dtype: str = "float32") -> float:
    """f = 1e-3 * S; an all-zero golden (S = 0) gets the dtype's smallest normal number instead, so that its ULP
    is not a subnormal step no real kernel is held to."""
    return max(FLOOR_FRACTION * scale, float(np.finfo(dtype).tiny))


@dataclass(frozen=True)
class UlpScore:
    """The worst element of an output under the rule: ``worst_ulps`` = max |a - g| / ulp(max(|g|, f)) over the
    elements finite on both sides (None when there are none), its index, and how many elements exceed ``limit``."""

    worst_ulps: float | None
    index: list[int] | None
    beyond: int
    scored: int


def ulp_distance(golden: np.ndarray, actual: np.ndarray, floor: float, dtype: str = "float32", *,
                 limit: float = math.inf, chunk_elems: int = 1 << 20) -> UlpScore:
    """Vectorised and chunked (a few float64 temporaries of ``chunk_elems``): the rule's score of ``actual``.
    NaN and Inf are not scored here; their pattern is judged apart (a mismatch always fails)."""
    golden, actual = np.asarray(golden), np.asarray(actual)
    flat_g, flat_a = golden.reshape(-1), actual.reshape(-1)
    worst, where, beyond, scored = -1.0, -1, 0, 0
    for start in range(0, flat_g.size, chunk_elems):
        g = flat_g[start:start + chunk_elems].astype(np.float64)
        a = flat_a[start:start + chunk_elems].astype(np.float64)
        both = np.isfinite(g) & np.isfinite(a)
        positions = None if both.all() else np.flatnonzero(both)
        if positions is not None:
            g, a = g[positions], a[positions]
        if g.size == 0:
            continue
        ulps = np.abs(a - g) / np.spacing(np.maximum(np.abs(g), floor).astype(dtype)).astype(np.float64)
        at = int(np.argmax(ulps))
        if ulps[at] > worst:
            worst, where = float(ulps[at]), start + int(at if positions is None else positions[at])
        beyond += int(np.count_nonzero(ulps > limit))
        scored += g.size
    if scored == 0:
        return UlpScore(None, None, 0, 0)
    index = [int(i) for i in np.unravel_index(where, golden.shape)] if golden.shape else []
    return UlpScore(worst, index, beyond, scored)


@dataclass(frozen=True)
class CalibratedRule:
    """One output's calibrated tolerance, as case.json's ``calibration.outputs[<name>]`` holds it. Float outputs:
    scale S, floor f, noise floor U in ULPs of ``dtype``. Integer and bool outputs: exact, unless calibration saw
    them differ (``mismatch_fraction``: the largest share of elements any calibration run changed), in which case
    k times that share may differ."""

    k: float
    kind: str = "float"  # or "exact" (integer, bool)
    scale: float = 0.0
    floor: float = 0.0
    ulps: float = 0.0
    dtype: str = "float32"
    mismatch_fraction: float = 0.0

    @property
    def allowed_ulps(self) -> float:
        return self.k * max(self.ulps, MIN_ULPS)

    @property
    def allowed_mismatch_fraction(self) -> float:
        return min(1.0, self.k * self.mismatch_fraction)

    def equivalent(self) -> Tolerance:
        """The element rule that is about the same (rtol = k*U*eps, atol = rtol*f), for reports and the record's
        'tolerance' field; the rule itself is judged in ULPs (``ulp_distance``)."""
        if self.kind != "float":
            return Tolerance(rtol=0.0, atol=0.0, max_mismatch_fraction=self.allowed_mismatch_fraction)
        rtol = self.allowed_ulps * float(np.finfo(self.dtype).eps)
        return Tolerance(rtol=rtol, atol=rtol * self.floor)

    def describe(self) -> str:
        if self.kind != "float":
            seen = f"{self.mismatch_fraction:.3%}" if self.mismatch_fraction else "no element"
            return f"calibrated: exact (calibration saw {seen} differ; {self.allowed_mismatch_fraction:.3%} allowed)"
        return (f"calibrated: k·U = {self.k:g}·{max(self.ulps, MIN_ULPS):.3g} = {self.allowed_ulps:.4g} ULP allowed "
                f"of max(|golden|, {self.floor:.3g}) in {self.dtype}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], where: str) -> CalibratedRule:
        """A case.json entry, checked: numbers finite and not negative, k above 0, a known kind and dtype."""
        if not isinstance(d, Mapping):
            raise ProfileError(f"{where}: expected an object with k, scale, floor, ulps, got {d!r}")
        names = [f.name for f in fields(cls)]
        unknown = [key for key in d if key not in names]
        if unknown:
            raise ProfileError(f"{where}: unknown calibration key {unknown[0]!r}{did_you_mean(unknown[0], names)}",
                               hint="rerun 'harness calibrate CASE --force' to rewrite it")
        if d.get("kind", "float") not in ("float", "exact"):
            raise ProfileError(f"{where}: kind must be 'float' or 'exact', got {d.get('kind')!r}")
        if d.get("dtype", "float32") not in _ULP_DTYPES:
            raise ProfileError(f"{where}: dtype must be one of {', '.join(_ULP_DTYPES)}, got {d.get('dtype')!r}")
        for key in ("k", "scale", "floor", "ulps", "mismatch_fraction"):
            value = d.get(key, 0.0 if key != "k" else None)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ProfileError(f"{where}: {key} must be a finite number >= 0, got {value!r}",
                                   hint="rerun 'harness calibrate CASE --force' to rewrite it")
        if d["k"] <= 0 or d.get("mismatch_fraction", 0.0) > 1:
            raise ProfileError(f"{where}: k must be above 0 and mismatch_fraction at most 1, got {dict(d)!r}")
        return cls(**{key: (float(v) if key not in ("kind", "dtype") else v) for key, v in d.items()})
