"""Optional fused kernel for ``metrics``: computes every float metric of a finite same-dtype float chunk
in a few passes over cache-sized blocks. Importing this module raises ImportError when numba is not
installed; ``metrics`` then uses its numpy fast path instead.

Each element goes through exactly the float64 arithmetic of ``metrics._Accumulator.add_float`` (values
are widened to float64 first), so counts, indices and per-element values are identical; only the
summation order of the energies (gg, aa, ga, ee) differs.

How it stays fast: each block of ``_BLOCK`` elements is read from memory once by a branch-free pass
that LLVM vectorises (energies, max |a-g|, "could this block hold a new max relative difference"), then
re-read from cache by other branch-free passes (ULP distance; mismatch count only when some |a-g| in the
block exceeds atol). The order-dependent results (first index of a maximum, the relative-difference and
required-rtol divisions, opposite-sign ULP pairs) are computed by scalar rescans of only the blocks that
can change them. Only the energy sums are reassociated (``_radd``); maxima and counts are exact in any
order: max |d| is taken on the float64 bit patterns, which order like the (non-negative) values.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_BLOCK = 4096  # elements per block: two float32 blocks (32 KiB) stay in L1/L2 between the passes


def _jit(fn):
    """``cache=True`` where numba can find a writable cache location; a read-only install (no writable
    ``__pycache__`` and no user cache dir) makes numba refuse caching at decoration time, so fall back
    to compiling per process then."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # pragma: no cover - depends on the install location
        return numba.njit(nogil=True)(fn)


@intrinsic
def _radd(typingctx, x, y):
    """x + y marked reassociable (and sign-of-zero insensitive) so that a running sum over a loop can be
    vectorised; nothing else gets fast-math flags (no contraction, no NaN assumptions)."""
    sig = types.float64(types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1], flags=("reassoc", "nsz"))

    return sig, codegen


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float64 as int64 (for x >= 0 it orders exactly like the value)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _from_bits(typingctx, x):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


