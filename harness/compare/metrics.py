"""Agreement metrics between a golden and an actual tensor, computed in chunks.

Outputs can be large (a full set of marked intermediates), so nothing here allocates a full-size
temporary: each statistic is accumulated over flat chunks of ``chunk_elems`` elements, in float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

# Sign-magnitude float types whose bits order like their values (per sign); the fnuz float8 types have no -0
# (0x80 is their NaN), so their bits do not map onto ULP steps this way and get no ULP figure.
_ULP_VIEWS = {"float16": np.int16, "bfloat16": np.int16, "float32": np.int32, "float64": np.int64,
              "float8_e4m3fn": np.int8, "float8_e5m2": np.int8}
_INT_MIN = {np.int8: -(2**7), np.int16: -(2**15), np.int32: -(2**31), np.int64: -(2**63)}
_FAST_FLOATS = ("float16", "float32", "float64")  # same-dtype pairs eligible for the fast paths
_BLOCK = 1 << 15  # fast-path sub-block: a handful of float64 scratch buffers of this size stay in L2
ENGINES = ("auto", "exact", "numpy", "numba")

# numba costs ~0.4 s to import and ~1 s to compile per dtype, more than the numpy path spends on any
# tensor below a few million elements: "auto" only reaches for it on tensors at least this large.
NUMBA_MIN_ELEMS = 1 << 22
_SIGNAL_FIELDS = ("max_abs_diff", "max_rel_diff", "cosine", "snr_db")
_fused: Any = None
_fused_tried = False


def _load_fused() -> Any:
    """The optional fused kernel (pip install numba), imported on first need; None when unavailable."""
    global _fused, _fused_tried
    if not _fused_tried:
        _fused_tried = True
        try:
            from harness.compare import fused as module
            _fused = module
        except ImportError:  # pragma: no cover - depends on the environment
            _fused = None
    return _fused


def fast_engine(size: int | None = None) -> str:
    """The engine ``engine="auto"`` uses for same-dtype finite float chunks of a tensor of ``size``
    elements (None: a large one): 'numba' when installed and worth its start-up cost, else 'numpy'."""
    large = size is None or size >= NUMBA_MIN_ELEMS
    return "numba" if large and _load_fused() is not None else "numpy"


def encode_float(x: Any) -> Any:
    """JSON has no inf/nan: write them as strings so ``json.dumps(allow_nan=False)`` works."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def decode_float(x: Any) -> Any:
    return float(x) if x in ("inf", "-inf", "nan") else x


@dataclass
class Metrics:
    """Plain JSON-friendly numbers; indices are lists into the original shape.

    Differences, cosine and SNR are computed over the pairs where both sides are finite (``finite_pairs``);
    NaN and Inf are counted apart. A metric that cannot be computed is None, with the reason in ``notes``
    under the field's name, so that NaN never reads as a perfect score and the JSON holds no NaN."""

    total: int
    mismatched: int
    mismatch_fraction: float
    max_abs_diff: float | None
    max_abs_index: list[int] | None
    max_rel_diff: float | None
    max_rel_index: list[int] | None
    required_atol: float | None
    required_rtol: float | None
    cosine: float | None
    snr_db: float | None
    max_ulp: int | None
    nan_mismatch: int
    inf_mismatch: int
    golden_nan_count: int
    topk: int | None = None
    topk_agreement: float | None = None
    # Added later: records written before them load with None / 0 / {} ("not counted then").
    finite_pairs: int | None = None
    actual_nan_count: int = 0
    golden_inf_count: int = 0
    actual_inf_count: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    # Exact (integer, bool, string) outputs: where the first differing element is, and both values as text.
    first_mismatch_index: list[int] | None = None
    first_mismatch: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: encode_float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        return cls(**{f.name: decode_float(d[f.name]) for f in fields(cls) if f.name in d})

    def non_finite(self, side: str) -> str:
        """'16384 NaN, 2 Inf' for side 'actual' or 'golden'; '' when that side is all finite."""
        nan, inf = ((self.actual_nan_count, self.actual_inf_count) if side == "actual"
                    else (self.golden_nan_count, self.golden_inf_count))
        return ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "Inf")) if n)


