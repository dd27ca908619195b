"""Bounded memory, nested graphs, optimiser passes and exposure that moves the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.localize import LocalizeOptions, localize


def test_memory_stays_within_the_cap_when_activations_far_exceed_it(chain_case, perturb, tmp_path: Path) -> None:
    case = chain_case(tmp_path / "chain", 40, 65536)  # 79 intermediates of 1 MiB: 79 MiB of activations
    cap_mb = 4.0
    options = LocalizeOptions(cap_mb=cap_mb, repro=False, blame_passes=False, in_process=True,
                              edit_profile_model=perturb("relu30", 0.5))
    found = localize(case, "cpu-noopt", options)
    total = sum(np.prod(t.shape) * 4 for t in found.tensors)
    assert total > 15 * cap_mb * 2**20
    assert found.batches >= 15 and found.largest_batch_bytes <= cap_mb * 2**20
    assert len(found.tensors) == 79
    assert found.first["node"] == "relu30"


def test_bisecting_finds_the_same_node_in_far_fewer_batches(chain_case, perturb, tmp_path: Path) -> None:
    case = chain_case(tmp_path / "chain", 40, 4096)  # 79 intermediates of 64 KiB
    options = LocalizeOptions(cap_mb=0.25, repro=False, blame_passes=False, in_process=True, bisect=True,
                              edit_profile_model=perturb("relu30", 0.5))
    found = localize(case, "cpu-noopt", options)
    assert found.first["node"] == "relu30" and found.suspects[0].node == "relu30"
    assert found.batches <= 8  # of 20: log2(20) probes, the batch before, the found batch again
    assert any(note.startswith("bisected:") for note in found.notes)


def test_subgraphs_are_said_not_searched(tmp_path: Path) -> None:
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
         helper.make_node("Greater", ["s", "zero"], ["cond"], name="gt"),
         helper.make_node("If", ["cond"], ["picked"], then_branch=branch, else_branch=other, name="choose"),
         helper.make_node("Mul", ["picked", "k"], ["y"], name="scale")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(0, np.float32), "zero"), numpy_helper.from_array(np.array(3e5, np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    case = tmp_path / "nested"
    case.mkdir()
    onnx.save(model, str(case / "model.onnx"))
    found = localize(case, "cpu-fp16", LocalizeOptions(repro=False, blame_passes=False, in_process=True))
    assert found.status != "passes"
    assert any("choose (If)" in note and "inside was not searched" in note for note in found.notes), found.notes


def test_a_fusion_pass_is_named_when_noopt_removes_the_divergence(fusion_case: Path) -> None:
    options = LocalizeOptions(against="cpu-noopt", rtol=1e-7, atol=1e-9, repro=False, in_process=True)
    found = localize(fusion_case, "cpu", options)
    assert found.pass_blame is not None and found.pass_blame.passes == ["MatMulScaleFusion"], found.pass_blame
    assert "MatMulScaleFusion" in found.pass_blame.modified


def test_a_fused_pair_is_cut_whole_into_the_repro(fusion_case: Path, tmp_path: Path) -> None:
    """Each node alone matches (the fusion needs both), so the repro grows until it holds the pair."""
    options = LocalizeOptions(against="cpu-noopt", rtol=1e-7, atol=1e-9, blame_passes=False, out=tmp_path / "r")
    found = localize(fusion_case, "cpu", options)
    assert found.repro is not None and found.repro.fails_alone and found.repro.nodes == ["scale", "mm"]
    assert found.repro.tries == 2


def test_exposing_outputs_that_break_a_fusion_is_said_plainly(layernorm_case: Path, tmp_path: Path) -> None:
    options = LocalizeOptions(against="cpu-noopt", rtol=1e-7, atol=1e-9, out=tmp_path / "r")
    found = localize(layernorm_case, "cpu", options)
    assert found.exposure is not None and found.exposure["output"] == "y" and found.exposure["error_with"] == 0
    assert "changed output 'y'" in found.exposure["message"] and "fusion" in found.exposure["message"]
    assert found.fallback is not None and found.fallback["runs"] >= 3
    assert found.repro is not None and found.repro.fails_alone
    assert found.pass_blame is not None and found.pass_blame.passes == ["LayerNormFusion", "SimplifiedLayerNormFusion"], found.pass_blame
