"""The set of device profiles: every *.toml in device_profiles/, selected by name."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UsageError
from harness.profiles.schema import Profile, load_profile
from harness.suggest import did_you_mean


def load_all(folder: Path) -> dict[str, Profile]:
    if not folder.is_dir():
        raise UsageError(f"profile folder {folder} not found", hint="pass --profiles-dir or run from the repository root")
    loaded = [load_profile(path) for path in folder.glob("*.toml")]
    profiles = {p.name: p for p in sorted(loaded, key=_order)}
    if not profiles:
        raise UsageError(f"no *.toml profiles in {folder}")
    return profiles


_EP_ORDER = ("CPUExecutionProvider", "OpenVINOExecutionProvider", "WebGpuExecutionProvider",
             "CUDAExecutionProvider", "TensorrtExecutionProvider")


def _order(profile: Profile) -> tuple[int, int, str]:
    """Reference first (cpu), then by EP family, then by name: the matrix reads left to right."""
    rank = _EP_ORDER.index(profile.ep) if profile.ep in _EP_ORDER else len(_EP_ORDER)
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