def _category(name: str) -> str:
    """'float' (judged with tolerance), 'int' (exact, as integers) or 'other' (exact equality)."""
    if name.startswith(("float", "bfloat")):
        return "float"
    if name.startswith(("int", "uint", "bool")):  # numpy's and ml_dtypes' (int4, uint2, ...) integers
        return "int"
    return "other"


def pair_category(golden_dtype: np.dtype | str, actual_dtype: np.dtype | str) -> str:
    """How a golden/actual dtype pair is judged: 'float' (tolerance and signal gates), 'int' (exact, as
    integers; bool included) or 'other' (exact equality, e.g. strings). Takes dtypes or their names, so a
    stored comparison can be read back without ml_dtypes' types."""
    cats = {_category(d if isinstance(d, str) else np.dtype(d).name) for d in (golden_dtype, actual_dtype)}
    if "other" in cats:
        return "other"
    return "float" if "float" in cats else "int"


def _chunk(arr: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Elements [start, stop) in C order: a view when possible, else a chunk-sized copy."""
    if arr.flags.c_contiguous:
        return arr.reshape(-1)[start:stop]
    return np.asarray(arr.flat[start:stop])


def _plain(x: Any) -> Any:
    """A numpy (or ml_dtypes) scalar as the Python value people read: 3, True, 'cat'."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (str, bytes)):
        return x
    try:
        return int(x)
    except (TypeError, ValueError):
        return x


def _as_wide_int(x: np.ndarray) -> np.ndarray:
    return x.astype(np.uint64 if x.dtype == np.uint64 else np.int64)


def _exact_absdiff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x - y| as uint64 without overflow, for two int64 or two uint64 arrays: the true difference of
    ordered values fits in [0, 2**64) and modular uint64 subtraction gives it exactly."""
    hi, lo = np.maximum(x, y), np.minimum(x, y)
    return hi.astype(np.uint64) - lo.astype(np.uint64)


def _ulp_keys(x: np.ndarray, view: type) -> np.ndarray:
    """Map IEEE bits to integers that increase with the value, with -0.0 and +0.0 both at 0."""
    s = x.view(view).astype(np.int64)
    return np.where(s < 0, _INT_MIN[view] - s, s)


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


class _Accumulator:
    """Running totals over chunks; ``finish`` turns them into Metrics."""

    def __init__(self, rtol: float, atol: float, ulp_view: type | None, numeric: bool) -> None:
        self.rtol, self.atol, self.ulp_view, self.numeric = rtol, atol, ulp_view, numeric
        self.mismatched = self.nan_mismatch = self.inf_mismatch = self.golden_nan = 0
        self.actual_nan = self.golden_inf = self.actual_inf = self.finite = 0
        self.max_abs, self.max_abs_at = -1.0, None
        self.max_rel, self.max_rel_at = 0.0, None
        self.req_rtol = 0.0
        self.dot = self.gg = self.aa = self.ee = 0.0
        self.max_ulp = 0
        self.first_at: int | None = None
        self.first_values: list[str] | None = None

    def _first_mismatch(self, g: np.ndarray, a: np.ndarray, differ: np.ndarray, offset: int) -> None:
        """Remember the first differing element of an exact output (its flat index and both values)."""
        if self.first_at is None and differ.any():
            i = int(np.argmax(differ))
            self.first_at = offset + i
            self.first_values = [repr(_plain(g[i])), repr(_plain(a[i]))]

    def add_float(self, g: np.ndarray, a: np.ndarray, offset: int) -> None:
        gf, af = g.astype(np.float64), a.astype(np.float64)
        gn, an = np.isnan(gf), np.isnan(af)
        finite = np.isfinite(gf) & np.isfinite(af)
        bad_inf = ~finite & ~gn & ~an & (gf != af)
        self.nan_mismatch += _count(gn != an)
        self.inf_mismatch += _count(bad_inf)
        self.golden_nan += _count(gn)
        self.actual_nan += _count(an)
        self.golden_inf += _count(np.isinf(gf))
        self.actual_inf += _count(np.isinf(af))
        self.finite += _count(finite)
        d, absg = np.abs(af - gf), np.abs(gf)
        close = (d <= self.atol) | (d <= self.atol + self.rtol * absg)  # NaN limits (inf*0) fail
        self.mismatched += _count((gn != an) | bad_inf | (finite & ~close))
        pos = None if finite.all() else np.flatnonzero(finite)
        if pos is not None:
            gf, af, d, absg = gf[pos], af[pos], d[pos], absg[pos]
        self._stats(gf, af, d, absg, offset, pos)
        if self.ulp_view is not None:
            self._ulp(g, a, pos)

    def add_int(self, g: np.ndarray, a: np.ndarray, offset: int) -> None:
        gi, ai = _as_wide_int(g), _as_wide_int(a)
        differ = gi != ai
        self.mismatched += _count(differ)
        self._first_mismatch(g, a, differ, offset)
        self.finite += gi.size
        gf, af = gi.astype(np.float64), ai.astype(np.float64)
        exact = gi.dtype == ai.dtype
        d = _exact_absdiff(gi, ai).astype(np.float64) if exact else np.abs(af - gf)
        self._stats(gf, af, d, np.abs(gf), offset, None)

    def add_other(self, g: np.ndarray, a: np.ndarray, offset: int) -> None:
        differ = np.asarray(g.astype(object) != a.astype(object), dtype=bool)
        self.mismatched += _count(differ)
        self._first_mismatch(g, a, differ, offset)

    def _stats(self, gf, af, d, absg, offset: int, pos: np.ndarray | None) -> None:
        if d.size == 0:
            return
        where = (lambda i: offset + int(i)) if pos is None else (lambda i: offset + int(pos[i]))
        i = int(np.argmax(d))
        if d[i] > self.max_abs:
            self.max_abs, self.max_abs_at = float(d[i]), where(i)
        self._relative(d, absg, where)
        diff = af - gf
        self.dot += float(np.dot(gf, af))
        self.gg += float(np.dot(gf, gf))
        self.aa += float(np.dot(af, af))
        self.ee += float(np.dot(diff, diff))

    def _relative(self, d, absg, where) -> None:
        big = np.flatnonzero(absg > self.atol)
        if big.size:
            rel = d[big] / absg[big]
            j = int(np.argmax(rel))
            if rel[j] > self.max_rel or self.max_rel_at is None:
                self.max_rel, self.max_rel_at = float(rel[j]), where(big[j])
        over = d > self.atol
        if over.any():
            g_over = absg[over]
            if (g_over == 0).any():
                self.req_rtol = math.inf
            else:
                self.req_rtol = max(self.req_rtol, float(np.max((d[over] - self.atol) / g_over)))

    def _ulp(self, g: np.ndarray, a: np.ndarray, pos: np.ndarray | None) -> None:
        kg, ka = _ulp_keys(g, self.ulp_view), _ulp_keys(a, self.ulp_view)
        if pos is not None:
            kg, ka = kg[pos], ka[pos]
        if kg.size:
            self.max_ulp = max(self.max_ulp, int(np.max(_exact_absdiff(kg, ka))))

    # --- fast paths: same-dtype float chunks; any sub-block with NaN/Inf (or energies that overflow)
    # goes through add_float above, so the results are those of the exact path ---

    def add_float_numpy(self, g: np.ndarray, a: np.ndarray, offset: int) -> None:
        """Same float64 element arithmetic as ``add_float`` (so identical counts, indices and values),
        but on L2-sized sub-blocks with reused scratch buffers, no boolean fancy indexing, and the
        mask-dependent work (mismatches, required_rtol, opposite-sign ULP pairs) done only where needed."""
        for s in range(0, g.size, _BLOCK):
            gs, as_ = g[s:s + _BLOCK], a[s:s + _BLOCK]
            if not self._numpy_block(gs, as_, offset + s):
                self.add_float(gs, as_, offset + s)

    def add_float_numba(self, g: np.ndarray, a: np.ndarray, offset: int) -> None:
        """One fused pass (harness.compare.fused); a chunk with NaN/Inf goes to the numpy path, whose
        sub-blocks holding them go to the exact path."""
        gf, af = g, a
        if g.dtype == np.float16:  # numba has no float16 arithmetic: widen (exactly) into scratch
            if getattr(self, "_f32", None) is None or self._f32[0].size < g.size:
                self._f32 = (np.empty(g.size, np.float32), np.empty(g.size, np.float32))
            gf, af = self._f32[0][:g.size], self._f32[1][:g.size]
            np.copyto(gf, g)
            np.copyto(af, a)
        rel_to_beat = -1.0 if self.max_rel_at is None else self.max_rel  # the kernel skips what cannot win
        res = _fused.float_chunk(gf, af, g.view(self.ulp_view), a.view(self.ulp_view), self.rtol, self.atol,
                                 self.max_abs, rel_to_beat, self.req_rtol)
        if res is None:
            self.add_float_numpy(g, a, offset)
            return
        max_abs, abs_at, max_rel, rel_at, req, gg, aa, ga, ee, mismatched, max_ulp = res
        self.mismatched += mismatched
        self.finite += g.size  # the kernel only answers for chunks that are finite throughout
        if abs_at >= 0 and max_abs > self.max_abs:
            self.max_abs, self.max_abs_at = max_abs, offset + abs_at
        if rel_at >= 0 and (max_rel > self.max_rel or self.max_rel_at is None):
            self.max_rel, self.max_rel_at = max_rel, offset + rel_at
        self.req_rtol = max(self.req_rtol, req)
        self.gg += gg
        self.aa += aa
        self.dot += ga
        self.ee += ee
        self.max_ulp = max(self.max_ulp, max_ulp)

    def _scratch(self, n: int) -> tuple[np.ndarray, ...]:
        if getattr(self, "_bufs", None) is None or self._bufs[0].size < n:
            size = n  # callers pass blocks of at most _BLOCK elements
            self._bufs = (np.empty(size), np.empty(size), np.empty(size), np.empty(size), np.empty(size, bool))
        return tuple(b[:n] for b in self._bufs)

    def _numpy_block(self, g: np.ndarray, a: np.ndarray, offset: int) -> bool:
        n = g.size
        gbuf, abuf, d, r, mask = self._scratch(n)
        if g.dtype == np.float64:
            gf, af = g, a
        else:
            gf, af = gbuf, abuf
            np.copyto(gf, g)
            np.copyto(af, a)
        np.subtract(af, gf, out=d)
        ee, gg, aa, ga = (float(np.dot(x, y)) for x, y in ((d, d), (gf, gf), (af, af), (gf, af)))
        if not math.isfinite(ee + gg + aa + ga):
            return False  # NaN/Inf somewhere (or energies past float64 range): the exact path decides
        self.finite += n
        self.ee += ee
        self.gg += gg
        self.aa += aa
        self.dot += ga
        np.abs(d, out=d)
        i = int(np.argmax(d))
        if d[i] > self.max_abs:
            self.max_abs, self.max_abs_at = float(d[i]), offset + i
        absg = abuf if gf is gbuf else gbuf  # a float64 buffer no longer needed (a's copy) or unused
        np.abs(gf, out=absg)
        if d[i] > self.atol:  # some element may fail or need rtol: exact rule on those elements only
            over = np.flatnonzero(np.greater(d, self.atol, out=mask))
            dx, gx = d[over], absg[over]
            self.mismatched += _count(~((dx <= self.atol) | (dx <= self.atol + self.rtol * gx)))
            if (gx == 0).any():
                self.req_rtol = math.inf
            else:
                self.req_rtol = max(self.req_rtol, float(np.max((dx - self.atol) / gx)))
        np.greater(absg, self.atol, out=mask)
        r.fill(-1.0)
        np.divide(d, absg, out=r, where=mask)
        j = int(np.argmax(r))
        if r[j] >= 0 and (r[j] > self.max_rel or self.max_rel_at is None):
            self.max_rel, self.max_rel_at = float(r[j]), offset + j
        if self.ulp_view is not None:
            self._ulp_same_width(g, a)
        return True

    def _ulp_same_width(self, g: np.ndarray, a: np.ndarray) -> None:
        """ULP distance in the native integer width: for same-sign pairs it is |bits(a) - bits(g)|, which
        cannot overflow; the (rare) opposite-sign pairs, signed zeros included, use the exact key map."""
        view = self.ulp_view
        gi, ai = g.view(view), a.view(view)
        n = gi.size
        if getattr(self, "_ibufs", None) is None or self._ibufs[0].dtype != view or self._ibufs[0].size < n:
            self._ibufs = (np.empty(n, view), np.empty(n, view))
        x, diff = self._ibufs[0][:n], self._ibufs[1][:n]
        np.bitwise_xor(gi, ai, out=x)
        np.subtract(ai, gi, out=diff)
        if int(x.min()) < 0:
            mixed = np.flatnonzero(x < 0)
            kg, ka = _ulp_keys(g[mixed], view), _ulp_keys(a[mixed], view)
            self.max_ulp = max(self.max_ulp, int(np.max(_exact_absdiff(kg, ka))))
            diff[mixed] = 0
        self.max_ulp = max(self.max_ulp, int(diff.max()), -int(diff.min()))

    def finish(self, shape: tuple[int, ...], total: int) -> Metrics:
        def index(flat: int | None) -> list[int] | None:
            return None if flat is None else [int(v) for v in np.unravel_index(flat, shape)]

        max_abs = max(self.max_abs, 0.0)
        # With no finite pair there is no difference to measure: None, never a perfect-looking 0.0.
        measured = not self.numeric or total == 0 or self.finite > 0
        notes = {} if measured else {name: self._no_finite_reason() for name in _SIGNAL_FIELDS}
        if self.numeric and measured and self.gg == 0 and self.ee != 0:
            notes["snr_db"] = "the expected output is all zero"
        # A NaN or Inf the other side lacks fails under any rtol/atol: no "minimum tolerance" figure then.
        passable = not (self.nan_mismatch or self.inf_mismatch)
        if not passable:
            notes["required_atol"] = notes["required_rtol"] = (
                f"no tolerance passes: {self.nan_mismatch + self.inf_mismatch} non-finite mismatch(es)")
        return Metrics(
            total=total,
            mismatched=self.mismatched,
            mismatch_fraction=self.mismatched / total if total else 0.0,
            max_abs_diff=max_abs if measured else None,
            max_abs_index=index(self.max_abs_at),
            max_rel_diff=self.max_rel if measured else None,
            max_rel_index=index(self.max_rel_at),
            required_atol=max_abs if measured and passable else None,
            required_rtol=self.req_rtol if measured and passable else None,
            cosine=self._cosine() if self.numeric and measured else None,
            snr_db=self._snr() if self.numeric and measured else None,
            max_ulp=self.max_ulp if self.ulp_view is not None and measured else None,
            nan_mismatch=self.nan_mismatch,
            inf_mismatch=self.inf_mismatch,
            golden_nan_count=self.golden_nan,
            finite_pairs=self.finite if self.numeric else None,
            actual_nan_count=self.actual_nan,
            golden_inf_count=self.golden_inf,
            actual_inf_count=self.actual_inf,
            notes=notes,
            first_mismatch_index=index(self.first_at),
            first_mismatch=self.first_values,
        )

    def _no_finite_reason(self) -> str:
        parts = []
        for side, nan, inf in (("actual", self.actual_nan, self.actual_inf), ("golden", self.golden_nan, self.golden_inf)):
            parts += [f"{n} {what} in {side}" for n, what in ((nan, "NaN"), (inf, "Inf")) if n]
        return "no element finite on both sides: " + ", ".join(parts)

    def _cosine(self) -> float:
        if self.gg == 0 or self.aa == 0:
            return 1.0 if self.gg == self.aa else 0.0
        norm = math.sqrt(self.gg * self.aa)  # exact for identical tensors, so they report 1.0
        if not math.isfinite(norm) or norm == 0:
            norm = math.sqrt(self.gg) * math.sqrt(self.aa)
        return max(-1.0, min(1.0, self.dot / norm))

    def _snr(self) -> float | None:
        if self.ee == 0:
            return math.inf
        if self.gg == 0:
            return None
        return 10.0 * math.log10(self.gg / self.ee)


def compute_metrics(
    golden: np.ndarray,
    actual: np.ndarray,
    rtol: float,
    atol: float,
    *,
    chunk_elems: int = 1 << 20,
    topk: int | None = None,
    engine: str = "auto",
) -> Metrics:
    """Compare two same-shape tensors; the caller has already checked shapes.

    ``engine`` picks how same-dtype float16/32/64 pairs are scanned: "exact" (the reference per-chunk
    float64 code), "numpy" (the same arithmetic on cache-sized blocks), "numba" (one fused loop; needs
    numba) or "auto" (numba when importable, else numpy). Chunks holding NaN/Inf always take the exact
    code, and every engine gives the same counts, indices and per-element values."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "numba" and _load_fused() is None:
        raise RuntimeError("engine='numba' needs numba installed")
    category = pair_category(golden.dtype, actual.dtype)
    same = golden.dtype == actual.dtype
    ulp_view = _ULP_VIEWS.get(golden.dtype.name) if same and category == "float" else None
    acc = _Accumulator(rtol, atol, ulp_view, numeric=category != "other")
    add = {"float": acc.add_float, "int": acc.add_int, "other": acc.add_other}[category]
    if category == "float" and same and golden.dtype.name in _FAST_FLOATS and engine != "exact":
        use = fast_engine(int(golden.size)) if engine == "auto" else engine
        add = acc.add_float_numba if use == "numba" else acc.add_float_numpy
    total = int(golden.size)
    step = max(1, int(chunk_elems))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for start in range(0, total, step):
            stop = min(total, start + step)
            add(_chunk(golden, start, stop), _chunk(actual, start, stop), start)
        metrics = acc.finish(golden.shape, total)
        if topk is not None and category != "other":
            metrics.topk = int(topk)
            nan_sides = [side for side, n in (("actual", metrics.actual_nan_count),
                                              ("golden", metrics.golden_nan_count)) if n]
            if nan_sides:  # NaN has no rank (np.argmax picks it), so agreement would mean nothing
                metrics.notes["topk_agreement"] = "NaN in " + " and ".join(nan_sides)
            else:
                metrics.topk_agreement = topk_agreement(golden, actual, int(topk), chunk_elems=step)
    return metrics


def topk_agreement(golden: np.ndarray, actual: np.ndarray, k: int, *, chunk_elems: int = 1 << 20) -> float | None:
    """Fraction of rows (leading axes; last axis = classes) whose actual argmax is in the golden top-k.

    "In the top-k" means: fewer than k golden entries rank above it, where ties rank by lower index
    first (so k=1 is exactly "argmax agrees", first occurrence winning as in np.argmax).
    None when there is no class axis to rank along."""
    if golden.ndim < 1 or golden.shape[-1] < 2 or golden.size == 0:
        return None
    classes = golden.shape[-1]
    rows = golden.size // classes
    if classes > chunk_elems:
        agree = sum(_long_row_agrees(golden, actual, r * classes, classes, k, chunk_elems) for r in range(rows))
        return agree / rows
    step, agree = max(1, chunk_elems // classes), 0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        g = _chunk(golden, r0 * classes, r1 * classes).astype(np.float64).reshape(-1, classes)
        a = _chunk(actual, r0 * classes, r1 * classes).astype(np.float64).reshape(-1, classes)
        agree += _count(_rows_agreeing(g, np.argmax(a, axis=1), k))
    return agree / rows


def _rows_agreeing(g: np.ndarray, a_top1: np.ndarray, k: int) -> np.ndarray:
    picked = g[np.arange(g.shape[0]), a_top1][:, None]
    before = np.arange(g.shape[1])[None, :] < a_top1[:, None]
    rank = np.count_nonzero((g > picked) | ((g == picked) & before), axis=1)
    return rank < k


def _long_row_agrees(golden, actual, base: int, classes: int, k: int, step: int) -> bool:
    """One row too long for a chunk: argmax of actual, then the golden rank of that index, both chunked."""
    best, best_at = -math.inf, 0
    for c0 in range(0, classes, step):
        a = _chunk(actual, base + c0, base + min(classes, c0 + step)).astype(np.float64)
        j = int(np.argmax(a))
        if a[j] > best or (math.isnan(a[j]) and not math.isnan(best)):
            best, best_at = float(a[j]), c0 + j
    picked = float(_chunk(golden, base + best_at, base + best_at + 1).astype(np.float64)[0])
    rank = 0
    for c0 in range(0, classes, step):
        g = _chunk(golden, base + c0, base + min(classes, c0 + step)).astype(np.float64)
        before = np.arange(c0, c0 + g.size) < best_at
        rank += _count((g > picked) | ((g == picked) & before))
    return rank < k
