"""The set of device profiles: the built-ins shipped inside the package, with the user's folders layered on top.

Layers, later wins by name: built-in -> ``./device_profiles`` -> each ``HARNESS_PROFILES`` folder -> each
``--profiles-dir`` folder. A profile may say ``extends = "cpu"``: its TOML table is deep-merged over the
parent's (tables merge key by key, child wins; any other value, arrays included, is replaced), then the merged
table is validated like any plain profile. The parent is looked up by name in the final set, except that a
profile extending its own name extends the version it replaces (a user ``cpu.toml`` can tweak the built-in).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.compare.tolerances import without_replaced_rule
from harness.errors import ProfileError, UsageError
from harness.profiles.schema import KNOWN_EPS, Profile, parse_profile, read_table
from harness.suggest import did_you_mean

# A symlink to device_profiles/ in the repository (the one place they are edited); real files once installed.
BUILTIN_DIR = Path(__file__).parent / "builtin"
ENV_VAR = "HARNESS_PROFILES"
BUILTIN, LOCAL, FROM_ENV, FROM_FLAG = "built-in", "./device_profiles", ENV_VAR, "--profiles-dir"

_HINTS = {
    BUILTIN: "the package is incomplete: reinstall it; in a git checkout, harness/profiles/builtin must be a "
             "symlink to device_profiles (git config core.symlinks true)",
    FROM_ENV: f"fix or unset {ENV_VAR}; it lists folders separated by {os.pathsep!r}",
    FROM_FLAG: "pass --profiles-dir a folder that holds *.toml profiles",
}


@dataclass(frozen=True)
class Layer:
    origin: str
    folder: Path


@dataclass(frozen=True)
class _Entry:
    """One profile file as read, before extends is resolved."""

    origin: str
    path: Path
    table: dict[str, Any]


def layers(extra_dirs: Sequence[Path] = (), *, cwd: Path | None = None, builtin: bool = True) -> list[Layer]:
    """The folders profiles come from, first to last. Relative folders are taken from ``cwd``.

    ``./device_profiles`` is skipped when it is the built-in folder itself (the repository root), also with
    ``builtin=False``: those files are the built-ins. Named folders that do not exist are bad input."""
    here = cwd if cwd is not None else Path.cwd()
    found = [_existing(BUILTIN_DIR.resolve(), BUILTIN, BUILTIN_DIR)] if builtin else []
    local = here / "device_profiles"
    if local.is_dir() and local.resolve() != BUILTIN_DIR.resolve():
        found.append(Layer(LOCAL, local))
    entries = [e for e in os.environ.get(ENV_VAR, "").split(os.pathsep) if e]
    found += [_existing(here / entry, FROM_ENV, Path(entry)) for entry in entries]
    found += [_existing(here / folder, FROM_FLAG, Path(folder)) for folder in extra_dirs]
    return found


def _existing(folder: Path, origin: str, given: Path) -> Layer:
    if not folder.is_dir():
        raise UsageError(f"profile folder {given} (from {origin}) not found", hint=_HINTS[origin])
    return Layer(origin, folder)


def load_all(extra_dirs: Sequence[Path] | Path = (), *, cwd: Path | None = None,
             builtin: bool = True) -> dict[str, Profile]:
    """Every profile by name, reference ``cpu`` first, then by EP family. Each file of every layer is validated,
    also those a later layer replaces. A single folder may be passed instead of a list."""
    if isinstance(extra_dirs, (str, os.PathLike)):
        extra_dirs = [Path(extra_dirs)]
    entries = _read(layers(extra_dirs, cwd=cwd, builtin=builtin))
    if not entries:
        raise UsageError("no device profiles to load: the built-ins are off and no folder holds any",
                         hint=f"pass --profiles-dir or set {ENV_VAR}")
    resolved = {name: [_resolve(entries, name, i) for i in range(len(versions))] for name, versions in entries.items()}
    return {p.name: p for p in sorted((versions[-1] for versions in resolved.values()), key=_order)}


def _read(found: list[Layer]) -> dict[str, list[_Entry]]:
    """Raw tables by name, in layer order: the last one of each name is the one that counts."""
    entries: dict[str, list[_Entry]] = {}
    for layer in found:
        paths = sorted(layer.folder.glob("*.toml"))
        if not paths and layer.origin != LOCAL:
            raise UsageError(f"no *.toml profiles in {layer.folder} (from {layer.origin})", hint=_HINTS[layer.origin])
        for path in paths:
            entries.setdefault(path.stem, []).append(_Entry(layer.origin, path, read_table(path)))
    return entries


def _resolve(entries: dict[str, list[_Entry]], name: str, index: int) -> Profile:
    entry = entries[name][index]
    table, bases = _merged(entries, name, index, ())
    profile = parse_profile(table, entry.path, name)
    return replace(profile, origin=entry.origin, extends=entry.table.get("extends"), bases=bases)


def _merged(entries: dict[str, list[_Entry]], name: str, index: int,
            chain: tuple[tuple[str, int], ...]) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The profile's table with its ancestors merged underneath, and the ancestors' files, nearest first."""
    entry = entries[name][index]
    parent = entry.table.get("extends")
    if parent is None:
        return entry.table, ()
    if not isinstance(parent, str):
        raise ProfileError(f"{entry.path}: extends = {parent!r} is not valid; expected the name of a profile")
    key = _parent(entries, name, index, parent, entry.path)
    chain = (*chain, (name, index))
    if key in chain:
        names = " -> ".join(n for n, _ in (*chain, key))
        raise ProfileError(f"{entry.path}: extends {parent!r} closes a cycle: {names}",
                           hint="one profile of the cycle must stand on its own")
    table, bases = _merged(entries, *key, chain)
    merged = {**_merge_profile(table, entry.table), "name": name}
    return merged, (entries[key[0]][key[1]].path, *bases)


