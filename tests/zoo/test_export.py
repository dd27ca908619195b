"""Zoo export: every module exports to one ONNX file that matches eager PyTorch at several shapes."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the zoo export tests need the export extra (torch)")
pytest.importorskip("onnxscript", reason="the zoo export tests need the export extra (onnxscript)")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from harness.errors import ExportError  # noqa: E402
from harness.zoo.export import eager_outputs, export_onnx, make_inputs, torch_version  # noqa: E402
from harness.zoo.models import ZOO  # noqa: E402

NAMES = sorted(ZOO)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Export each zoo model once for the whole module (export is the slow part)."""
    root = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name in NAMES:
        paths[name] = root / f"{name}.onnx"
        export_onnx(ZOO[name], paths[name])
    return paths


def _shape_variants(name: str) -> list[dict[str, int] | None]:
    spec = ZOO[name]
    variants: list[dict[str, int] | None] = [None, {"batch": 5}, {"batch": 1}]
    if "seq" in spec.symbolic_dims:
        variants += [{"batch": 3, "seq": 13}, {"batch": 1, "seq": 1}]
    return variants


def test_zoo_has_the_promised_models() -> None:
    assert {"mlp", "cnn", "transformer", "gru", "classifier", "embedding_tagger"} <= set(ZOO)
    for name, spec in ZOO.items():
        assert spec.name == name
        assert spec.inputs and spec.output_names
        assert set(spec.symbolic_dims) <= set(spec.dims)


@pytest.mark.parametrize("name", NAMES)
def test_export_is_single_file_with_named_dynamic_io(name: str, exported: dict[str, Path]) -> None:
    spec = ZOO[name]
    path = exported[name]
    assert not path.with_name(path.name + ".data").exists()
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [v.name for v in model.graph.input] == [i.name for i in spec.inputs]
    assert [v.name for v in model.graph.output] == spec.output_names
    for graph_input, inp in zip(model.graph.input, spec.inputs):
        dims = graph_input.type.tensor_type.shape.dim
        for want, dim in zip(inp.shape, dims):
            if isinstance(want, str):
                assert dim.dim_param, f"{inp.name}: dim {want!r} was pinned to {dim.dim_value}"
            else:
                assert dim.dim_value == want
    weights = sum(np.prod(t.dims, dtype=np.int64) * 4 for t in model.graph.initializer)
    assert weights < 1_000_000


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_matches_eager_at_several_shapes(name: str, exported: dict[str, Path]) -> None:
    spec = ZOO[name]
    session = ort.InferenceSession(str(exported[name]), providers=["CPUExecutionProvider"])
    for dims in _shape_variants(name):
        inputs = make_inputs(spec, seed=0, dims=dims)
        expected = eager_outputs(spec, inputs)
        assert list(expected) == spec.output_names
        got = session.run(spec.output_names, inputs)
        for out_name, value in zip(spec.output_names, got):
            ref = expected[out_name]
            assert value.dtype == ref.dtype and value.shape == ref.shape, (out_name, dims)
            np.testing.assert_allclose(value, ref, rtol=1e-4, atol=1e-5, err_msg=f"{out_name} at {dims}")


def test_classifier_outputs_probabilities() -> None:
    spec = ZOO["classifier"]
    assert spec.task == "classification"
    probs = eager_outputs(spec, make_inputs(spec, seed=3, dims={"batch": 4}))["probabilities"]
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert (probs >= 0).all()


def test_gru_returns_output_and_final_hidden() -> None:
    spec = ZOO["gru"]
    out = eager_outputs(spec, make_inputs(spec, seed=0))
    assert out["output"].shape == (2, 8, 32) and out["h_n"].shape == (1, 2, 32)
    np.testing.assert_array_equal(out["output"][:, -1], out["h_n"][0])


def test_builds_are_deterministic() -> None:
    for spec in ZOO.values():
        a, b = spec.build().state_dict(), spec.build().state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key].numpy(), b[key].numpy()), (spec.name, key)
        assert not spec.build().training


def test_batchnorm_is_not_identity() -> None:
    import torch

    bns = [m for m in ZOO["cnn"].build().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


@pytest.mark.parametrize("name", NAMES)
def test_make_inputs_is_deterministic_and_in_range(name: str) -> None:
    spec = ZOO[name]
    a, b = make_inputs(spec, seed=7), make_inputs(spec, seed=7)
    c = make_inputs(spec, seed=8)
    assert list(a) == [i.name for i in spec.inputs]
    for inp in spec.inputs:
        np.testing.assert_array_equal(a[inp.name], b[inp.name])
        assert a[inp.name].dtype == np.dtype(inp.dtype)
        assert not np.array_equal(a[inp.name], c[inp.name])
        expected_shape = tuple(spec.dims[d] if isinstance(d, str) else d for d in inp.shape)
        assert a[inp.name].shape == expected_shape
        assert a[inp.name].min() >= inp.low and a[inp.name].max() < inp.high


def test_int_inputs_cover_their_range() -> None:
    spec = ZOO["embedding_tagger"]
    ids = make_inputs(spec, seed=0, dims={"batch": 64, "seq": 64})["token_ids"]
    assert ids.dtype == np.int64
    assert ids.min() == 0 and ids.max() == 99


def test_make_inputs_rejects_unknown_or_bad_dims() -> None:
    with pytest.raises(ExportError, match="no symbolic dim 'seq'"):
        make_inputs(ZOO["mlp"], seed=0, dims={"seq": 3})
    with pytest.raises(ExportError, match="positive integer"):
        make_inputs(ZOO["mlp"], seed=0, dims={"batch": 0})


def test_pinned_dynamic_dim_is_refused(tmp_path: Path) -> None:
    # Dynamo specialises the GRU's sequence length and torch.onnx falls back without an error (the
    # fallback pins the input, or only the declared outputs, from run to run): the checks must catch it.
    spec = dataclasses.replace(ZOO["gru"], exporter="dynamo")
    with pytest.raises(ExportError, match="is declared|has shape|does not run"):
        export_onnx(spec, tmp_path / "gru.onnx")


def test_missing_torch_is_an_export_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ExportError) as info:
        torch_version()
    assert "export extra" in info.value.message and "torch==2.13.0" in (info.value.hint or "")


def test_torch_version() -> None:
    import torch

    assert torch_version() == torch.__version__
