"""``harness setup arm64``: an aarch64 Python with onnxruntime and numpy, run on this host under qemu user mode.

The emulated profiles (``[worker] launcher = "qemu-aarch64"``) run the harness's own worker in that Python,
so their numbers are those of onnxruntime's aarch64 kernels (MLAS NEON, dot product), computed bit for bit by
qemu, without an ARM board. The recipe needs no binfmt, chroot or root filesystem image:

- ``qemu-aarch64-static`` from the host (Debian: ``apt-get install qemu-user-static``);
- Debian 12's arm64 ``python3.11`` and the libraries it and onnxruntime link (libc6, libssl3, libstdc++6 ...),
  resolved by apt in a private state folder (the host's own apt configuration is not touched) and unpacked
  with ``dpkg-deb -x`` into ``sysroot/``;
- the aarch64 manylinux wheels of onnxruntime and numpy, at the host's versions, installed by pip into the
  sysroot's ``dist-packages``;
- one folder per CPU model (``cpus/<cpu>/``): links to the sysroot plus a ``proc/cpuinfo`` of that core.
  qemu's ``-L`` makes the worker read it before the host's x86 one, on which onnxruntime's cpuinfo crashes.

A stamp (``setup.json``, the versions) is written last and atomically: without it the set-up is partial, and
``setup`` starts again from nothing. About 45 s and 250 MB.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_bytes
from harness.errors import HarnessError
from harness.profiles.schema import Profile
from harness.run.launchers import Launch, LauncherUnavailable
from harness.setup import cache_root

QEMU = "qemu-aarch64-static"
FIX = "harness setup arm64"
FIX_QEMU = f"apt-get install qemu-user-static, then {FIX}"
STAMP_FORMAT = 1
PYTHON = "usr/bin/python3.11"
PYTHON_VERSION = "3.11"
SITE = "usr/lib/python3/dist-packages"  # on the path of Debian's python3.11 (its site.py), so no PYTHONPATH
# What apt resolves, with every dependency, from an empty system: the interpreter, its standard library, and
# the C++ runtime onnxruntime links.
DEBIAN_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_SOURCES = tuple(f"deb [signed-by={DEBIAN_KEYRING}] http://deb.debian.org/{archive} {suite} main"
                       for archive, suite in (("debian", "bookworm"), ("debian", "bookworm-updates"),
                                              ("debian-security", "bookworm-security")))
# onnxruntime's aarch64 wheels are manylinux_2_28, numpy's 2_17 or 2_28; Debian 12's glibc (2.36) runs both.
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                   "manylinux2014_aarch64")
WHEELS = ("onnxruntime", "numpy")

# /proc/cpuinfo per emulated core: MIDR variant, part, revision (ARM's implementer 0x41) and the Linux hwcap
# names that core reports. v8.0 cores: NEON and crypto; v8.2 cores add dot product, fp16 and atomics.
_V80 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_V82 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs"
CORES: dict[str, tuple[str, str, str, str]] = {
    "cortex-a35": ("0x0", "0xd04", "2", _V80), "cortex-a53": ("0x0", "0xd03", "4", _V80),
    "cortex-a57": ("0x1", "0xd07", "1", _V80), "cortex-a72": ("0x0", "0xd08", "2", _V80),
    "cortex-a76": ("0x4", "0xd0b", "1", _V82), "neoverse-n1": ("0x3", "0xd0c", "1", _V82),
}

Say = Callable[[str], None]


class SetupError(HarnessError):
    """The emulated environment could not be set up: a tool is missing, or a download or install failed."""


def folder() -> Path:
    return cache_root() / "arm64"


def sysroot() -> Path:
    return folder() / "sysroot"


def cpu_root(cpu: str) -> Path:
    """The ``-L`` folder for one CPU model: the sysroot's entries, and that core's /proc/cpuinfo."""
    return folder() / "cpus" / cpu


def stamp_path() -> Path:
    return folder() / "setup.json"


def host_versions() -> dict[str, str]:
    """The versions the emulated worker must have: those installed next to this harness (read from their
    metadata, so that nothing is imported)."""
    versions = {}
    for name in WHEELS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise SetupError(f"{name} is not installed next to the harness ({sys.executable}); the aarch64 "
                             f"worker is pinned to its version", hint=f"pip install {name}, then {FIX}") from None
    return versions


def read_stamp() -> dict[str, Any] | None:
    try:
        stamp = json.loads(stamp_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("format") == STAMP_FORMAT else None


def state() -> str:
    """"" when the emulated worker can start; else why not, ending with the command that fixes it."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed; fix: {FIX_QEMU}"
    stamp = read_stamp()
    if stamp is None:
        return f"the aarch64 Python is not set up in {folder()}; fix: {FIX}"
    try:
        wanted = host_versions()
    except SetupError as exc:
        return exc.one_line()
    if stamp.get("host") != wanted:
        have = ", ".join(f"{k} {v}" for k, v in sorted((stamp.get("host") or {}).items()))
        need = ", ".join(f"{k} {v}" for k, v in sorted(wanted.items()))
        return f"the aarch64 Python in {folder()} was set up for {have}, the host has {need}; fix: {FIX}"
    return ""


