"""Bless: a profile's actual outputs become the case's goldens, written atomically, never over existing
goldens without --force. Inputs come from the case's data sets, or are generated from the signature."""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path

from harness.errors import GoldenError, HarnessError
from harness.golden.cases import Case
from harness.atomic import atomic_write_bytes
from harness.golden.layout import write_dataset
from harness.golden.manifest import MANIFEST_NAME, CaseManifest
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.executor import Executor, RunOptions, probe
from harness.run.plan import plan_case


def bless(case: Case, profile: Profile, *, dims: dict[str, int], seed: int, force: bool) -> Path:
    if case.model_file is not None:  # goldens beside a loose file would land in whatever folder holds it
        raise GoldenError(f"{case.model_file}: goldens are written into a case folder, not beside a loose model",
                          hint=f"make one: mkdir {case.name} && cp {case.model_file} {case.name}/model.onnx, "
                               f"then 'harness bless {case.name}'")
    if not force and any(case.path.glob("test_data_set_*/output_*.pb")):
        raise GoldenError(f"{case.path}: goldens already exist", hint="pass --force to overwrite them")
    plan = plan_case(case, dims=dims, seed=seed)
    scratch = tempfile.TemporaryDirectory(prefix="harness-bless-")
    executor = Executor(RunOptions(Path(scratch.name), capture_outputs=True), None)
    try:
        availability = probe(profile, executor.pool)
        if not availability.available:
            raise HarnessError(f"profile {profile.name!r} is not available here: {availability.reason}")
        result = executor.run_cell(plan, profile, availability)
    finally:
        executor.close()
        scratch.cleanup()
    outputs = executor.captured.get(R.cell_key(case.name, profile.name))
    if outputs is None:
        raise HarnessError(f"case {case.name!r} did not run on profile {profile.name!r}: {result.verdict} {result.detail}",
                           hint="fix the failure first; nothing was written")
    info = plan.info
    for ds in plan.datasets:
        got = {name: outputs[f"{ds.index}/{name}"] for name in info.output_names}
        write_dataset(case.path, ds.index, ds.inputs, got, info.input_names, info.output_names, force=True)
    _write_manifest(case, plan, profile, result)
    return case.path


def _write_manifest(case: Case, plan, profile: Profile, result: R.CellResult) -> None:
    manifest = case.manifest if case.has_manifest else CaseManifest(case=case.name)
    manifest.model_sha256 = plan.info.sha256
    manifest.opset = plan.info.opset
    manifest.source = {"kind": "profile", "profile": profile.name, "ep": profile.ep,
                       "onnxruntime": R.versions()["onnxruntime"], "transform": profile.transform,
                       "placement": result.placement.get("per_ep", {})}
    manifest.host = {"node": platform.node(), "cpu": R.machine_info()["cpu"]}
    manifest.created = R.now_iso()
    atomic_write_bytes(case.path / MANIFEST_NAME, manifest.to_json().encode())
