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


def test_a_narrower_output_is_judged_at_its_own_precision():
    tol = default_tolerance(np.float32, np.float16)  # a float16 device against a float32 golden
    assert (tol.rtol, tol.atol) == (1e-2, 1e-3)


def test_a_narrower_golden_does_not_loosen_the_output():
    """A float16 golden for a float32 output cannot excuse float16-sized errors in the output."""
    tol = default_tolerance(np.float16, np.float32)
    assert (tol.rtol, tol.atol) == (1e-4, 1e-5)
    assert default_tolerance(ml_dtypes.bfloat16, np.float32) == default_tolerance(np.float32, np.float32)


def test_a_wider_golden_asks_no_more_than_the_output_holds():
    assert default_tolerance(np.float64, np.float32) == default_tolerance(np.float32, np.float32)


def test_between_kinds_the_looser_wins_per_field():
    tol = default_tolerance(np.float64, np.int32)
    assert (tol.rtol, tol.atol) == (1e-7, 1e-7)
    assert default_tolerance(np.int32, np.float32) == default_tolerance(np.float32, np.float32)


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


@pytest.mark.parametrize("key", ["rtol", "atol"])
@pytest.mark.parametrize("value", [float("inf"), 1e999, float("nan"), float("-inf")])
def test_override_rtol_atol_must_be_finite_numbers(key, value):
    """An infinite rtol or atol passes everything: a sentinel for 'no element rule', which elementwise = false
    says honestly."""
    d = {"rtol": 1e-3, "atol": 1e-5, key: value}
    with pytest.raises(ProfileError) as info:
        ToleranceOverride.from_mapping(d, WHERE)
    message = info.value.one_line()
    assert message.startswith(f"{WHERE}: {key} must be ")
    assert "\n" not in message
    if value == float("inf"):
        assert message.startswith(f"{WHERE}: {key} must be finite, got inf")
        assert "elementwise = false" in info.value.hint


def test_override_large_finite_atol_is_still_a_tolerance():
    assert ToleranceOverride.from_mapping({"rtol": 0, "atol": 1e30}, WHERE).atol == 1e30


def test_override_fraction_above_one():
    with pytest.raises(ProfileError, match="fraction"):
        ToleranceOverride.from_mapping({"min_topk_agreement": 1.5}, WHERE)


def test_override_topk_must_be_int():
    with pytest.raises(ProfileError, match="topk"):
        ToleranceOverride.from_mapping({"topk": 2.5}, WHERE)


def test_tolerance_dict_round_trip():
    tol = Tolerance(1e-3, 1e-5, min_cosine=0.99, topk=5)
    assert Tolerance.from_dict(tol.to_dict()) == tol


# --- elementwise = false: signal gates instead of the element rule ---

SIGNAL_ONLY = {"elementwise": False, "min_cosine": 0.99, "min_snr_db": 15}


def test_elementwise_false_with_a_gate_parses():
    o = ToleranceOverride.from_mapping(SIGNAL_ONLY, WHERE)
    assert o.elementwise is False and o.rtol is None and o.to_dict()["elementwise"] is False


def test_elementwise_true_alone_parses():
    assert ToleranceOverride.from_mapping({"elementwise": True}, WHERE).elementwise is True


@pytest.mark.parametrize("value", [0, "false", None, 1.0])
def test_elementwise_must_be_a_bool(value):
    with pytest.raises(ProfileError) as info:
        ToleranceOverride.from_mapping({"elementwise": value, "min_cosine": 0.9}, WHERE)
    assert info.value.message == f"{WHERE}: elementwise must be true or false, got {value!r}"


def test_elementwise_false_refuses_rtol_atol_in_the_same_table():
    with pytest.raises(ProfileError) as info:
        ToleranceOverride.from_mapping({**SIGNAL_ONLY, "rtol": 1e-3, "atol": 1e-5}, WHERE)
    assert info.value.message == f"{WHERE}: elementwise = false cannot be combined with rtol / atol in the same table"
    assert "\n" not in info.value.one_line()


def test_elementwise_false_refuses_a_mismatch_allowance():
    with pytest.raises(ProfileError, match="cannot be combined with max_mismatch_fraction"):
        ToleranceOverride.from_mapping({**SIGNAL_ONLY, "max_mismatch_fraction": 0.1}, WHERE)


def test_elementwise_false_without_a_signal_gate_gates_nothing():
    with pytest.raises(ProfileError) as info:
        ToleranceOverride.from_mapping({"elementwise": False, "topk": 5}, WHERE)
    assert info.value.message.startswith(f"{WHERE}: elementwise = false with no min_cosine, min_snr_db or ")
    assert "would gate nothing on float outputs" in info.value.message and "min_cosine" in info.value.hint


