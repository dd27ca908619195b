"""``harness lab join``: the ``ray start`` line that makes this host a lab host, offering the profiles that run here.

A host offers a profile as the custom resource ``profile:<name>`` with N units, N being how many of that
profile's cells it may run at once (1 keeps latency samples undisturbed). Only profiles whose probe passed on
this host are offered: a host that offered a profile it cannot run would turn its cells into SKIPPED or ERROR
instead of sending them to a host that can.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.errors import UsageError
from harness.lab import resource_name
from harness.lab.cluster import INSTALL_HINT


def join_argv(address: str, slots: Mapping[str, int]) -> list[str]:
    """``ray start --address=HEAD --resources='{"profile:<name>": N, ...}'`` as an argument list."""
    if not address or not address.strip():
        raise UsageError("--address: give the head's HOST:PORT (what 'ray start --head' printed, port 6379 by default)")
    resources = json.dumps({resource_name(name): count for name, count in slots.items()}, separators=(",", ":"))
    return [ray_executable(), "start", f"--address={address.strip()}", f"--resources={resources}"]


def ray_executable() -> str:
    """The ``ray`` command of this Python's environment (a host joins with the Ray the harness runs with)."""
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.is_file() else shutil.which("ray")
    if found is None:
        raise UsageError("'ray' is not installed in this environment", hint=INSTALL_HINT)
    return found


def runnable(names: list[str], availability: Mapping[str, object]) -> tuple[list[str], dict[str, str]]:
    """The profiles among ``names`` that run on this host, and why each other one does not."""
    offered = [n for n in names if getattr(availability[n], "available", False)]
    dropped = {n: str(getattr(availability[n], "reason", "")) or "unavailable" for n in names if n not in offered}
    return offered, dropped


def perform(argv: list[str]) -> int:
    """Run ``ray start``; its own output tells the user what happened. Returns its exit code."""
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror or exc}", hint=INSTALL_HINT) from None


__all__ = ["join_argv", "perform", "ray_executable", "runnable"]