def _merge_profile(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A child profile over its parent. Tolerance tables first drop the parent's element rule where the
    child replaces it (rtol/atol over ``elementwise = false``, or the reverse), so that extending an int8
    profile with an rtol is not refused as a clash nobody wrote."""
    merged = _deep_merge(base, over)
    below, above = base.get("tolerance"), over.get("tolerance")
    if isinstance(below, dict) and isinstance(above, dict):
        merged["tolerance"] = tolerance = _merge_rule(below, above)
        below_dtypes, above_dtypes = below.get("dtype"), above.get("dtype")
        if isinstance(below_dtypes, dict) and isinstance(above_dtypes, dict):
            for name, table in above_dtypes.items():
                if isinstance(below_dtypes.get(name), dict) and isinstance(table, dict):
                    tolerance["dtype"][name] = _merge_rule(below_dtypes[name], table)
    return merged


def _merge_rule(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    """One tolerance table over another, the child's element rule replacing the parent's."""
    return _deep_merge(without_replaced_rule(below, above), above)


def _parent(entries: dict[str, list[_Entry]], name: str, index: int, parent: str, path: Path) -> tuple[str, int]:
    """Which file a profile extends: its own name means the version it replaces, another name the final one."""
    if parent == name:
        if index == 0:
            raise ProfileError(f"{path}: extends {parent!r}, its own name, but no earlier layer has a profile "
                               f"{parent!r} to extend", hint="extend a built-in, or a profile in an earlier folder")
        return name, index - 1
    if parent not in entries:
        raise ProfileError(f"{path}: extends unknown profile {parent!r}{did_you_mean(parent, entries)}",
                           hint=f"known profiles: {', '.join(sorted(entries))}")
    return parent, len(entries[parent]) - 1


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; anything else, arrays included, is replaced by the child's value."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _deep_merge(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    return merged


def origin(profile: Profile) -> str:
    """Where a profile came from, for ``harness profiles``: layer, file, and what it extends."""
    where = f"{profile.origin} {profile.source}" if profile.origin else str(profile.source)
    if profile.extends:
        where += f", extends {profile.extends} ({profile.bases[0]})"
    return where


def _order(profile: Profile) -> tuple[int, int, str]:
    """Reference first (cpu), then by EP family, then by name: the matrix reads left to right."""
    rank = KNOWN_EPS.index(profile.ep) if profile.ep in KNOWN_EPS else len(KNOWN_EPS)
    return (rank, 0 if profile.name == "cpu" else 1, profile.name)


def select(profiles: dict[str, Profile], names: list[str] | None) -> list[Profile]:
    if not names:
        return list(profiles.values())
    chosen = []
    for name in names:
        if name not in profiles:
            raise UsageError(f"unknown profile {name!r}{did_you_mean(name, profiles)}",
                             hint=f"known profiles: {', '.join(profiles)}")
        if profiles[name] not in chosen:
            chosen.append(profiles[name])
    return chosen
