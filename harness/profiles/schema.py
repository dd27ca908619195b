"""Device profile schema: TOML in device_profiles/, validated strictly.

Every table is declared once in ``_SCHEMA``; an unknown key anywhere is refused with a did-you-mean,
and every value is type- and range-checked. To grow the schema, add a key here and a field below.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from harness.compare.tolerances import DEFAULT_TOLERANCES, ToleranceOverride
from harness.errors import ProfileError
from harness.model.transform_spec import CALIBRATION_METHODS, KINDS
from harness.perf.budgets import Budgets, parse_budgets
from harness.profiles.known_keys import EP_OPTIONS, KNOWN_EPS, REFERENCE_EP, SESSION_CONFIG_KEYS
from harness.profiles.trust import check_env, check_plugin
from harness.suggest import did_you_mean
from harness.task.gates import TaskGates, parse_task_table

# Beyond these a value is a typo or a misunderstanding, not a device: 1000 threads made a 1.5 s run take 34 s,
# and a worker capped at 1 MB cannot start Python.
MAX_THREADS = 256
MAX_CORES = 4096
MEMORY_LIMIT_MB = (16, 1 << 24)  # 16 MB .. 16 TiB
MAX_TIMEOUT_S = 7 * 24 * 3600.0
TRANSFORMS = KINDS  # [precision] transform names one of the transforms harness.model offers
LAUNCHERS = ("python", "qemu-aarch64", "node")  # harness/run/launchers.py resolves each
# [worker] cpu: the CPU model qemu emulates for launcher = "qemu-aarch64" (its -cpu), which decides the kernels
# onnxruntime picks (neoverse-n1: NEON + dot product; cortex-a57: baseline NEON). "max" is left out: it takes
# SVE2/SME paths that no common board has. harness/setup/arm64.py gives each its /proc/cpuinfo.
EMULATED_CPUS = ("cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1")
OPT_LEVELS = ("disable", "basic", "extended", "layout", "all")
EXEC_MODES = ("sequential", "parallel")
PRECISION_HINTS = ("f32", "f16", "bf16")
DTYPE_NAMES = (*DEFAULT_TOLERANCES, "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")


def _str(v: Any) -> bool: return isinstance(v, str)
def _bool(v: Any) -> bool: return isinstance(v, bool)
def _pos_int(v: Any) -> bool: return isinstance(v, int) and not isinstance(v, bool) and v > 0
def _nonneg_int(v: Any) -> bool: return isinstance(v, int) and not isinstance(v, bool) and v >= 0
def _pos_num(v: Any) -> bool: return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
def _str_map(v: Any) -> bool: return isinstance(v, dict) and all(isinstance(x, (str, int, float, bool)) for x in v.values())
def _str_list(v: Any) -> bool: return isinstance(v, list) and all(isinstance(x, str) for x in v)
def _one_of(*choices: str) -> Callable[[Any], bool]: return lambda v: v in choices
def _cores(v: Any) -> bool: return _pos_int(v) or (isinstance(v, list) and bool(v) and all(_nonneg_int(x) for x in v))
def _table(v: Any) -> bool: return isinstance(v, dict)


_EXPECT = {
    _str: "a string", _bool: "true or false", _pos_int: "a positive integer", _nonneg_int: "an integer >= 0",
    _pos_num: "a positive number", _str_map: "a table of strings", _str_list: "a list of strings",
    _cores: "a positive core count or a list of core ids", _table: "a table",
}

_SCHEMA: dict[str, dict[str, Callable[[Any], bool]]] = {
    "": {"name": _str, "description": _str, "target": _str, "timeout_s": _pos_num, "latency": _bool, "ep": _table, "session": _table,
         "precision": _table, "constraints": _table, "tolerance": _table, "budgets": _table,
         "known_failures": lambda v: isinstance(v, list), "requires": _table, "worker": _table,
         "extends": _str, "task": _table},
    "ep": {"name": _str, "plugin": _str, "options": _str_map, "device_type": _one_of("CPU", "GPU", "NPU"),
           "device_metadata": _str_map, "env": _str_map, "precision_hint": _one_of(*PRECISION_HINTS)},
    "session": {"intra_op_threads": _nonneg_int, "inter_op_threads": _nonneg_int,
                "graph_optimization": _one_of(*OPT_LEVELS), "cpu_arena": _bool, "memory_pattern": _bool,
                "execution_mode": _one_of(*EXEC_MODES), "strict_placement": _bool, "config": _str_map},
    "precision": {"transform": _one_of(*TRANSFORMS), "keep_io_types": _bool,
                  "calibration": _one_of(*CALIBRATION_METHODS), "per_channel": _bool, "op_block_list": _str_list,
                  "mixed_rtol": _pos_num, "mixed_atol": _pos_num},
    "worker": {"launcher": _one_of(*LAUNCHERS), "command": _str_list, "env": _str_map,
               "cpu": _one_of(*EMULATED_CPUS)},
    "constraints": {"cpu_cores": _cores, "memory_limit_mb": _pos_int},
    "requires": {"packages": _str_list, "install": _str, "env": _str_list},
    "known_failures": {"case": _str, "output": _str, "reason": _str, "strict": _bool},
}


@dataclass(frozen=True)
class KnownFailure:
    case: str
    reason: str
    output: str = "*"
    strict: bool = False  # the pytest plugin's xfail is strict: an unexpected pass fails the item

    def matches(self, case: str) -> bool:
        return fnmatch.fnmatchcase(case, self.case)


@dataclass(frozen=True)
class OutputOverride:
    """A tolerance override for outputs of cases matching glob patterns (``[[tolerance.override]]``)."""

    case: str
    output: str
    override: ToleranceOverride

    def matches(self, case: str, output: str) -> bool:
        return fnmatch.fnmatchcase(case, self.case) and fnmatch.fnmatchcase(output, self.output)


@dataclass(frozen=True)
class ProfileTolerance:
    """Tolerance layers a profile adds: for every output, per dtype, then per case/output pattern."""

    everything: ToleranceOverride | None = None
    per_dtype: dict[str, ToleranceOverride] = field(default_factory=dict)
    overrides: tuple[OutputOverride, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    source: Path | None
    description: str = ""
    target: str = ""
    timeout_s: float = 120.0
    latency: bool = True  # false: its latency means nothing (e.g. the reference evaluator); never sampled
    ep: str = "CPUExecutionProvider"
    plugin: str | None = None
    ep_options: dict[str, str] = field(default_factory=dict)
    device_type: str | None = None
    device_metadata: dict[str, str] = field(default_factory=dict)
    ep_env: dict[str, str] = field(default_factory=dict)
    precision_hint: str | None = None
    session: dict[str, Any] = field(default_factory=dict)
    transform: str = "none"
    keep_io_types: bool = True
    # [precision] options a transform reads (calibration, per_channel, op_block_list, mixed_rtol, mixed_atol)
    precision_options: dict[str, Any] = field(default_factory=dict)
    # [worker]: how the profile's worker process starts (launcher, command prefix, extra environment)
    launcher: str = "python"
    launch_command: tuple[str, ...] = ()
    launch_env: dict[str, str] = field(default_factory=dict)
    # [worker] cpu: the emulated CPU model (launcher = "qemu-aarch64"); None for a worker on the host's own CPU
    emulated_cpu: str | None = None
    cpu_cores: int | list[int] | None = None
    memory_limit_mb: int | None = None
    tolerance: ProfileTolerance = field(default_factory=ProfileTolerance)
    budgets: Budgets | None = None
    known_failures: tuple[KnownFailure, ...] = ()
    requires_packages: tuple[str, ...] = ()
    requires_env: tuple[str, ...] = ()
    install_hint: str = ""
    # Where the registry found it: "built-in", "./device_profiles", "HARNESS_PROFILES", "--profiles-dir"
    # ("" when loaded directly from a file), the profile it extends, and the files it inherits from, nearest first.
    origin: str = ""
    extends: str | None = None
    bases: tuple[Path, ...] = ()
    # Accepted but worth saying (e.g. more threads than this host has cores): one line each, for reports.
    notes: tuple[str, ...] = ()
    # [task]: gates on task metrics (top1_agreement >= 0.99 ...), checked by harness.task after the elementwise verdict
    task_gates: TaskGates = field(default_factory=TaskGates)

    @property
    def emulated(self) -> bool:
        """Its worker runs under emulation: numerics are the device's, timings and memory are the emulator's."""
        return self.emulated_cpu is not None

    @property
    def emulation(self) -> str:
        """What runs the device's code, for reports ("qemu-aarch64 neoverse-n1"); "" for the host's own CPU."""
        return f"{self.launcher} {self.emulated_cpu}" if self.emulated_cpu else ""

    @property
    def strict_placement(self) -> bool:
        return bool(self.session.get("strict_placement", False))

    def known_failure(self, case: str) -> KnownFailure | None:
        return next((k for k in self.known_failures if k.matches(case)), None)

    def worker_spec(self) -> dict[str, Any]:
        """The JSON the worker needs to build a session: nothing that requires the harness to interpret."""
        return {"name": self.name, "ep": self.ep, "plugin": self.plugin, "ep_options": dict(self.ep_options),
                "device_type": self.device_type, "device_metadata": dict(self.device_metadata),
                "precision_hint": self.precision_hint, "session": dict(self.session), "env": dict(self.ep_env),
                "cpu_cores": self.cpu_cores, "memory_limit_mb": self.memory_limit_mb}


def _check_table(table: dict, kind: str, where: str) -> None:
    allowed = _SCHEMA[kind]
    for key, value in table.items():
        place = f"{where} [{kind}]" if kind else where
        if key not in allowed:
            raise ProfileError(f"{place}: unknown key {key!r}{did_you_mean(key, allowed)}",
                               hint=f"known keys: {', '.join(allowed)}")
        check = allowed[key]
        if not check(value):
            expect = _EXPECT.get(check, "one of the documented values")
            if check.__name__ == "<lambda>" and kind in ("session", "precision", "ep", "worker"):
                expect = _choices_for(kind, key) or expect
            raise ProfileError(f"{place}: {key} = {value!r} is not valid; expected {expect}")


def _choices_for(kind: str, key: str) -> str:
    table = {("precision", "calibration"): CALIBRATION_METHODS, ("worker", "launcher"): LAUNCHERS,
             ("worker", "cpu"): EMULATED_CPUS,
             ("session", "graph_optimization"): OPT_LEVELS, ("session", "execution_mode"): EXEC_MODES,
             ("precision", "transform"): TRANSFORMS, ("ep", "precision_hint"): PRECISION_HINTS,
             ("ep", "device_type"): ("CPU", "GPU", "NPU")}
    choices = table.get((kind, key))
    return "one of " + ", ".join(choices) if choices else ""


def _parse_tolerance(table: dict, where: str) -> ProfileTolerance:
    table = dict(table)
    why = table.pop("why", "")
    if not isinstance(why, str):
        raise ProfileError(f"{where} [tolerance]: why must be a string")
    per_dtype_raw = table.pop("dtype", {})
    overrides_raw = table.pop("override", [])
    if not isinstance(per_dtype_raw, dict) or not isinstance(overrides_raw, list):
        raise ProfileError(f"{where} [tolerance]: 'dtype' must be a table and 'override' an array of tables")
    everything = ToleranceOverride.from_mapping(table, f"{where} [tolerance]") if table else None
    for name in per_dtype_raw:
        if name not in DTYPE_NAMES:
            raise ProfileError(f"{where} [tolerance.dtype.{name}]: unknown dtype {name!r}{did_you_mean(name, DTYPE_NAMES)}",
                               hint=f"known: {', '.join(DTYPE_NAMES)}")
    per_dtype = {name: ToleranceOverride.from_mapping(v, f"{where} [tolerance.dtype.{name}]")
                 for name, v in per_dtype_raw.items()}
    overrides = []
    for i, raw in enumerate(overrides_raw):
        if not isinstance(raw, dict):
            raise ProfileError(f"{where} [[tolerance.override]] #{i + 1}: must be a table with case, output and "
                               f"tolerance keys, got {raw!r}")
        raw = dict(raw)
        case, output = raw.pop("case", "*"), raw.pop("output", "*")
        overrides.append(OutputOverride(str(case), str(output),
                                        ToleranceOverride.from_mapping(raw, f"{where} [[tolerance.override]] #{i + 1}")))
    return ProfileTolerance(everything, per_dtype, tuple(overrides), why)


def _parse_known_failures(items: list, where: str) -> tuple[KnownFailure, ...]:
    result = []
    for i, item in enumerate(items):
        place = f"{where} [[known_failures]] #{i + 1}"
        if not isinstance(item, dict):
            raise ProfileError(f"{place}: must be a table with case and reason")
        _check_table(item, "known_failures", place)
        if not item.get("reason", "").strip():
            raise ProfileError(f"{place}: a known failure needs a reason", hint="say why this case fails here")
        if "case" not in item:
            raise ProfileError(f"{place}: a known failure needs a case pattern")
        result.append(KnownFailure(item["case"], item["reason"], item.get("output", "*"), item.get("strict", False)))
    return tuple(result)


def parse_profile(data: dict, source: Path | None, default_name: str) -> Profile:
    where = str(source) if source else default_name
    _check_table(data, "", where)
    for kind in ("ep", "session", "precision", "constraints", "requires", "worker"):
        _check_table(data.get(kind, {}), kind, where)
    ep = data.get("ep", {})
    name = data.get("name", default_name)
    ep_name = ep.get("name", "CPUExecutionProvider")
    if ep_name not in KNOWN_EPS:
        raise ProfileError(f"{where}: unknown execution provider {ep_name!r}{did_you_mean(ep_name, KNOWN_EPS)}",
                           hint=f"known: {', '.join(KNOWN_EPS)}")
    precision, constraints, requires = data.get("precision", {}), data.get("constraints", {}), data.get("requires", {})
    worker = data.get("worker", {})
    profile = Profile(
        name=name, source=source, description=data.get("description", ""), target=data.get("target", ""),
        timeout_s=float(data.get("timeout_s", 120.0)), latency=data.get("latency", True), ep=ep_name, plugin=ep.get("plugin"),
        ep_options={k: str(v) for k, v in ep.get("options", {}).items()}, device_type=ep.get("device_type"),
        device_metadata={k: str(v) for k, v in ep.get("device_metadata", {}).items()},
        ep_env={k: str(v) for k, v in ep.get("env", {}).items()}, precision_hint=ep.get("precision_hint"),
        session=dict(data.get("session", {})), transform=precision.get("transform", "none"),
        keep_io_types=precision.get("keep_io_types", True),
        precision_options={k: v for k, v in precision.items() if k not in ("transform", "keep_io_types")},
        launcher=worker.get("launcher", "python"), launch_command=tuple(worker.get("command", ())),
        launch_env={k: str(v) for k, v in worker.get("env", {}).items()}, emulated_cpu=worker.get("cpu"),
        cpu_cores=constraints.get("cpu_cores"),
        memory_limit_mb=constraints.get("memory_limit_mb"),
        tolerance=_parse_tolerance(data.get("tolerance", {}), where),
        budgets=parse_budgets(data["budgets"], f"{where} [budgets]") if "budgets" in data else None,
        known_failures=_parse_known_failures(data.get("known_failures", []), where),
        requires_packages=tuple(requires.get("packages", ())), requires_env=tuple(requires.get("env", ())),
        install_hint=requires.get("install", ""),
        task_gates=parse_task_table(data["task"], where) if "task" in data else TaskGates())
    _check_consistency(profile, where)
    _check_code_and_env(profile, where)
    _check_onnxruntime_keys(profile, where)
    return replace(profile, notes=_host_notes(profile, where))


def _check_consistency(p: Profile, where: str) -> None:
    if p.transform == "fp16" and p.precision_hint == "bf16":
        raise ProfileError(f"{where}: precision.transform = 'fp16' contradicts ep.precision_hint = 'bf16'",
                           hint="use one reduced precision: drop the transform or the hint")
    if p.transform.startswith("int8") and p.precision_hint in ("f16", "bf16"):
        raise ProfileError(f"{where}: an int8 transform contradicts ep.precision_hint = {p.precision_hint!r}")
    if not p.keep_io_types and p.transform.startswith("fp16"):
        raise ProfileError(f"{where}: precision.keep_io_types = false is not supported: inputs and goldens stay "
                           f"float32, and a model with float16 inputs and outputs cannot be fed or compared with them",
                           hint="drop keep_io_types (the transform keeps float32 inputs and outputs)")
    if p.precision_options and not p.transform.startswith(("fp16", "int8")):
        raise ProfileError(f"{where}: [precision] options {sorted(p.precision_options)} need a transform",
                           hint="set precision.transform, or drop the options")
    if p.launch_command and p.launcher != "python":
        raise ProfileError(f"{where}: worker.command is only understood by launcher = 'python'")
    _check_emulation(p, where)
    if p.precision_hint and p.ep != "OpenVINOExecutionProvider":
        raise ProfileError(f"{where}: ep.precision_hint is only understood by the OpenVINO EP, not {p.ep}")
    if p.plugin and p.ep in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"):
        raise ProfileError(f"{where}: {p.ep} is built into onnxruntime; ep.plugin must not be set")
    cores = p.cpu_cores
    if isinstance(cores, list) and len(set(cores)) != len(cores):
        raise ProfileError(f"{where}: constraints.cpu_cores lists a core twice: {cores}")
    threads = p.session.get("intra_op_threads")
    core_count = len(cores) if isinstance(cores, list) else cores
    if core_count and threads and threads > core_count:
        count = f" ({core_count} cores)" if isinstance(cores, list) else ""
        raise ProfileError(f"{where}: session.intra_op_threads = {threads} exceeds constraints.cpu_cores = {cores}{count}")


def _check_emulation(p: Profile, where: str) -> None:
    """An emulated CPU is named, and only for the emulating launcher; its timings are the emulator's, so a
    profile under emulation must say latency = false and carry no budgets (they would measure qemu)."""
    if p.emulated_cpu and p.launcher != "qemu-aarch64":
        raise ProfileError(f"{where}: worker.cpu = {p.emulated_cpu!r} is only understood by launcher = 'qemu-aarch64'",
                           hint="drop worker.cpu, or set worker.launcher = 'qemu-aarch64'")
    if p.launcher != "qemu-aarch64":
        return
    if not p.emulated_cpu:
        raise ProfileError(f"{where}: launcher = 'qemu-aarch64' needs worker.cpu, the CPU model to emulate",
                           hint=f"e.g. cpu = \"neoverse-n1\"; one of {', '.join(EMULATED_CPUS)}")
    if p.latency:
        raise ProfileError(f"{where}: a worker under emulation (launcher = 'qemu-aarch64') times qemu, not a device",
                           hint="set latency = false: its numerics are checked, its latency is never sampled")
    if p.budgets is not None:
        raise ProfileError(f"{where}: [budgets] cannot apply to a worker under emulation (launcher = 'qemu-aarch64')",
                           hint="drop [budgets]; budget the real device's profile instead")


def _check_code_and_env(p: Profile, where: str) -> None:
    """Profiles are code (harness.profiles.trust): the plugin must be an EP package, the env not the harness's."""
    if p.plugin is not None:
        check_plugin(p.plugin, where)
    check_env(p.ep_env, "ep.env", where)
    check_env(p.launch_env, "worker.env", where)


