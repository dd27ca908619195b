"""``harness setup web``: ONNX Runtime Web's WebAssembly build under Node.js, as a device.

The worker is harness/worker/js/worker.js; its npm dependencies (onnxruntime-web, pinned with a lockfile to the
build paired with this harness's onnxruntime) are installed by ``npm ci`` into ``cache_root()/web-<version>``,
never into the package. ``launch`` runs ``node worker.js`` with that folder on NODE_PATH and tells the worker the
parent's onnxruntime version (it refuses a build that does not pair with it) and the probe model. Latency from these
profiles is wasm under Node on this host: a real figure for the wasm build, not for a given browser.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.profiles.schema import Profile
from harness.run.launchers import Launch, LauncherUnavailable
from harness.setup import cache_root
from harness.worker.probe import PROBE_MODEL

WORKER_DIR = Path(__file__).resolve().parents[1] / "worker" / "js"
PACKAGE_FILES = ("package.json", "package-lock.json")
MIN_NODE = 20
NODE_FIX = "apt-get install nodejs npm, where the distribution's nodejs is 20 or newer (Debian 12's is 18)"
SETUP_FIX = "harness setup web"
STAMP = ".harness-setup.json"  # written last: its presence means npm ci finished
NPM_TIMEOUT_S = 900


class WebSetupError(HarnessError):
    """``harness setup web`` could not finish: no Node.js or npm, or npm ci failed (with npm's last lines)."""

    @classmethod
    def of(cls, problem: str) -> WebSetupError:
        """'<what>; fix: <how>' as the error line and its hint."""
        what, _, fix = problem.partition("; fix: ")
        return cls(what, hint=fix or None)


def package() -> dict[str, Any]:
    return json.loads((WORKER_DIR / "package.json").read_text(encoding="utf-8"))


def web_version() -> str:
    """The onnxruntime-web version package.json pins (exactly: the lockfile holds the same)."""
    return str(package()["dependencies"]["onnxruntime-web"])


def paired_python_version() -> str:
    """The Python onnxruntime release (major.minor) this onnxruntime-web build stands in for."""
    return str(package()["harness"]["pairedWithPythonOnnxruntime"])


def python_onnxruntime_version() -> str:
    """This harness's onnxruntime version, from the installed distribution (whichever build provides it)."""
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    import onnxruntime
    return str(onnxruntime.__version__)


def version_mismatch(python_version: str, paired: str | None = None, web: str | None = None) -> str:
    """Why the pinned onnxruntime-web cannot stand in for ``python_version`` ('' when it can), in one line that
    names both versions and the fix. Kernels change between releases (181 ONNX node cases diverged between 1.30
    and 1.32), so a mismatch would be mistaken for a wasm difference."""
    paired = paired or paired_python_version()
    web = web or web_version()
    if f"{python_version}.".startswith(f"{paired}."):
        return ""
    return (f"onnxruntime-web {web} (Node worker) is paired with Python onnxruntime {paired}.x, but the harness runs "
            f"onnxruntime {python_version}; fix: pin the matching onnxruntime-web in harness/worker/js/package.json "
            f"and run {SETUP_FIX}, or install onnxruntime=={paired}.*")


def install_dir() -> Path:
    return cache_root() / f"web-{web_version()}"


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in PACKAGE_FILES:
        digest.update((WORKER_DIR / name).read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _node_version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(x) for x in match.groups()) if match else None


def node_problem() -> str:
    """Why Node.js cannot run the worker here ('' when it can)."""
    node = shutil.which("node")
    if node is None:
        return f"Node.js is not installed (no 'node' on PATH); fix: {NODE_FIX}"
    version = _node_version(node)
    if version is None:
        return f"{node} --version did not print a Node.js version; fix: {NODE_FIX}"
    if version[0] < MIN_NODE:
        return f"Node.js {'.'.join(map(str, version))} at {node} is older than {MIN_NODE}; fix: {NODE_FIX}"
    return ""


def state() -> str:
    """'' when the web worker can start here, else why not and the command that fixes it."""
    problem = node_problem()
    if problem:
        return problem
    stamp = install_dir() / STAMP
    if not stamp.is_file():
        return f"the web worker's npm packages are not installed in {install_dir()}; fix: {SETUP_FIX}"
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8")).get("lock_sha256")
    except (OSError, ValueError):
        recorded = None
    if recorded != _lock_digest():
        return f"the web worker's packages in {install_dir()} were installed from another lockfile; fix: {SETUP_FIX} --force"
    return ""


def setup(force: bool = False, say: Callable[[str], None] = print) -> Path:
    """``npm ci`` from the lockfile into the cache folder; does nothing when it is complete (``force`` redoes it).
    Install scripts are not run (onnxruntime-web needs none; onnxruntime-node's would download CUDA files)."""
    problem = node_problem()
    if problem:
        raise WebSetupError.of(problem)
    target = install_dir()
    if not force and not state():
        say(f"web worker already set up: onnxruntime-web {web_version()} in {target}")
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise WebSetupError.of(f"npm is not installed; fix: {NODE_FIX}")
    say(f"installing onnxruntime-web {web_version()} (npm ci from harness/worker/js/package-lock.json) into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        for name in PACKAGE_FILES:
            shutil.copy2(WORKER_DIR / name, staging / name)
        _npm_ci(npm, staging)
        (staging / STAMP).write_text(json.dumps({"onnxruntime-web": web_version(), "lock_sha256": _lock_digest()}),
                                     encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"web worker set up: {target}")
    return target


def _npm_ci(npm: str, folder: Path) -> None:
    command = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev"]
    env = {**os.environ, "npm_config_update_notifier": "false"}
    try:
        proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise WebSetupError.of(f"npm ci did not finish within {NPM_TIMEOUT_S} s in {folder}; "
                               f"fix: check the npm registry is reachable, then {SETUP_FIX}") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise WebSetupError.of(f"npm ci failed (exit {proc.returncode}): {tail}; fix: check the npm registry is "
                               f"reachable, then {SETUP_FIX}")


def launch(profile: Profile) -> Launch:
    """``node worker.js`` with the installed packages on NODE_PATH; LauncherUnavailable (SKIPPED with the reason)
    when Node.js or the packages are missing, or when this onnxruntime does not pair with the pinned build."""
    problem = state() or version_mismatch(python_onnxruntime_version())
    if problem:
        raise LauncherUnavailable(problem)  # the run names the profile in front of it
    env = {"NODE_PATH": str(install_dir() / "node_modules"),
           "HARNESS_PYTHON_ONNXRUNTIME": python_onnxruntime_version(),
           "HARNESS_PROBE_MODEL": base64.b64encode(PROBE_MODEL).decode("ascii")}
    return Launch(command=(shutil.which("node") or "node",), env=env, program=(str(WORKER_DIR / "worker.js"),))