def launch(profile: Profile) -> Launch:
    """The worker's command: the aarch64 Python under qemu, emulating the profile's CPU model, with that core's
    cpuinfo first on qemu's path. PYTHONNOUSERSITE keeps the host's x86 user site-packages out of it."""
    why = state()
    if why:
        raise LauncherUnavailable(why)  # shown next to the profile's name (its SKIPPED line), so not named here
    cpu = profile.emulated_cpu or ""
    if cpu not in CORES:
        raise LauncherUnavailable(f"worker.cpu {cpu!r} of profile {profile.name!r} is not an emulated CPU this "
                                  f"harness sets up (known: {', '.join(CORES)})")
    root = cpu_root(cpu)
    return Launch((shutil.which(QEMU) or QEMU, "-L", str(root), "-cpu", cpu, str(root / PYTHON)),
                  {"PYTHONNOUSERSITE": "1"})


def setup(force: bool = False, say: Say = print) -> Path:
    """Install the aarch64 Python, onnxruntime and numpy into the cache (nothing when already complete)."""
    why = state()
    if not why and not force:
        stamp = read_stamp() or {}
        say(f"arm64: already set up ({_versions_line(stamp)}); --force sets it up again")
        return folder()
    if shutil.which(QEMU) is None:
        raise SetupError(f"{QEMU} is not installed: the emulated aarch64 worker runs under it",
                         hint=FIX_QEMU.replace(", then", " (root), then run"))
    start = time.monotonic()
    wanted = host_versions()
    stamp_path().unlink(missing_ok=True)  # from here on the set-up is partial until the stamp is back
    for stale in (sysroot(), folder() / "cpus", folder() / "work"):
        shutil.rmtree(stale, ignore_errors=True)
    packages = _install_debian(folder() / "work", sysroot(), say)
    installed = _install_wheels(wanted, sysroot() / SITE, say)
    _make_cpu_roots(sysroot(), say)
    shutil.rmtree(folder() / "work", ignore_errors=True)
    seconds, size_mb = time.monotonic() - start, _size_mb(folder())
    stamp = {"format": STAMP_FORMAT, "host": wanted, "installed": installed, "debian": packages,
             "python": PYTHON_VERSION, "cpus": list(CORES), "seconds": round(seconds, 1), "size_mb": round(size_mb)}
    atomic_write_bytes(stamp_path(), json.dumps(stamp, indent=2).encode())
    say(f"arm64: set up in {seconds:.0f} s, {size_mb:.0f} MB ({_versions_line(stamp)})")
    return folder()


def _versions_line(stamp: dict[str, Any]) -> str:
    installed = stamp.get("installed") or {}
    return f"python {stamp.get('python')}, " + ", ".join(f"{k} {v}" for k, v in sorted(installed.items()))


def _run(argv: Sequence[str], what: str, cwd: Path | None = None) -> str:
    """Run a set-up step; a failure is one SetupError with the step and the tool's last words."""
    try:
        proc = subprocess.run(list(argv), check=False, cwd=cwd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"arm64 setup: {what} could not run: {exc}", hint=f"fix the cause, then {FIX}") from None
    if proc.returncode != 0:
        words = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise SetupError(f"arm64 setup: {what} failed (exit {proc.returncode}): {words}",
                         hint=f"fix the cause, then {FIX}")
    return proc.stdout


