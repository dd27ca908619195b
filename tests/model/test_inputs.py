"""Generated inputs: seeded, dtype-aware, ranges from case.json, symbolic dims bound or refused."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError
from harness.model.inputs import bind_shape, generate_inputs
from harness.model.loader import TensorSig

SIGS = [TensorSig("x", np.dtype(np.float32), ("N", 4)), TensorSig("ids", np.dtype(np.int64), ("N", "T")),
        TensorSig("mask", np.dtype(np.bool_), (2,)), TensorSig("h", np.dtype(np.float16), (None, 3))]
DIMS = {"N": 3, "T": 5}


def _gen(seed: int = 0, ranges=None, dims=DIMS, sigs=SIGS):
    return generate_inputs(sigs, case="c", seed=seed, dims=dims, ranges=ranges or {})


def test_shapes_and_dtypes_follow_the_signature() -> None:
    out = _gen()
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "x": (np.float32, (3, 4)), "ids": (np.int64, (3, 5)), "mask": (np.bool_, (2,)), "h": (np.float16, (1, 3))}
    assert -1 <= out["x"].min() and out["x"].max() < 1
    assert 0 <= out["ids"].min() and out["ids"].max() < 10


def test_same_seed_same_values_other_seed_other_values() -> None:
    first, again, other = _gen(0), _gen(0), _gen(1)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["x"], other["x"])


def test_ranges_from_the_manifest_are_respected() -> None:
    out = _gen(ranges={"ids": {"low": 100, "high": 104}, "x": {"low": 5.0, "high": 6.0}},
               dims={"N": 64, "T": 64})
    assert out["ids"].min() >= 100 and out["ids"].max() < 104
    assert set(np.unique(out["ids"])) == {100, 101, 102, 103}
    assert out["x"].min() >= 5.0 and out["x"].max() < 6.0


def test_missing_symbolic_dim_names_the_flag() -> None:
    with pytest.raises(UsageError, match=r"symbolic dimension 'T' \(axis 1\)") as info:
        _gen(dims={"N": 2})
    assert "--dim T=N" in info.value.one_line()


def test_bind_shape() -> None:
    sig = TensorSig("x", np.dtype(np.float32), (2, "B", None, ""))
    assert bind_shape(sig, {"B": 7}, "c") == (2, 7, 1, 1)


@pytest.mark.parametrize("sig", [TensorSig("s", None, ()), TensorSig("t", np.dtype("U"), (2,))])
def test_inputs_that_cannot_be_generated(sig: TensorSig) -> None:
    with pytest.raises(UsageError, match=f"case 'c': input '{sig.name}'") as info:
        _gen(sigs=[sig])
    assert "store inputs in test_data_set_0/" in info.value.one_line()


def test_an_integer_range_without_integers_is_refused() -> None:
    import numpy as np
    import pytest

    from harness.errors import UsageError
    from harness.model.inputs import generate_inputs
    from harness.model.loader import TensorSig
    sig = TensorSig("ids", np.dtype(np.int64), (3,))
    with pytest.raises(UsageError, match="holds no integer"):
        generate_inputs([sig], case="c", seed=0, dims={}, ranges={"ids": {"low": 0.2, "high": 0.7}})
    ids = generate_inputs([sig], case="c", seed=0, dims={}, ranges={"ids": {"low": 0.2, "high": 1.7}})["ids"]
    assert set(ids.tolist()) == {1}


def test_a_negative_fixed_dim_is_a_broken_model_not_a_missing_dim() -> None:
    """-3 is no name to bind with --dim: the model itself declares an impossible shape."""
    from harness.errors import ModelError
    sig = TensorSig("x", np.dtype(np.float32), (-3, 4))
    with pytest.raises(ModelError) as info:
        bind_shape(sig, {"-3": 2}, "c")
    assert info.value.message == ("case 'c': input 'x' declares dimension -3 (axis 0), and a dimension cannot be "
                                  "negative: the model is invalid")
    assert "--dim" not in info.value.one_line() and "fix the model" in info.value.hint
