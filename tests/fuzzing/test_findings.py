"""Finding keys (the de-duplication) and the report built from a journal."""

from __future__ import annotations

import json
from pathlib import Path

from onnx import TensorProto, helper

from harness.fuzzing.campaign import CampaignOptions
from harness.fuzzing.findings import (
    Finding,
    attribute_signature,
    finding_key,
    node_dtype,
    slug,
)
from harness.fuzzing.journal import CAMPAIGN_NAME, JOURNAL_NAME
from harness.fuzzing.report import REPORT_SCHEMA, build_report, lines


def test_the_signature_keeps_categorical_values_and_drops_continuous_ones():
    node = helper.make_node("LeakyRelu", ["x"], ["y"], alpha=0.13)
    assert attribute_signature(node) == "alpha"
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], ceil_mode=1, auto_pad="NOTSET")
    assert attribute_signature(pool) == "auto_pad=NOTSET,ceil_mode=1,kernel_shape=[2,2]"


def test_two_graphs_with_the_same_op_attributes_dtype_and_pair_are_one_finding():
    a = helper.make_node("Elu", ["x"], ["y"], alpha=0.7)
    b = helper.make_node("Elu", ["u"], ["v"], alpha=1.9)
    types = {"x": helper.make_tensor_type_proto(TensorProto.FLOAT16, [2]),
             "u": helper.make_tensor_type_proto(TensorProto.FLOAT16, [5, 5])}
    key_a = finding_key(a.op_type, attribute_signature(a), node_dtype(a, types), "cpu-fp16~reference")
    key_b = finding_key(b.op_type, attribute_signature(b), node_dtype(b, types), "cpu-fp16~reference")
    assert key_a == key_b == "Elu[alpha]:float16:cpu-fp16~reference"
    assert key_a != finding_key("Elu", "alpha", "float16", "cpu~reference")


def test_a_slug_is_a_safe_folder_name():
    finding = Finding("Conv[x]:float32:a/b~c", "mismatch", "a/b", "c d", "Conv", "", "float32", "g")
    assert "/" not in slug(finding) and " " not in slug(finding)
    assert slug(finding).startswith("Conv-float32-a_b-vs-c_d-")


def test_the_report_counts_occurrences_throughput_and_coverage(tmp_path: Path):
    (tmp_path / CAMPAIGN_NAME).write_text(json.dumps(CampaignOptions(profiles=["cpu"]).header()))
    key = "Exp[]:float16:cpu~reference"
    journal = [
        {"type": "graph", "index": 0, "name": "g0", "status": "compared", "dtype": "float16", "ops": ["Exp", "Add"],
         "coverage": {"Exp": {"dtype": ["float16"]}}, "verdicts": {"cpu": "FAIL", "reference": "PASS"},
         "disagreements": [{"profile": "cpu", "other": "reference", "kind": "mismatch"}], "findings": [key]},
        {"type": "finding", "key": key, "kind": "mismatch", "profile": "cpu", "other": "reference", "op": "Exp",
         "attributes": "", "dtype": "float16", "graph": "g0", "path": "findings/x", "shrink": {}, "reproduces": {},
         "assessment": "EP difference"},
        {"type": "graph", "index": 1, "name": "g1", "status": "compared", "dtype": "float32", "ops": ["Exp"],
         "coverage": {"Exp": {"dtype": ["float32"]}}, "verdicts": {"cpu": "FAIL", "reference": "PASS"},
         "disagreements": [{"profile": "cpu", "other": "reference", "kind": "mismatch"}], "findings": [key]},
        {"type": "graph", "index": 2, "name": "g2", "status": "rejected", "reason": "no finite reference outputs"},
        {"type": "session", "elapsed_s": 30.0},
    ]
    (tmp_path / JOURNAL_NAME).write_text("".join(json.dumps(line) + "\n" for line in journal))
    report = build_report(tmp_path)
    assert report["schema"] == REPORT_SCHEMA and report["schema_version"] == 1
    assert report["throughput"] == {"graphs_per_minute": 6.0, "compared_per_minute": 4.0}
    assert report["findings"][0]["occurrences"] == 2
    assert report["findings_by_op"] == {"Exp": {"cpu": {"findings": 1, "occurrences": 2}}}
    assert report["coverage"]["ops"] == {"Add": 1, "Exp": 2}
    assert report["coverage"]["attributes"]["Exp"]["dtype"] == ["float16", "float32"]
    assert report["graphs"] == {"generated": 3, "compared": 2, "rejected": 1}
    assert any("x2" in line for line in lines(report))


def test_cells_that_did_not_run_are_grouped_by_missing_kernel_and_dtype(tmp_path: Path):
    (tmp_path / CAMPAIGN_NAME).write_text(json.dumps(CampaignOptions(profiles=["cpu"]).header()))
    detail = ("onnxruntime does not support this model on CPUExecutionProvider: NOT_IMPLEMENTED: Could not find an "
              "implementation for Erf(13) node with name 'n_Erf_{}'")
    journal = [{"type": "graph", "index": i, "name": f"g{i}", "status": "compared", "dtype": "float64", "ops": ["Erf"],
                "verdicts": {"cpu": "UNSUPPORTED", "reference": "PASS"}, "details": {"cpu": detail.format(i)}}
               for i in range(3)]
    journal.append({"type": "graph", "index": 3, "name": "g3", "status": "compared", "dtype": "float16", "ops": [],
                    "verdicts": {"cpu": "NOT_APPLICABLE"}, "details": {"cpu": "already float16 (12 float16 tensors)"}})
    (tmp_path / JOURNAL_NAME).write_text("".join(json.dumps(line) + "\n" for line in journal))
    assert build_report(tmp_path)["not_run"] == {"cpu": {"cells": 4, "reasons": {
        "UNSUPPORTED: no kernel for Erf(13) in a float64 graph": 3,
        "NOT_APPLICABLE: already float16 (N float16 tensors)": 1}}}