def _apt_options(work: Path) -> list[str]:
    """apt in a private folder: arm64 only, an empty dpkg status (so it resolves every dependency), Debian 12's
    archive; the host's sources, lists and locks are not touched."""
    etc = work / "etc"
    return ["-o", f"Dir::Etc::SourceList={etc / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={etc / 'parts'}",
            "-o", f"Dir::Etc::Preferences={etc / 'preferences'}", "-o", f"Dir::Etc::PreferencesParts={etc / 'parts'}",
            "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::State::status={work / 'status'}",
            "-o", f"Dir::Cache={work / 'cache'}", "-o", "APT::Architecture=arm64", "-o", "APT::Architectures::=arm64",
            "-o", "Debug::NoLocking=1", "-q", *(["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else [])]


def _install_debian(work: Path, root: Path, say: Say) -> dict[str, str]:
    """Debian 12's arm64 python3.11 and its dependency closure, unpacked into ``root``; returns name -> version."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SetupError(f"arm64 setup needs {tool} (a Debian or Ubuntu host) to fetch Debian's arm64 python3.11",
                             hint="run it on a Debian-based host or image")
    if not Path(DEBIAN_KEYRING).is_file():
        raise SetupError(f"arm64 setup: Debian's archive keyring {DEBIAN_KEYRING} is missing",
                         hint=f"apt-get install debian-archive-keyring, then {FIX}")
    for sub in ("etc/parts", "lists/partial", "cache/archives/partial", "debs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "etc" / "sources.list").write_text("\n".join(DEBIAN_SOURCES) + "\n", encoding="utf-8")
    (work / "status").write_text("", encoding="utf-8")
    apt = ["apt-get", *_apt_options(work)]
    say("arm64: reading Debian 12's arm64 package lists (deb.debian.org)")
    _run([*apt, "update"], "apt-get update (Debian 12 arm64 lists)")
    plan = _run([*apt, "-s", "--no-install-recommends", "install", *DEBIAN_PACKAGES], "resolving python3.11 for arm64")
    packages = dict(line.split()[1:3] for line in plan.splitlines() if line.startswith("Inst "))
    packages = {name: version.strip("()") for name, version in packages.items()}
    say(f"arm64: downloading {len(packages)} Debian arm64 packages: {', '.join(sorted(packages))}")
    _run([*apt, "download", *packages], "apt-get download (arm64 packages)", cwd=work / "debs")
    debs = sorted((work / "debs").glob("*.deb"))
    if len(debs) != len(packages):
        raise SetupError(f"arm64 setup: apt downloaded {len(debs)} of {len(packages)} packages", hint=f"run {FIX} again")
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(root)], f"unpacking {deb.name}")
    if not (root / PYTHON).is_file():
        raise SetupError(f"arm64 setup: {PYTHON} is not in the unpacked packages", hint=f"run {FIX} --force")
    return packages


def _install_wheels(wanted: dict[str, str], site: Path, say: Say) -> dict[str, str]:
    """The aarch64 wheels at the host's versions. numpy's exact release may lack a cp311 aarch64 wheel: then the
    newest of the same minor series, said out loud (onnxruntime must match exactly: its kernels are the point)."""
    installed: dict[str, str] = {}
    for name, version in wanted.items():
        specs = [f"{name}=={version}"]
        if name == "numpy":
            specs.append(f"numpy=={'.'.join(version.split('.')[:2])}.*")
        installed[name] = _install_wheel(name, specs, site, say)
        if installed[name] != version:
            say(f"arm64: note: numpy {version} has no cp311 aarch64 wheel; installed {installed[name]}, the nearest")
    return installed


def _install_wheel(name: str, specs: list[str], site: Path, say: Say) -> str:
    platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    failure: SetupError | None = None
    for spec in specs:
        say(f"arm64: installing {spec} (aarch64 wheel, cp311) into {site}")
        argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--target", str(site), "--only-binary=:all:", "--implementation", "cp",
                "--python-version", PYTHON_VERSION, *platforms, "--upgrade", spec]
        try:
            _run(argv, f"pip install {spec} for aarch64")
        except SetupError as exc:
            failure = exc
            continue
        return _dist_version(site, name)
    assert failure is not None
    raise failure


def _dist_version(site: Path, name: str) -> str:
    found = [d.name for d in site.glob(f"{name}-*.dist-info")]
    if len(found) != 1:
        raise SetupError(f"arm64 setup: expected one {name} in {site}, found {found or 'none'}", hint=f"run {FIX} --force")
    return found[0][len(name) + 1:].removesuffix(".dist-info")


def _make_cpu_roots(root: Path, say: Say) -> None:
    """Per CPU model, a folder of links to the sysroot's entries and its own proc/cpuinfo."""
    for cpu in CORES:
        place = cpu_root(cpu)
        (place / "proc").mkdir(parents=True, exist_ok=True)
        for entry in root.iterdir():
            if entry.name != "proc":
                (place / entry.name).symlink_to(os.path.relpath(entry, place))
        (place / "proc" / "cpuinfo").write_text(cpuinfo(cpu), encoding="ascii")
    say(f"arm64: CPU models {', '.join(CORES)}, each with its /proc/cpuinfo under {folder() / 'cpus'}")


def cpuinfo(cpu: str) -> str:
    """The /proc/cpuinfo an aarch64 Linux shows on one core of ``cpu``."""
    variant, part, revision, features = CORES[cpu]
    return (f"processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n")


def _size_mb(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 1e6