# One function on purpose: numba compiles (and caches) each jitted function on its own, and splitting
# the passes below into helpers roughly doubled the cold compile time. Every pass walks one block
# through a fresh slice (range(block.size)) so that numba's negative-index wraparound, which would
# stop LLVM from vectorising, folds away.
@_jit
def _float_chunk(g, a, gi, ai, rtol, atol, mag_mask, max_abs, max_rel, req, out_f, out_i):
    """g, a: float32/float64 (float16 widened by the caller); gi, ai: the signed-int bit views of the
    original dtype. max_abs / max_rel / req: the values to beat (the caller's running results; -1.0
    when it has none yet). Returns False, leaving the outputs unspecified, when the chunk holds a
    NaN/Inf (or its energies overflow float64).

    out_f <- [max_abs, max_rel, req_rtol, gg, aa, ga, ee]; out_i <- [mismatched, max_abs_at, max_rel_at,
    req_rtol_inf, max_ulp >> 1, max_ulp & 1]; indices are -1 when nothing beat the value passed in."""
    n = g.size
    mismatched = 0
    max_abs_at = -1
    max_rel_at = -1
    req_inf = not math.isfinite(req)  # already inf: nothing left to find
    max_ulp = np.uint64(0)
    gg = aa = ga = ee = 0.0
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        gb = g[s:e]
        ab = a[s:e]
        m = gb.size
        # Pass 1 (branch-free, reads the block from memory): energies, the bit pattern of max |a-g|, and
        # whether some element with |g| > atol may have |a-g| / |g| > max_rel: fl(d / absg) > r implies
        # d >= fl(absg * r), since rounding is monotone (max_rel = -1.0 makes every such element one).
        bgg = baa = bga = bee = 0.0
        mbits = np.int64(0)
        rel_cand = False
        for i in range(m):
            gv = np.float64(gb[i])
            av = np.float64(ab[i])
            diff = av - gv
            bgg = _radd(bgg, gv * gv)
            baa = _radd(baa, av * av)
            bga = _radd(bga, gv * av)
            bee = _radd(bee, diff * diff)
            d = abs(diff)
            absg = abs(gv)
            mbits = max(mbits, _bits(d))
            rel_cand |= (absg > atol) & (d >= absg * max_rel)
        if not math.isfinite(bgg + baa + bga + bee):
            return False  # a NaN/Inf in g or a (or energies past float64 range): the caller falls back
        gg += bgg
        aa += baa
        ga += bga
        ee += bee
        bmax = _from_bits(mbits)
        if bmax > max_abs:  # strictly: an earlier block (or chunk) keeps a tie; first index in this one
            max_abs = bmax
            for i in range(m):
                if _bits(abs(np.float64(ab[i]) - np.float64(gb[i]))) == mbits:
                    max_abs_at = s + i
                    break
        if rel_cand:  # scalar rescan, dividing only where the division can win (first index on ties)
            for i in range(m):
                gv = np.float64(gb[i])
                d = abs(np.float64(ab[i]) - gv)
                absg = abs(gv)
                if absg > atol and d >= absg * max_rel:
                    rel = d / absg
                    if rel > max_rel:
                        max_rel, max_rel_at = rel, s + i
        if not bmax <= atol:  # some element may fail or need some rtol (written so a NaN atol gets here)
            # Pass 2 (branch-free, from cache): the exact mismatch rule, and whether some element may
            # need more than req: (d - atol) / absg > req implies d - atol >= absg * req as above.
            bad = 0
            req_cand = False
            for i in range(m):
                gv = np.float64(gb[i])
                d = abs(np.float64(ab[i]) - gv)
                absg = abs(gv)
                bad += not (d <= atol or d <= atol + rtol * absg)
                req_cand |= (d > atol) & ((d - atol) >= absg * req)
            mismatched += bad
            if req_cand and not req_inf:
                for i in range(m):
                    gv = np.float64(gb[i])
                    d = abs(np.float64(ab[i]) - gv)
                    if d > atol:
                        absg = abs(gv)
                        if absg == 0.0:
                            req_inf = True
                            break
                        if d - atol >= absg * req:
                            q = (d - atol) / absg
                            if q > req:
                                req = q
        # Pass 3 (branch-free, from cache): ULP distance. Same-sign pairs: |bits(a) - bits(g)|, exact in
        # int64. Opposite-sign pairs (rare) are flagged, then rescanned: m(a) + m(g) with m the magnitude
        # bits (so -0.0 vs +0.0 is 0); that sum may need all 64 bits, hence uint64.
        gib = gi[s:e]
        aib = ai[s:e]
        mu = np.int64(0)
        flag = np.int64(0)
        for i in range(m):
            sg = np.int64(gib[i])
            sa = np.int64(aib[i])
            x = sg ^ sa
            u = abs(sa - sg)
            mu = max(mu, u if x >= 0 else np.int64(0))
            flag |= x
        if np.uint64(mu) > max_ulp:
            max_ulp = np.uint64(mu)
        if flag < 0:
            for i in range(m):
                sg = np.int64(gib[i])
                sa = np.int64(aib[i])
                if (sg ^ sa) < 0:
                    uu = np.uint64(sg & mag_mask) + np.uint64(sa & mag_mask)
                    if uu > max_ulp:
                        max_ulp = uu
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


def float_chunk(g: np.ndarray, a: np.ndarray, gi: np.ndarray, ai: np.ndarray, rtol: float, atol: float,
                max_abs: float = -1.0, max_rel: float = -1.0, req: float = 0.0):
    """Python-side wrapper: None when the chunk holds NaN/Inf, else
    (max_abs, max_abs_at, max_rel, max_rel_at, req_rtol, gg, aa, ga, ee, mismatched, max_ulp).

    max_abs / max_rel / req are the values to beat (-1.0: none yet); an index is -1 when nothing in
    the chunk beat its value, and req_rtol is max(req, the chunk's)."""
    out_f = np.empty(7)
    out_i = np.empty(6, np.int64)
    if not _float_chunk(g, a, gi, ai, float(rtol), float(atol), _MAG_MASK[gi.dtype], float(max_abs),
                        float(max_rel), float(req), out_f, out_i):
        return None
    max_abs, max_rel, req, gg, aa, ga, ee = (float(x) for x in out_f)
    mismatched, abs_at, rel_at, req_inf, ulp_hi, ulp_lo = (int(x) for x in out_i)
    return (max_abs, abs_at, max_rel, rel_at, math.inf if req_inf else req, gg, aa, ga, ee, mismatched,
            2 * ulp_hi + ulp_lo)
