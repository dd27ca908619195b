"""Profiles are code: what a profile may make the worker import and which environment it may set.

A profile file is trusted like a conftest.py (docs/profiles.md), but two of its keys reach further than the
run they configure, so they are narrowed at load time:

- ``[ep] plugin`` names a module the worker imports. Only EP packages are accepted: the known ones below, and
  any installed distribution that declares an entry point in the group ``onnxruntime_harness.ep_plugins``
  whose value is the module name.
- ``[ep.env]`` and ``[worker] env`` are set in the worker's environment. ``HARNESS_*`` variables steer the
  harness itself (test fault injection, cache and profile folders) and loader variables (``LD_PRELOAD``,
  ``PYTHONPATH``, ...) make the worker load code other than the named plugin, or another ``harness`` than the
  one running: both are refused. Set them in your own shell when you mean it, where you can see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from harness.errors import ProfileError

ENTRY_POINT_GROUP = "onnxruntime_harness.ep_plugins"
KNOWN_PLUGINS = ("onnxruntime_ep_openvino", "onnxruntime_ep_webgpu")
REFUSED_ENV_PREFIXES = ("HARNESS_", "LD_", "DYLD_")
REFUSED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONPLATLIBDIR",
               "PYTHONEXECUTABLE", "PYTHONINSPECT", "PYTHONNOUSERSITE", "PYTHONSAFEPATH")


def allowed_plugins() -> tuple[str, ...]:
    """The known EP packages, then the modules that installed distributions declare as EP plugins."""
    declared = sorted({ep.value.split(":")[0].strip() for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
    return (*KNOWN_PLUGINS, *(name for name in declared if name not in KNOWN_PLUGINS))


def check_plugin(plugin: str, where: str) -> None:
    """Refuse a plugin module that is not an EP package: the worker would import it, whatever it is."""
    allowed = allowed_plugins()
    if plugin not in allowed:
        raise ProfileError(f"{where}: [ep] plugin = {plugin!r} is not an EP package the harness knows; "
                           f"allowed: {', '.join(allowed)}",
                           hint=f"an EP package joins the list by declaring an entry point in the group "
                                f"{ENTRY_POINT_GROUP!r} whose value is its module (see docs/profiles.md)")


def check_env(names: Iterable[str], table: str, where: str) -> None:
    """Refuse variables that steer the harness or the loader rather than the EP."""
    for name in names:
        if name.upper().startswith(REFUSED_ENV_PREFIXES) or name.upper() in REFUSED_ENV:
            raise ProfileError(f"{where}: [{table}] sets {name}, which a profile may not set: HARNESS_* variables "
                               f"steer the harness and loader variables ({', '.join(REFUSED_ENV[:2])}, LD_*, "
                               f"DYLD_*) load other code into the worker",
                               hint="set it in your shell for the run if you mean it (see docs/profiles.md)")
