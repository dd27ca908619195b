"""Bless: a profile's actual outputs become the case's goldens, never over existing goldens without --force.
Inputs come from the case's data sets, or are generated from the signature.

Atomic across the whole case: the new case folder is built beside the old one (``.<case>.bless-new``: the
model and every other file linked or copied, the new data sets and case.json written), then the two folders
are swapped. A kill at any point leaves the old goldens or the new ones, never a mix; what it leaves beside
the case (the half-built folder, or the old one set aside) is cleaned up by ``recover`` on the next start.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path

from harness.atomic import atomic_write_bytes
from harness.errors import GoldenError, HarnessError, UsageError
from harness.golden.cases import Case
from harness.golden.layout import write_dataset
from harness.golden.manifest import MANIFEST_NAME, CaseManifest
from harness.model.inputs import symbolic_dims, unused_dims
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.executor import Executor, RunOptions, probe
from harness.run.plan import CasePlan, plan_case
from harness.suggest import did_you_mean


def bless(case: Case, profile: Profile, *, dims: dict[str, int], seed: int, force: bool) -> Path:
    if case.model_file is not None:  # goldens beside a loose file would land in whatever folder holds it
        raise GoldenError(f"{case.model_file}: goldens are written into a case folder, not beside a loose model",
                          hint=f"make one: mkdir {case.name} && cp {case.model_file} {case.name}/model.onnx, "
                               f"then 'harness bless {case.name}'")
    if not force and any(case.path.glob("test_data_set_*/output_*.pb")):
        raise GoldenError(f"{case.path}: goldens already exist", hint="pass --force to overwrite them")
    plan = plan_case(case, dims=dims, seed=seed, blessing=True)
    _refuse_unused_dims(plan, dims)
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
    staging = _stage(case.path)
    info = plan.info
    for ds in plan.datasets:
        got = {name: outputs[f"{ds.index}/{name}"] for name in info.output_names}
        write_dataset(staging, ds.index, ds.inputs, got, info.input_names, info.output_names, force=True)
    _write_manifest(case, plan, profile, result, staging)
    _swap(staging, case.path)
    return case.path


def _refuse_unused_dims(plan: CasePlan, dims: dict[str, int]) -> None:
    """A --dim that binds nothing would be silently ignored (a typo, or inputs that are stored), as run refuses."""
    generated = plan.generates_inputs
    unused = unused_dims(dims, [plan.info.inputs] if generated else [])
    if not unused:
        return
    name, offered = unused[0], sorted(symbolic_dims(plan.info.inputs))
    why = (f"its inputs' symbolic dimensions are {', '.join(offered) or 'none'}" if generated else
           "its inputs are stored in its data sets, which fix every dimension")
    raise UsageError(f"--dim {name}: case {plan.case.name!r} has no generated input dimension named {name!r}"
                     f"{did_you_mean(name, offered) if generated else ''}; {why}",
                     hint="drop it, or check the name against the model's inputs; nothing was written")


NEW_SUFFIX, OLD_SUFFIX = ".bless-new", ".bless-old"
_DATASET = re.compile(r"^test_data_set_\d+$")
_RENAME_EXCHANGE = 2


def _beside(case_dir: Path, suffix: str) -> Path:
    return case_dir.parent / f".{case_dir.name}{suffix}"


def recover(case_dir: Path) -> list[str]:
    """Finish or undo a bless that was killed: the old folder set aside comes back when the case folder is
    missing (the swap had not happened), and is removed when the new one is in place; a half-built new folder
    is removed. Returns what it did, one line each."""
    done = []
    old, new = _beside(case_dir, OLD_SUFFIX), _beside(case_dir, NEW_SUFFIX)
    if old.is_dir():
        if case_dir.exists():
            shutil.rmtree(old)
            done.append(f"removed {old}, left by a bless that had finished its swap")
        else:
            os.rename(old, case_dir)
            done.append(f"restored {case_dir} from {old}: a bless was killed before its swap")
    if new.is_dir():
        shutil.rmtree(new)
        done.append(f"removed {new}, left by a bless that was killed")
    return done


def recover_under(folder: Path) -> list[str]:
    """``recover`` every case a killed bless left leftovers for under ``folder`` (before cases are discovered:
    a half-built ``.<case>.bless-new`` holds a model.onnx and would otherwise look like a case)."""
    if not folder.is_dir():
        return []
    done = []
    for leftover in sorted(folder.rglob(f".*{NEW_SUFFIX}")) + sorted(folder.rglob(f".*{OLD_SUFFIX}")):
        name = leftover.name[1:].removesuffix(NEW_SUFFIX).removesuffix(OLD_SUFFIX)
        if leftover.is_dir():
            done += recover(leftover.parent / name)
    return done


def recover_for(selectors: list[str], root: Path) -> list[str]:
    """``recover_under`` the case root and every folder named on the command line, and ``recover`` a named case
    folder itself (a kill between the two renames leaves it missing, set aside beside it)."""
    done = recover_under(root)
    for selector in selectors:
        path = Path(selector)
        try:
            if _beside(path, OLD_SUFFIX).is_dir() or _beside(path, NEW_SUFFIX).is_dir():
                done += recover(path)
            if path.is_dir():
                done += recover_under(path)
        except (OSError, ValueError):  # not a path at all (a case name, a name too long): nothing to recover
            continue
    return done


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)  # the model is never written in place (atomic writes replace it): share it
    except OSError:
        shutil.copy2(source, target)


def _stage(case_dir: Path) -> Path:
    """The sibling folder the new goldens are written into: everything of the case but its data sets and
    case.json, linked where the filesystem allows, copied where not."""
    recover(case_dir)
    staging = _beside(case_dir, NEW_SUFFIX)
    staging.mkdir()
    for child in case_dir.iterdir():
        if (child.is_dir() and _DATASET.match(child.name)) or child.name == MANIFEST_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.copytree(child, staging / child.name, copy_function=_link_or_copy, symlinks=True)
        elif child.is_symlink():
            os.symlink(os.readlink(child), staging / child.name)
        else:
            _link_or_copy(str(child), str(staging / child.name))
    return staging


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a filesystem without it: two renames instead
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap(staging: Path, case_dir: Path) -> None:
    """Put the staged folder where the case is. With RENAME_EXCHANGE there is no moment without a whole case;
    otherwise the old folder is set aside first, and ``recover`` puts it back if a kill lands in between."""
    _fsync_dir(staging)
    if _exchange(staging, case_dir):
        shutil.rmtree(staging)  # now the old case
    else:
        old = _beside(case_dir, OLD_SUFFIX)
        os.rename(case_dir, old)
        os.rename(staging, case_dir)
        shutil.rmtree(old)
    _fsync_dir(case_dir.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_manifest(case: Case, plan, profile: Profile, result: R.CellResult, folder: Path) -> None:
    manifest = case.manifest if case.has_manifest else CaseManifest(case=case.name)
    manifest.model_sha256 = plan.info.sha256
    manifest.opset = plan.info.opset
    manifest.source = {"kind": "profile", "profile": profile.name, "ep": profile.ep,
                       "onnxruntime": R.versions()["onnxruntime"], "transform": profile.transform,
                       "placement": result.placement.get("per_ep", {})}
    manifest.host = {"node": platform.node(), "cpu": R.machine_info()["cpu"]}
    manifest.created = R.now_iso()
    atomic_write_bytes(folder / MANIFEST_NAME, manifest.to_json().encode())
