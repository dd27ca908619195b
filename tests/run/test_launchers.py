"""Launcher kinds (harness/run/launchers.py): a kind that cannot start here makes its profile unavailable with
the reason, before any worker starts; registered kinds build the worker's command line."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from harness.profiles.schema import Profile
from harness.run import launchers
from harness.run.launchers import Launch, LauncherUnavailable, launch_for, register_launcher
from harness.run.pool import missing_requirements

CPU = Profile(name="cpu-like", source=None)


def test_python_kind_runs_this_interpreter_with_the_worker_module() -> None:
    argv = launch_for(CPU).argv({"a": 1})
    assert argv[:3] == [sys.executable, "-m", "harness.worker"]
    assert argv[3:] == ["--spec", '{"a": 1}']


def test_another_program_replaces_the_worker_module() -> None:
    launch = Launch(("node",), {}, ("/opt/worker.js",))
    assert launch.argv({}) == ["node", "/opt/worker.js", "--spec", "{}"]


def test_an_unavailable_kind_makes_the_profile_unavailable_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(profile: Profile) -> Launch:
        raise LauncherUnavailable(f"profile {profile.name!r}: not set up; fix: harness setup test")
    monkeypatch.setitem(launchers._REGISTERED, "test-kind", refuse)
    profile = replace(CPU, launcher="test-kind")
    assert missing_requirements(profile) == "profile 'cpu-like': not set up; fix: harness setup test"


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(LauncherUnavailable, match="'no-such-kind' is not known"):
        launch_for(replace(CPU, launcher="no-such-kind"))


def test_a_registered_kind_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launchers, "_REGISTERED", dict(launchers._REGISTERED))
    register_launcher("wrapped", lambda p: Launch(("env", "X=1", sys.executable)))
    assert launch_for(replace(CPU, launcher="wrapped")).argv({})[:3] == ["env", "X=1", sys.executable]
