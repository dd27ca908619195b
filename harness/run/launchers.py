"""How a profile's worker process starts: launcher kinds, resolved per profile into a ``Launch``.

A profile's ``[worker] launcher`` names a kind. ``python`` (the default) runs this interpreter, or the
profile's ``[worker] command`` prefix, with ``-m harness.worker``. Other kinds (an aarch64 Python under qemu,
the Node.js ONNX Runtime Web worker) need something set up on the host first: their resolver builds the
command from that set-up, or raises ``LauncherUnavailable`` with the reason and the command that fixes it,
which makes the profile SKIPPED before any worker starts.

Kinds are looked up by name: built-in kinds are imported lazily from the module that sets them up (so this
module stays cheap to import), and ``register_launcher`` adds others (tests, plug-ins).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.profiles.schema import Profile

WORKER_MODULE = ("-m", "harness.worker")


class LauncherUnavailable(Exception):
    """The launcher cannot start a worker on this host; the message says why and how to fix it."""


@functools.lru_cache(maxsize=1)
def harness_import_path() -> str:
    """A folder that holds only a link to this harness package: the worker's PYTHONPATH. A foreign interpreter
    (another Python, an aarch64 one under qemu) can then import ``harness.worker`` from this install without
    also seeing this interpreter's site-packages, whose numpy and onnxruntime may be built for another machine."""
    package = Path(__file__).resolve().parents[1]
    folder = Path(tempfile.mkdtemp(prefix="harness-import-"))
    (folder / package.name).symlink_to(package, target_is_directory=True)
    atexit.register(shutil.rmtree, folder, True)
    return str(folder)


@dataclass(frozen=True)
class Launch:
    """How a worker process starts: ``command`` runs a program (default: this interpreter), to which
    ``program`` (default ``-m harness.worker``) and ``--spec <JSON>`` are appended; ``env`` is added to the
    worker's environment. E.g. ``command = ["qemu-aarch64-static", "-L", "/sysroot", "/sysroot/usr/bin/python3"]``,
    or ``command = ["node"], program = ["/path/worker.js"]``."""

    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    program: tuple[str, ...] = WORKER_MODULE

    @classmethod
    def for_profile(cls, profile: Profile) -> Launch:
        """The ``python`` kind: the profile's own command prefix and environment."""
        return cls(tuple(profile.launch_command), dict(profile.launch_env))

    def argv(self, spec: dict[str, Any]) -> list[str]:
        return [*(self.command or (sys.executable,)), *self.program, "--spec", json.dumps(spec)]

    def environment(self, spec: dict[str, Any], extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This process's environment, then PYTHONPATH (the harness import folder first), then the launcher's
        ``[worker].env``, then the EP's ``[ep].env`` (the worker applies it again itself), then ``extra``."""
        inherited = os.environ.get("PYTHONPATH", "")
        path = os.pathsep.join(p for p in (harness_import_path(), inherited) if p)
        return {**os.environ, "PYTHONPATH": path, **self.env, **(spec.get("env") or {}), **(extra or {})}


Resolver = Callable[[Profile], Launch]
# Built-in kinds other than python: "module:function", imported on first use (the module that sets the kind up).
_BUILTIN: dict[str, str] = {"qemu-aarch64": "harness.setup.arm64:launch", "node": "harness.setup.web:launch"}
_REGISTERED: dict[str, Resolver] = {"python": Launch.for_profile}


def register_launcher(kind: str, resolver: Resolver) -> None:
    """Make ``[worker] launcher = kind`` start workers as ``resolver(profile)`` says."""
    _REGISTERED[kind] = resolver


def builtin_launcher(kind: str, target: str) -> None:
    """Declare a built-in kind by "module:function", imported when a profile first uses it."""
    _BUILTIN[kind] = target


def launch_for(profile: Profile) -> Launch:
    """The profile's Launch, or ``LauncherUnavailable`` saying why its launcher cannot start a worker here."""
    kind = profile.launcher
    if kind not in _REGISTERED and kind in _BUILTIN:
        module, _, function = _BUILTIN[kind].partition(":")
        try:
            _REGISTERED[kind] = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            raise LauncherUnavailable(f"worker launcher {kind!r} cannot be loaded "
                                      f"({exc}); fix: reinstall the harness") from None
    resolver = _REGISTERED.get(kind)
    if resolver is None:
        raise LauncherUnavailable(f"worker launcher {kind!r} is not known to this harness "
                                  f"(known: {', '.join(sorted({*_REGISTERED, *_BUILTIN}))})")
    return resolver(profile)