def _check_onnxruntime_keys(p: Profile, where: str) -> None:
    """onnxruntime ignores option and config keys it does not know; refuse them here instead."""
    _check_ranges(p, where)
    if p.ep == REFERENCE_EP:
        _check_reference(p, where)
        return
    known_options = EP_OPTIONS[p.ep]
    for key in p.ep_options:
        if key not in known_options:
            hint = f"known keys: {', '.join(known_options)}" if known_options else f"{p.ep} takes no [ep.options]"
            raise ProfileError(f"{where}: [ep.options] {key!r} is not an option of {p.ep}"
                               f"{did_you_mean(key, known_options)}", hint=hint)
    for key in p.session.get("config", {}):
        if key not in SESSION_CONFIG_KEYS:
            raise ProfileError(f"{where}: [session.config] {key!r} is not an onnxruntime session config key"
                               f"{did_you_mean(key, SESSION_CONFIG_KEYS)}",
                               hint=f"known keys: {', '.join(SESSION_CONFIG_KEYS)}")
    for key in ("intra_op_threads", "inter_op_threads"):
        if p.session.get(key, 0) > MAX_THREADS:
            raise ProfileError(f"{where}: session.{key} = {p.session[key]} is more than {MAX_THREADS} threads",
                               hint="use at most the device's core count (0 lets onnxruntime choose)")


