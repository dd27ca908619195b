"""A localisation as lines a person reads top to bottom: verdict, where, who, the repro, the pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

from harness.atomic import atomic_write_bytes
from harness.localize.search import Localization

TOP_SUSPECTS = 5


def _num(x: float | str) -> str:
    """Numbers as JSON holds them: 'inf' stays a word."""
    return x if isinstance(x, str) else ("inf" if math.isinf(x) else f"{x:.3g}")


def lines(found: Localization) -> list[str]:
    head = f"case {found.case!r}, profile {found.profile} vs {found.against}"
    if found.status == "passes":
        return [f"{head}: passes, nothing to localise", *found.notes]
    out = [f"{head}, test_data_set_{found.dataset}: "
           + "; ".join(f"output {o['output']!r} fails ({o['reasons'][0]})" for o in found.outputs[:3])]
    out.append(f"scope rule: {found.rule} (base {_num(found.base)}, growth {found.growth:g})")
    out.append(f"compared {len(found.tensors)} intermediate(s) in {found.batches} batch(es) of at most "
               f"{found.cap_bytes / 2**20:.3g} MiB per side (largest {found.largest_batch_bytes / 2**20:.3g} MiB)"
               + (f"; {found.skipped} renamed away by the profile's transform" if found.skipped > 0 else ""))
    if found.exposure:
        out.append(f"WARNING: {found.exposure['message']}")
    if found.fallback:
        out.append(f"fallback: {found.fallback['method']}: {found.fallback['runs']} run(s), first diverging "
                   f"tensor {found.fallback['first']!r} (node {found.fallback['node']!r})")
    if found.first:
        e = found.first["error"]
        out.append(f"first beyond its tolerance: tensor {found.first['tensor']!r} from node {found.first['node']!r} "
                   f"({found.first['op_type']}) on {found.first['ep']}: error {_num(e['error'])} > allowed {_num(e['allowed'])}"
                   + (f"; {e['non_finite']}" if e["non_finite"] else ""))
    out.append("suspects by amplification (error out / max(error in, base)):")
    out += [f"  {i + 1}. {s.line()}" for i, s in enumerate(found.suspects[:TOP_SUSPECTS])]
    if found.repro:
        r = found.repro
        verdict = "fails alone" if r.fails_alone else "does NOT fail alone"
        out.append(f"repro: {r.path} ({len(r.nodes)} node(s): {', '.join(r.nodes[:6])}; model {r.model_bytes} bytes, "
                   f"folder {r.folder_bytes} bytes) {verdict}: {r.detail}")
        out.append(f"  reproduce with: harness run {r.path} --profile {found.profile}")
    if found.pass_blame:
        b = found.pass_blame
        out.append(f"optimiser pass: {', '.join(b.passes)} ({b.reason})" if b.passes
                   else f"optimiser pass: none named ({b.reason})")
    out += [f"note: {n}" for n in found.notes]
    return out


def write_json(found: Localization, path: Path) -> Path:
    """The localisation as versioned JSON (numbers only; no arrays: the repro folder holds those)."""
    atomic_write_bytes(path, (json.dumps(found.to_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n").encode())
    return path
