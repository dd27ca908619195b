"""The scope rule: error relative to the tensor's magnitude, allowance for the error its inputs carry."""

from __future__ import annotations

import math

import numpy as np

from harness.compare.tolerances import Tolerance
from harness.localize.scope import amplification, base_of, judge


def test_error_is_relative_to_the_tensors_largest_magnitude_not_elementwise() -> None:
    ref = np.array([1000.0, 0.0, 1e-6], np.float32)
    act = np.array([1000.5, 0.01, 2e-6], np.float32)
    e = judge("t", ref, act, carried=0.0, base=1e-3, growth=4)
    assert math.isclose(e.error, 0.5 / 1000, rel_tol=1e-3) and not e.beyond  # near-zero elements do not explode


def test_inherited_error_raises_the_allowance_by_the_growth_factor() -> None:
    ref = np.ones(4, np.float32)
    act = ref * np.float32(1.03)
    assert judge("t", ref, act, carried=0.0, base=1e-2, growth=4).beyond
    assert not judge("t", ref, act, carried=1e-2, base=1e-2, growth=4).beyond  # allowed 0.01 + 4 * 0.01


def test_a_nan_or_inf_the_reference_lacks_is_infinite_error() -> None:
    ref = np.array([1.0, 2.0], np.float32)
    e = judge("t", ref, np.array([1.0, np.inf], np.float32), carried=0.0, base=1e-2, growth=4)
    assert math.isinf(e.error) and e.beyond and "Inf" in e.non_finite


def test_a_wider_or_narrower_dtype_is_compared_by_value() -> None:
    ref = np.linspace(-1, 1, 16, dtype=np.float32)
    e = judge("t", ref, ref.astype(np.float16), carried=0.0, base=1e-2, growth=4)
    assert e.actual_dtype == "float16" and 0 < e.error < 1e-3


def test_base_follows_the_profiles_gate() -> None:
    assert base_of(Tolerance(rtol=5e-2, atol=1e-2)) == 5e-2
    assert math.isclose(base_of(Tolerance(rtol=0, atol=0, elementwise=False, min_snr_db=20)), 0.1)
    assert math.isclose(base_of(Tolerance(rtol=0, atol=0, elementwise=False, min_cosine=0.995)), 0.1)


def test_amplification_is_floored_at_base_and_a_carried_nan_scores_one() -> None:
    assert amplification(0.2, 0.0, 0.05) == 4.0
    assert amplification(0.2, 0.1, 0.05) == 2.0
    assert amplification(math.inf, math.inf, 0.05) == 1.0
    assert math.isinf(amplification(math.inf, 0.1, 0.05))
