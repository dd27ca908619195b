"""A short campaign against a planted fault: a profile whose Sigmoid is wrong and which crashes on Cos. The
campaign must find both, shrink each to its one node, save repros that 'harness run' reproduces, keep going after
the crashes, write its report, and resume where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

from onnx import TensorProto

from harness.api import MatrixOptions
from harness.fuzzing.campaign import CampaignOptions, run_campaign
from harness.fuzzing.generate import GeneratorConfig
from harness.fuzzing.journal import JOURNAL_NAME
from harness.fuzzing.report import REPORT_NAME, REPORT_SCHEMA

OPS = ("Sigmoid", "Tanh", "Add", "Cos", "Relu")


def _options(out: Path, profiles: Path, **extra) -> CampaignOptions:
    settings = {"profiles": ["faulty"], "budget_s": 120, "seed": 4, "out": out, "batch": 4, "max_graphs": 4,
                "generator": GeneratorConfig(ops=OPS, max_nodes=3, dtypes=((TensorProto.FLOAT, 1.0),)), "matrix": MatrixOptions(profile_dirs=[profiles])}
    return CampaignOptions(**{**settings, **extra})


def test_a_campaign_finds_the_planted_faults_shrinks_them_and_resumes(tmp_path: Path, faulty_profiles: Path):
    out = tmp_path / "campaign"
    report = run_campaign(_options(out, faulty_profiles))
    assert report["schema"] == REPORT_SCHEMA
    assert json.loads((out / REPORT_NAME).read_text())["findings"] == report["findings"]
    by_op = {f["op"]: f for f in report["findings"]}
    assert set(by_op) == {"Sigmoid", "Cos"}, report["findings"]

    sigmoid = by_op["Sigmoid"]
    assert sigmoid["kind"] == "mismatch" and sigmoid["other"] == "reference"
    assert sigmoid["shrink"]["nodes_after"] == 1 and sigmoid["localized"]["op"] == "Sigmoid"
    assert sigmoid["reproduces"]["verdict"] == "FAIL"
    assert (out / sigmoid["path"] / "test_data_set_0" / "output_0.pb").is_file()  # the reference's goldens

    cos = by_op["Cos"]
    assert cos["kind"] == "CRASH" and cos["shrink"]["nodes_before"] == 3 and cos["shrink"]["nodes_after"] == 1
    assert cos["reproduces"]["verdict"] == "CRASH"

    assert report["graphs"]["compared"] == 4  # the crashes did not end the campaign
    assert report["verdicts"]["faulty"].get("CRASH", 0) >= 1
    assert report["coverage"]["ops"].keys() <= set(OPS) | {"Abs"}
    assert report["throughput"]["graphs_per_minute"] > 0

    resumed = run_campaign(_options(out, faulty_profiles, resume=True, max_graphs=1, seed=99))
    journal = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]
    indices = [line["index"] for line in journal if line["type"] == "graph"]
    assert indices == list(range(5))  # continued at 4, with the campaign's own seed (not 99)
    assert all(line["name"].startswith("fuzz-s4-") for line in journal if line["type"] == "graph")
    keys = [line["key"] for line in journal if line["type"] == "finding"]
    assert len(keys) == len(set(keys))  # a finding seen again is counted, not saved again
    assert resumed["sessions"] == 2 and resumed["graphs"]["generated"] == 5


def test_a_reference_whose_shape_contradicts_shape_inference_gives_a_repro_that_still_runs(tmp_path: Path):
    """onnx's reference MaxPool reads pads [2, 0, 2, 0] (H begin, W begin, H end, W end) in another order and
    returns 1x1x2x6 where shape inference (and onnxruntime) say 1x1x4x4. The repro declares that output's dims
    symbolic, so its goldens are a valid case, and 'harness run' reports the shape mismatch; the finding says the
    reference is at fault."""
    import numpy as np
    from onnx import helper

    from harness.fuzzing.campaign import Campaign
    from harness.fuzzing.findings import Finding

    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], pads=[2, 0, 2, 0])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    feed = {"x": np.random.default_rng(0).uniform(-1, 1, (1, 1, 2, 6)).astype(np.float32)}
    campaign = Campaign(CampaignOptions(profiles=["cpu"], out=tmp_path / "c"))
    try:
        finding = Finding("k", "mismatch", "cpu", "reference", "MaxPool", "", "float32", "g")
        campaign._save(finding, model, feed)
    finally:
        campaign.close()
    assert finding.shape_conflicts and "onnx shape inference (1, 1, 4, 4)" in finding.shape_conflicts[0]
    assert finding.assessment.startswith("reference bug")
    assert finding.reproduces["verdict"] == "FAIL"
    assert "out of tolerance vs golden (y)" in finding.reproduces["detail"]
