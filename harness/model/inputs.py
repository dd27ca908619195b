"""Seeded, dtype-aware inputs generated from a model's signature, for cases without stored inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from harness.errors import ModelError, UsageError
from harness.model.loader import TensorSig

# Value ranges per dtype kind: floats centred on zero, small non-negative ints (token ids, lengths, indices
# rarely tolerate negatives), bools half and half.
_FLOAT_RANGE = (-1.0, 1.0)
_INT_RANGE = (0, 10)
# Generated inputs are a test's, not a benchmark's: a data set over this is a typo in --dim or case.json dims
# (batch=100000000 asked for 23.8 GiB), refused with its size rather than left to exhaust the host's memory.
MAX_GENERATED_BYTES = 2 << 30


def bind_shape(sig: TensorSig, dims: Mapping[str, int], case: str) -> tuple[int, ...]:
    shape = []
    for position, dim in enumerate(sig.shape):
        if isinstance(dim, int) and dim >= 0:
            shape.append(dim)
        elif isinstance(dim, str) and dim in dims:
            shape.append(int(dims[dim]))
        elif isinstance(dim, int):
            raise ModelError(f"case {case!r}: input {sig.name!r} declares dimension {dim} (axis {position}), and a "
                             f"dimension cannot be negative: the model is invalid",
                             hint="fix the model: make the axis a fixed size >= 0 or a named symbolic dimension")
        elif dim is None or (isinstance(dim, str) and not dim):
            shape.append(1)  # an unnamed unknown dimension: the smallest legal value
        else:
            raise UsageError(f"case {case!r}: input {sig.name!r} has symbolic dimension {dim!r} (axis {position}) "
                             f"with no value", hint=f"pass --dim {dim}=N or add it to the case's case.json 'dims'")
    return tuple(shape)


def generate_inputs(inputs: list[TensorSig], *, case: str, seed: int, dims: Mapping[str, int],
                    ranges: Mapping[str, Mapping[str, float]]) -> dict[str, np.ndarray]:
    for sig in inputs:
        if sig.dtype is None:
            raise UsageError(f"case {case!r}: input {sig.name!r} is not a tensor; inputs cannot be generated for it",
                             hint="store inputs in test_data_set_0/ instead")
    shapes = {sig.name: bind_shape(sig, dims, case) for sig in inputs}
    _check_size(inputs, shapes, case)
    rng = np.random.default_rng(seed)
    return {sig.name: _values(rng, sig.dtype, shapes[sig.name], ranges.get(sig.name), f"case {case!r}: input {sig.name!r}")
            for sig in inputs}


def _check_size(inputs: list[TensorSig], shapes: Mapping[str, tuple[int, ...]], case: str) -> None:
    sizes = {sig.name: math.prod(shapes[sig.name]) * np.dtype(sig.dtype).itemsize for sig in inputs}
    total = sum(sizes.values())
    if total > MAX_GENERATED_BYTES:
        largest = max(sizes, key=sizes.get)
        raise UsageError(f"case {case!r}: generated inputs would take {total / 2**30:.1f} GiB (input {largest!r} "
                         f"shape {list(shapes[largest])}), over the {MAX_GENERATED_BYTES >> 30} GiB cap per data set",
                         hint="pass smaller --dim values, or store the inputs in test_data_set_0/")


def symbolic_dims(inputs: list[TensorSig]) -> set[str]:
    """The named symbolic dimensions of a model's inputs: what --dim can bind."""
    return {d for sig in inputs for d in sig.shape if isinstance(d, str) and d}


def unused_dims(dims: Mapping[str, int], generated: list[list[TensorSig]]) -> list[str]:
    """The --dim names that no generated input uses (``generated``: the inputs of each case whose inputs are
    generated; a case with stored inputs binds no dim). Such a --dim changes nothing, silently."""
    used = set().union(*(symbolic_dims(inputs) for inputs in generated)) if generated else set()
    return sorted(set(dims) - used)


def _values(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...],
            rng_spec: Mapping[str, float] | None, where: str) -> np.ndarray:
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        low, high = (rng_spec["low"], rng_spec["high"]) if rng_spec else _INT_RANGE
        low, high = math.ceil(low), math.ceil(high)  # integers in [low, high)
        if low >= high:
            raise UsageError(f"{where}: integer range [{rng_spec['low']}, {rng_spec['high']}) holds no integer",
                             hint="fix input_ranges in the case's case.json")
        return rng.integers(low, high, size=shape, dtype=np.int64).astype(dtype)
    if dtype.kind in "fV" or dtype.name.startswith(("bfloat", "float8")):
        low, high = (rng_spec["low"], rng_spec["high"]) if rng_spec else _FLOAT_RANGE
        return rng.uniform(low, high, size=shape).astype(dtype)
    raise UsageError(f"{where}: inputs of dtype {dtype} cannot be generated", hint="store inputs in test_data_set_0/ instead")