def _check_ranges(p: Profile, where: str) -> None:
    """Values the types allow but no device has: refused in one line rather than run for hours or not at all."""
    low, high = MEMORY_LIMIT_MB
    if p.memory_limit_mb is not None and not low <= p.memory_limit_mb <= high:
        raise ProfileError(f"{where}: constraints.memory_limit_mb = {p.memory_limit_mb} is outside {low}..{high}",
                           hint="give the device's memory budget in MB, e.g. 512")
    cores = p.cpu_cores if isinstance(p.cpu_cores, list) else [p.cpu_cores or 0]
    if max(cores, default=0) >= MAX_CORES:
        raise ProfileError(f"{where}: constraints.cpu_cores = {p.cpu_cores} names more than {MAX_CORES} cores",
                           hint="give a core count, or a list of core ids this host has")
    if p.timeout_s > MAX_TIMEOUT_S:
        raise ProfileError(f"{where}: timeout_s = {p.timeout_s} is more than a week",
                           hint="give the most seconds one cell may take, e.g. 120")


def _check_reference(p: Profile, where: str) -> None:
    """onnx.reference runs no onnxruntime session: onnxruntime's settings would be silently ignored, so refuse."""
    set_here = [name for name, value in (("plugin", p.plugin), ("options", p.ep_options),
                                         ("device_type", p.device_type), ("device_metadata", p.device_metadata),
                                         ("precision_hint", p.precision_hint)) if value]
    ignored = [f"ep.{name}" for name in set_here] + [f"session.{key}" for key in p.session]
    if ignored:
        raise ProfileError(f"{where}: {REFERENCE_EP} runs onnx.reference, not onnxruntime; "
                           f"{', '.join(ignored)} would be ignored",
                           hint="drop them; [constraints], [ep.env], tolerances and budgets still apply")


