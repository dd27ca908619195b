"""``harness setup TARGET``: prepare on this host what an emulated device's worker needs, into a cache folder.

Each target is a module here with ``setup(force: bool, say) -> Path`` (idempotent: it says what it installs,
and does nothing when the cache is already complete), ``state() -> str`` ("" when set up, else why not and
the command that fixes it) and ``launch(profile) -> Launch`` for its launcher kind (harness/run/launchers.py).
Modules are imported by name so that a run that uses no emulated device never loads them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

TARGETS = {"arm64": "harness.setup.arm64", "web": "harness.setup.web"}


def cache_root() -> Path:
    """Where set-ups live: $HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/onnx-harness, else ~/.cache/onnx-harness
    (the same root as the transform cache)."""
    from harness.model.transforms import cache_root as shared_root
    return shared_root()


def target_module(name: str) -> ModuleType:
    """The module that sets ``name`` up; KeyError for a name that is not a target."""
    return importlib.import_module(TARGETS[name])
