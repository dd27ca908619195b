"""harness/setup/web.py: where Node.js or the npm packages are missing, the wasm profiles are refused before any
worker starts, with the reason and the command that fixes it; a Python onnxruntime that does not pair with the
pinned onnxruntime-web is refused in one line naming both; ``setup`` installs from the lockfile, once.

Node.js and npm are faked by small scripts on PATH, so these run without either and without a network."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.profiles.registry import load_all
from harness.profiles.schema import Profile
from harness.run.launchers import LauncherUnavailable, launch_for
from harness.run.pool import missing_requirements
from harness.setup import web

REPO = Path(__file__).resolve().parents[2]


def _tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture(autouse=True)
def _fresh_node_version():
    """The Node.js version is cached per process: each test sees its own fake node."""
    web._node_version.cache_clear()
    yield
    web._node_version.cache_clear()


def _wasm() -> Profile:
    return load_all(cwd=REPO)["wasm"]


def test_no_node_names_the_apt_fix(host: Path) -> None:
    assert web.state() == f"Node.js is not installed (no 'node' on PATH); fix: {web.NODE_FIX}"
    assert web.NODE_FIX.startswith("apt-get install nodejs npm")


def test_an_old_node_is_refused_with_its_version(host: Path) -> None:
    _tool(host, "node", "echo v18.19.0")
    assert web.state().startswith("Node.js 18.19.0 at ") and "older than 20; fix: apt-get install nodejs npm" in web.state()


def test_launch_without_setup_is_unavailable_with_the_fix(host: Path) -> None:
    _tool(host, "node", "echo v20.20.2")
    with pytest.raises(LauncherUnavailable) as caught:
        launch_for(_wasm())
    message = str(caught.value)
    assert message.startswith("the web worker's npm packages are not installed in ")
    assert message.endswith("; fix: harness setup web") and "\n" not in message
    assert missing_requirements(_wasm()) == message  # what the run reports as the SKIPPED reason


def _fake_install(lock_sha256: str) -> Path:
    folder = web.install_dir()
    (folder / "node_modules").mkdir(parents=True)
    (folder / web.STAMP).write_text(json.dumps({"lock_sha256": lock_sha256}))
    return folder


def test_packages_from_another_lockfile_ask_for_force(host: Path) -> None:
    _tool(host, "node", "echo v20.20.2")
    _fake_install("0" * 64)
    assert web.state().endswith("were installed from another lockfile; fix: harness setup web --force")


def test_launch_runs_node_on_the_worker_with_the_packages_on_node_path(host: Path) -> None:
    _tool(host, "node", "echo v20.20.2")
    folder = _fake_install(web._lock_digest())
    assert web.state() == ""
    launch = launch_for(_wasm())
    argv = launch.argv({"name": "wasm"})
    assert argv == [str(host / "node"), str(REPO / "harness" / "worker" / "js" / "worker.js"), "--spec", '{"name": "wasm"}']
    assert launch.env["NODE_PATH"] == str(folder / "node_modules")
    assert launch.env["HARNESS_PYTHON_ONNXRUNTIME"] == web.python_onnxruntime_version()


def test_a_version_mismatch_is_refused_in_one_line_naming_both(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tool(host, "node", "echo v20.20.2")
    _fake_install(web._lock_digest())
    monkeypatch.setattr(web, "python_onnxruntime_version", lambda: "1.33.1")
    with pytest.raises(LauncherUnavailable) as caught:
        web.launch(_wasm())
    message = str(caught.value)
    assert "\n" not in message
    assert f"onnxruntime-web {web.web_version()} (Node worker) is paired with Python onnxruntime " \
           f"{web.paired_python_version()}.x, but the harness runs onnxruntime 1.33.1; fix: " in message


def test_the_pairing_accepts_patch_releases_only_of_its_own_minor() -> None:
    assert web.version_mismatch("1.32.0", paired="1.32") == ""
    assert web.version_mismatch("1.32.7", paired="1.32") == ""
    assert web.version_mismatch("1.3.2", paired="1.32") != ""
    assert web.version_mismatch("1.320.0", paired="1.32") != ""


def test_the_lockfile_pins_the_version_package_json_names() -> None:
    lock = json.loads((web.WORKER_DIR / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"]["onnxruntime-web"] == web.web_version()
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == web.web_version()


NPM_OK = 'echo "$@" >> "$NPM_LOG"; test -f package-lock.json && /bin/mkdir -p node_modules/onnxruntime-web'


def test_setup_runs_npm_ci_once_from_the_lockfile(host: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tool(host, "node", "echo v20.20.2")
    _tool(host, "npm", NPM_OK)
    monkeypatch.setenv("NPM_LOG", str(tmp_path / "npm.log"))
    said: list[str] = []
    folder = web.setup(say=said.append)
    assert folder == web.install_dir() and (folder / "node_modules" / "onnxruntime-web").is_dir()
    assert (folder / "package-lock.json").read_bytes() == (web.WORKER_DIR / "package-lock.json").read_bytes()
    assert web.state() == ""
    web.setup(say=said.append)  # complete: nothing to do
    assert (tmp_path / "npm.log").read_text().splitlines() == ["ci --no-audit --no-fund --ignore-scripts --omit=dev"]
    assert said[-1].startswith("web worker already set up: onnxruntime-web ")
    web.setup(force=True, say=said.append)
    assert len((tmp_path / "npm.log").read_text().splitlines()) == 2


def test_a_failed_npm_ci_leaves_nothing_half_installed(host: Path) -> None:
    _tool(host, "node", "echo v20.20.2")
    _tool(host, "npm", 'echo "npm ERR! network request to registry.npmjs.org failed" >&2; exit 1')
    with pytest.raises(HarnessError) as caught:
        web.setup(say=lambda line: None)
    assert str(caught.value).startswith("npm ci failed (exit 1): npm ERR! network request to registry.npmjs.org failed")
    assert caught.value.hint == "check the npm registry is reachable, then harness setup web"
    assert not web.install_dir().exists() and list(web.install_dir().parent.iterdir()) == []
    assert "not installed" in web.state()


def test_setup_without_node_says_how_to_install_it(host: Path) -> None:
    with pytest.raises(HarnessError) as caught:
        web.setup(say=lambda line: None)
    assert (str(caught.value), caught.value.hint) == ("Node.js is not installed (no 'node' on PATH)", web.NODE_FIX)


def test_both_profiles_run_on_the_node_launcher_with_their_thread_counts() -> None:
    profiles = load_all(cwd=REPO)
    assert (profiles["wasm"].launcher, profiles["wasm"].session["intra_op_threads"]) == ("node", 1)
    assert (profiles["wasm-threads"].launcher, profiles["wasm-threads"].session["intra_op_threads"]) == ("node", 2)
    assert all("wasm under Node on this host" in profiles[n].description for n in ("wasm", "wasm-threads"))
    assert os.path.basename(str(profiles["wasm-threads"].source)) == "wasm-threads.toml"