def _host_notes(p: Profile, where: str) -> tuple[str, ...]:
    """What this host cannot give the profile is allowed (it may describe a bigger device), but said: more
    threads than cores, and cpu_cores ids the host does not have (the worker pins to the others, or to none)."""
    offered = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    notes = [f"{where}: session.{key} = {p.session[key]} is more than the {len(offered)} cores this host offers; "
             f"threads will share cores and latency will not show the device"
             for key in ("intra_op_threads", "inter_op_threads") if p.session.get(key, 0) > len(offered)]
    missing = sorted(set(p.cpu_cores) - offered) if isinstance(p.cpu_cores, list) else []
    if missing:
        notes.append(f"{where}: constraints.cpu_cores names cores {missing} this host does not offer "
                     f"(it offers {sorted(offered)}); the worker is pinned to those it has, and not pinned when it has none")
    elif isinstance(p.cpu_cores, int) and p.cpu_cores > len(offered):
        notes.append(f"{where}: constraints.cpu_cores = {p.cpu_cores} is more than the {len(offered)} cores this "
                     f"host offers; the worker runs on {len(offered)}")
    return tuple(notes)


def read_table(path: Path) -> dict[str, Any]:
    """The profile file's raw TOML table, named after its file; the registry merges these before parsing."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: malformed TOML ({exc})", hint="fix the syntax; see device_profiles/cpu.toml") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None
    name = data.get("name", path.stem)
    if name != path.stem:
        raise ProfileError(f"{path}: name = {name!r} differs from the file name {path.stem!r}",
                           hint="profiles are selected by file name; make them equal")
    return data


def load_profile(path: Path) -> Profile:
    """One self-contained profile file. A profile that extends another needs the others: see registry.load_all."""
    data = read_table(path)
    if "extends" in data:
        raise ProfileError(f"{path}: extends = {data['extends']!r} needs the profile it extends",
                           hint="load it with harness.profiles.registry.load_all, which resolves extends")
    return parse_profile(data, path, path.stem)
