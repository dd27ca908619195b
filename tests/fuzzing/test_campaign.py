"""A short campaign against a planted fault: a profile whose Sigmoid is wrong and which crashes on Cos. The
campaign must find both, shrink each to its one node, save repros that 'harness run' reproduces, keep going after
the crashes, write its report, and resume where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

from onnx import TensorProto

from harness.api import MatrixOptions
from harness.fuzzing.campaign import JOURNAL_NAME, CampaignOptions, run_campaign
from harness.fuzzing.generate import GeneratorConfig
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
