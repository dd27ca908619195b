import ml_dtypes
import numpy as np
import pytest

from harness.compare.tolerances import (
    Tolerance,
    ToleranceOverride,
    default_tolerance,
    resolve_tolerance,
)
from harness.errors import ProfileError

WHERE = "device_profiles/cpu.toml [tolerance.float32]"


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.float64, (1e-7, 1e-7)),
        (np.float32, (1e-4, 1e-5)),
        (np.float16, (1e-2, 1e-3)),
        (ml_dtypes.bfloat16, (2e-2, 1e-3)),
        (ml_dtypes.float8_e4m3fn, (1.25e-1, 1e-2)),
        (ml_dtypes.float8_e5m2, (1.25e-1, 1e-2)),
        (np.int64, (0.0, 0.0)),
        (np.uint8, (0.0, 0.0)),
        (np.bool_, (0.0, 0.0)),
        (np.str_, (0.0, 0.0)),
        (object, (0.0, 0.0)),
    ],
)
def test_default_table(dtype, expected):
    tol = default_tolerance(dtype, dtype)
    assert (tol.rtol, tol.atol) == expected


def test_default_accepts_names():
    assert default_tolerance("bfloat16", "bfloat16") == default_tolerance(ml_dtypes.bfloat16, ml_dtypes.bfloat16)
    assert default_tolerance("float32", np.dtype("float32")).rtol == 1e-4


def test_looser_wins():
    tol = default_tolerance(np.float32, np.float16)
    assert (tol.rtol, tol.atol) == (1e-2, 1e-3)
    assert default_tolerance(np.float16, np.float32) == tol


def test_looser_wins_per_field():
    tol = default_tolerance(np.float64, np.int32)
    assert (tol.rtol, tol.atol) == (1e-7, 1e-7)


def test_tolerance_defaults():
    tol = Tolerance(1e-4, 1e-5)
    assert tol.min_cosine is None and tol.min_snr_db is None and tol.min_topk_agreement is None
    assert tol.topk == 1 and tol.max_mismatch_fraction == 0.0


def test_merged_replaces_only_set_fields():
    base = Tolerance(1e-4, 1e-5, min_cosine=0.99)
    out = base.merged(ToleranceOverride(min_snr_db=30.0))
    assert out == Tolerance(1e-4, 1e-5, min_cosine=0.99, min_snr_db=30.0)
    assert base.min_snr_db is None  # frozen, untouched


def test_merged_rtol_atol():
    out = Tolerance(1e-4, 1e-5).merged(ToleranceOverride(rtol=1e-2, atol=1e-3, topk=5))
    assert (out.rtol, out.atol, out.topk) == (1e-2, 1e-3, 5)


def test_resolve_later_wins_and_skips_none():
    first = ToleranceOverride(rtol=1e-2, atol=1e-3, min_cosine=0.9)
    second = ToleranceOverride(min_cosine=0.99)
    tol = resolve_tolerance(np.float32, np.float32, [first, None, second])
    assert (tol.rtol, tol.atol, tol.min_cosine) == (1e-2, 1e-3, 0.99)


def test_resolve_without_overrides_is_default():
    assert resolve_tolerance(np.float16, np.float32, []) == default_tolerance(np.float16, np.float32)


def test_describe_basic():
    assert Tolerance(1e-4, 1e-5).describe() == "rtol=1e-04 atol=1e-05"


def test_describe_gates():
    text = Tolerance(1.6e-2, 0.0, min_cosine=0.999, min_snr_db=30, min_topk_agreement=0.9, topk=5).describe()
    assert text.startswith("rtol=1.6e-02 atol=0")
    assert "cosine>=0.999" in text and "snr>=30 dB" in text and "top-5 agreement>=0.9" in text


def test_override_from_mapping_ok():
    o = ToleranceOverride.from_mapping({"rtol": 1e-3, "atol": 0, "min_cosine": 0.99, "topk": 5}, WHERE)
    assert o == ToleranceOverride(rtol=1e-3, atol=0.0, min_cosine=0.99, topk=5)
    assert o.to_dict() == {"rtol": 1e-3, "atol": 0.0, "min_cosine": 0.99, "topk": 5}


def test_override_to_dict_only_set():
    assert ToleranceOverride().to_dict() == {}
    assert ToleranceOverride(min_snr_db=20.0).to_dict() == {"min_snr_db": 20.0}


def test_override_unknown_key_did_you_mean():
    with pytest.raises(ProfileError) as info:
        ToleranceOverride.from_mapping({"rtoll": 1e-3, "atol": 1e-5}, WHERE)
    assert "did you mean 'rtol'" in info.value.message
    assert WHERE in info.value.message


def test_override_rtol_without_atol():
    with pytest.raises(ProfileError, match="together"):
        ToleranceOverride.from_mapping({"rtol": 1e-3}, WHERE)


def test_override_atol_without_rtol():
    with pytest.raises(ProfileError, match="together"):
        ToleranceOverride.from_mapping({"atol": 1e-3}, WHERE)


def test_override_gate_alone_is_fine():
    assert ToleranceOverride.from_mapping({"min_cosine": 0.99}, WHERE).rtol is None


@pytest.mark.parametrize("key", ["rtol", "min_snr_db", "max_mismatch_fraction"])
def test_override_negative(key):
    d = {key: -1.0, "atol": 1e-5} if key == "rtol" else {key: -1.0}
    with pytest.raises(ProfileError, match="negative") as info:
        ToleranceOverride.from_mapping(d, WHERE)
    assert WHERE in info.value.message


@pytest.mark.parametrize("value", ["1e-3", None, True, [1], float("nan")])
def test_override_non_numeric(value):
    with pytest.raises(ProfileError, match="number"):
        ToleranceOverride.from_mapping({"min_cosine": value}, WHERE)


def test_override_fraction_above_one():
    with pytest.raises(ProfileError, match="fraction"):
        ToleranceOverride.from_mapping({"min_topk_agreement": 1.5}, WHERE)


def test_override_topk_must_be_int():
    with pytest.raises(ProfileError, match="topk"):
        ToleranceOverride.from_mapping({"topk": 2.5}, WHERE)


def test_tolerance_dict_round_trip():
    tol = Tolerance(1e-3, 1e-5, min_cosine=0.99, topk=5)
    assert Tolerance.from_dict(tol.to_dict()) == tol