@pytest.mark.parametrize("gate", [{"min_cosine": 0.9}, {"min_snr_db": 10}, {"min_topk_agreement": 1.0}])
def test_each_signal_gate_is_enough(gate):
    assert ToleranceOverride.from_mapping({"elementwise": False, **gate}, WHERE).elementwise is False


def test_tolerance_without_elementwise_needs_a_gate():
    with pytest.raises(ValueError, match="needs min_cosine"):
        Tolerance(1e-4, 1e-5, elementwise=False)


def test_resolve_turns_the_element_rule_off_and_keeps_dtype_defaults():
    tol = resolve_tolerance(np.float32, np.float32, [ToleranceOverride.from_mapping(SIGNAL_ONLY, WHERE)])
    assert not tol.elementwise and (tol.rtol, tol.atol) == (1e-4, 1e-5)
    assert tol.describe() == "no elementwise gate, cosine>=0.99, snr>=15 dB"


def test_a_later_rtol_atol_turns_the_element_rule_back_on():
    off = ToleranceOverride.from_mapping(SIGNAL_ONLY, WHERE)
    tol = resolve_tolerance(np.float32, np.float32, [off, ToleranceOverride(rtol=1e-2, atol=1e-3)])
    assert tol.elementwise and (tol.rtol, tol.atol, tol.min_cosine) == (1e-2, 1e-3, 0.99)


def test_a_later_elementwise_true_turns_it_back_on_with_the_defaults():
    off = ToleranceOverride.from_mapping(SIGNAL_ONLY, WHERE)
    tol = resolve_tolerance(np.float16, np.float16, [off, ToleranceOverride(elementwise=True)])
    assert tol.elementwise and (tol.rtol, tol.atol) == (1e-2, 1e-3)


def test_a_later_gate_only_layer_keeps_it_off():
    off = ToleranceOverride.from_mapping(SIGNAL_ONLY, WHERE)
    tol = resolve_tolerance(np.float32, np.float32, [off, ToleranceOverride(min_topk_agreement=1.0, topk=1)])
    assert not tol.elementwise and tol.min_topk_agreement == 1.0


def test_tolerance_from_an_old_record_has_the_element_rule():
    old = {"rtol": 1e9, "atol": 1e9, "min_cosine": 0.99, "min_snr_db": 15.0, "min_topk_agreement": None,
           "topk": 1, "max_mismatch_fraction": 0.0}
    assert Tolerance.from_dict(old).elementwise is True


def test_signal_only_round_trip():
    tol = Tolerance(1e-4, 1e-5, min_snr_db=15.0, elementwise=False)
    assert Tolerance.from_dict(tol.to_dict()) == tol


@pytest.mark.parametrize("name", ["cpu-int8", "cpu-int8-static"])
def test_the_int8_profiles_gate_on_signal_quality_only(name):
    from pathlib import Path

    from harness.profiles.schema import load_profile

    path = Path(__file__).resolve().parents[2] / "device_profiles" / f"{name}.toml"
    everything = load_profile(path).tolerance.everything
    assert everything.elementwise is False and everything.rtol is None and everything.atol is None
    assert everything.min_cosine is not None and everything.min_snr_db == 15


# --- a profile that extends another: the element rule's keys replace each other ---

def test_a_child_rtol_atol_replaces_the_parents_elementwise_false():
    from harness.compare.tolerances import without_replaced_rule

    parent = {"why": "int8", **SIGNAL_ONLY}
    child = {"rtol": 1e-3, "atol": 1e-5}
    merged = {**without_replaced_rule(parent, child), **child}
    assert merged == {"why": "int8", "min_cosine": 0.99, "min_snr_db": 15, "rtol": 1e-3, "atol": 1e-5}
    assert ToleranceOverride.from_mapping({k: v for k, v in merged.items() if k != "why"}, WHERE).elementwise is None


def test_a_child_elementwise_false_replaces_the_parents_rule():
    from harness.compare.tolerances import without_replaced_rule

    parent = {"rtol": 1e-3, "atol": 1e-5, "max_mismatch_fraction": 0.01, "min_cosine": 0.9}
    merged = {**without_replaced_rule(parent, {"elementwise": False}), "elementwise": False}
    assert merged == {"min_cosine": 0.9, "elementwise": False}
    assert ToleranceOverride.from_mapping(merged, WHERE).elementwise is False


def test_a_child_gate_leaves_the_parent_alone():
    from harness.compare.tolerances import without_replaced_rule

    assert without_replaced_rule(SIGNAL_ONLY, {"min_cosine": 0.98}) == SIGNAL_ONLY
