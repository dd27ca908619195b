"""Optional fused kernel for ``metrics``: one loop over a finite same-dtype float chunk computing every
float metric at once. Importing this module raises ImportError when numba is not installed; ``metrics``
then uses its numpy fast path instead.

Each element goes through exactly the float64 arithmetic of ``metrics._Accumulator.add_float`` (values
are widened to float64 first), so counts, indices and per-element values are identical; only the
summation order of the energies (gg, aa, ga, ee) differs.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def _jit(fn):
    """``cache=True`` where numba can find a writable cache location; a read-only install (no writable
    ``__pycache__`` and no user cache dir) makes numba refuse caching at decoration time, so fall back
    to compiling per process then."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # pragma: no cover - depends on the install location
        return numba.njit(nogil=True)(fn)


def _jit_reassoc(fn):
    try:
        return numba.njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})(fn)
    except RuntimeError:  # pragma: no cover - depends on the install location
        return numba.njit(nogil=True, fastmath={"reassoc", "nsz"})(fn)


@_jit_reassoc
def _energies(g, a):
    """sum g*g, a*a, g*a, (a-g)**2 in float64 on finite data; reassociation lets LLVM vectorise it
    (products and differences are still rounded exactly as in the exact path: no contraction)."""
    gg = aa = ga = ee = 0.0
    for i in range(g.size):
        gv = np.float64(g[i])
        av = np.float64(a[i])
        diff = av - gv
        gg += gv * gv
        aa += av * av
        ga += gv * av
        ee += diff * diff
    return gg, aa, ga, ee


@_jit
def _float_chunk(g, a, gi, ai, rtol, atol, mag_mask, out_f, out_i):
    """g, a: float32/float64 (float16 widened by the caller); gi, ai: the signed-int bit views of the
    original dtype. Returns False, leaving the outputs unspecified, when the chunk holds a NaN/Inf.

    out_f <- [max_abs, max_rel, req_rtol, gg, aa, ga, ee]; out_i <- [mismatched, max_abs_at, max_rel_at,
    req_rtol_inf, max_ulp]; indices are -1 when there is no candidate."""
    n = g.size
    mismatched = 0
    max_abs, max_abs_at = -1.0, -1
    max_rel, max_rel_at = -1.0, -1
    req, req_inf = 0.0, 0
    max_ulp = np.uint64(0)
    gg, aa, ga, ee = _energies(g, a)
    if not math.isfinite(gg + aa + ga + ee):
        return False  # a NaN/Inf in g or a (or energies past float64 range): the caller falls back
    for i in range(n):
        gv = np.float64(g[i])
        av = np.float64(a[i])
        d = abs(av - gv)
        absg = abs(gv)
        if not (d <= atol or d <= atol + rtol * absg):
            mismatched += 1
        if d > max_abs:
            max_abs, max_abs_at = d, i
        # d / absg > max_rel implies d >= fl(absg * max_rel) (rounding is monotone): divide only then
        if absg > atol and d >= absg * max_rel:
            rel = d / absg
            if rel > max_rel:
                max_rel, max_rel_at = rel, i
        if d > atol:
            if absg == 0.0:
                req_inf = 1
            else:
                q = (d - atol) / absg
                if q > req:
                    req = q
        # ULP distance on the monotone key map: |m(a) - m(g)| for same-sign bit patterns, m(a) + m(g)
        # across the sign (so -0.0 vs +0.0 is 0), with m the magnitude bits; fits in uint64.
        sg = np.int64(gi[i])
        sa = np.int64(ai[i])
        mg = sg & mag_mask
        ma = sa & mag_mask
        if (sg ^ sa) < 0:  # rare: opposite signs; the sum may need all 64 bits
            u = np.uint64(mg) + np.uint64(ma)
        else:  # both magnitudes < 2**63: the difference fits int64; abs() stays branch-free
            u = np.uint64(abs(ma - mg))
        if u > max_ulp:
            max_ulp = u
    out_f[0] = max_abs
    out_f[1] = max_rel
    out_f[2] = req
    out_f[3] = gg
    out_f[4] = aa
    out_f[5] = ga
    out_f[6] = ee
    out_i[0] = mismatched
    out_i[1] = max_abs_at
    out_i[2] = max_rel_at
    out_i[3] = req_inf
    out_i[4] = np.int64(max_ulp >> np.uint64(1))  # halved so it fits int64; low bit below
    out_i[5] = np.int64(max_ulp & np.uint64(1))
    return True


_MAG_MASK = {np.dtype(np.int16): 0x7FFF, np.dtype(np.int32): 0x7FFF_FFFF, np.dtype(np.int64): 0x7FFF_FFFF_FFFF_FFFF}


def float_chunk(g: np.ndarray, a: np.ndarray, gi: np.ndarray, ai: np.ndarray, rtol: float, atol: float):
    """Python-side wrapper: None when the chunk holds NaN/Inf, else
    (max_abs, max_abs_at, max_rel, max_rel_at, req_rtol, gg, aa, ga, ee, mismatched, max_ulp)."""
    out_f = np.empty(7)
    out_i = np.empty(6, np.int64)
    if not _float_chunk(g, a, gi, ai, float(rtol), float(atol), _MAG_MASK[gi.dtype], out_f, out_i):
        return None
    max_abs, max_rel, req, gg, aa, ga, ee = (float(x) for x in out_f)
    mismatched, abs_at, rel_at, req_inf, ulp_hi, ulp_lo = (int(x) for x in out_i)
    return (max_abs, abs_at, max_rel, rel_at, math.inf if req_inf else req, gg, aa, ga, ee, mismatched,
            2 * ulp_hi + ulp_lo)
