"""Structured inputs for the text formats: JSON and TOML-shaped values built from the keys each loader knows,
with values of every JSON type, so the fuzzer reaches past the parser into the checks behind it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=6)


def keyed(keys: list[str], values: st.SearchStrategy[Any] = JSON) -> st.SearchStrategy[dict[str, Any]]:
    """A dict over some of ``keys`` (and now and then an unknown one), each with any value."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), values, max_size=6)


def json_bytes(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON text as a loader reads it; NaN and Infinity are written as Python's json module writes them."""
    return values.map(lambda v: json.dumps(v).encode())
