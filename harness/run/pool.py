"""Parent side of the isolated workers: spawn, talk, time out, and classify deaths.

A worker is a subprocess per profile, reused across cases, started as its profile's ``[worker]`` table says
(``Launch``: a command that runs a Python, then ``-m harness.worker --spec <JSON>``). Replies are read on a
background thread so that every request can time out; a worker that dies, hangs or is killed for memory costs
one cell, and the next request gets a fresh worker.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.profiles.schema import Profile
from harness.run.launchers import Launch, LauncherUnavailable, launch_for
from harness.worker import protocol

HELLO_TIMEOUT_S = 120.0
WORKER_MODULE = ("-m", "harness.worker")
# A worker is out of memory only on its own word: these in its stderr (a MemoryError or bad_alloc that killed it),
# or its oom error reply. A worker killed by a signal from outside is a CRASH naming the signal, even under a
# memory limit (the limit is RLIMIT_DATA, which fails allocations; it never sends a signal).
MEMORY_WORDS = ("MemoryError", "bad_alloc", "Failed to allocate", "Cannot allocate memory")
_KILLED = tuple(-s for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
_PR_SET_PDEATHSIG = 1


class WorkerFailure(Exception):
    """The worker died or hung; ``outcome`` is CRASH, TIMEOUT or OOM."""

    def __init__(self, outcome: str, message: str, *, signal_name: str = "", stderr_tail: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome
        self.signal_name = signal_name
        self.stderr_tail = stderr_tail


@dataclass
class Reply:
    header: dict[str, Any]
    tensors: dict[str, Any]


def signal_name(returncode: int | None) -> str:
    if returncode is None or returncode >= 0:
        return f"exit code {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _widen_pipe(fd: int, size: int = 1 << 20) -> int:
    """Grow the request pipe (Linux, up to 1 MiB unprivileged) so a cell's inputs fit without blocking."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
        return fcntl.fcntl(fd, getattr(fcntl, "F_GETPIPE_SZ", 1032))
    except (ImportError, OSError):
        return 64 * 1024


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """Linux: a worker is SIGKILLed when the thread that spawned it exits (the harness killed, even with -9),
    also while it is stopped (SIGSTOP), when its own watch on its parent cannot run. None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec: no imports, no allocation worth a lock
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the harness died before the call above took effect
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


class _Spawner:
    """One long-lived thread that starts every worker. PR_SET_PDEATHSIG fires when the spawning *thread* exits,
    so workers started from the executor's short-lived cell threads would be killed when those threads end;
    started here, they die with the process and only with it."""

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._lock = threading.Lock()
        self._preexec = _pdeathsig_preexec()

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        if self._preexec is None:
            return subprocess.Popen(argv, **kwargs)
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._thread_pid != os.getpid():
                self._thread_pid = os.getpid()  # a forked child needs its own spawner thread
                self._thread = threading.Thread(target=self._serve, name="harness-worker-spawner", daemon=True)
                self._thread.start()
        answer: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((argv, kwargs, answer))
        ok, value = answer.get()
        if ok:
            return value
        raise value

    def _serve(self) -> None:
        while True:
            argv, kwargs, answer = self._requests.get()
            try:
                answer.put((True, subprocess.Popen(argv, preexec_fn=self._preexec, **kwargs)))
            except BaseException as exc:  # handed to the caller, who raises it
                answer.put((False, exc))


_SPAWNER = _Spawner()


class WorkerHandle:
    """One worker process, started as ``launch`` says; ``env`` is added last (tests inject faults with it)."""

    def __init__(self, spec: dict[str, Any], launch: Launch | None = None, *,
                 env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.launch = launch or Launch()
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = _SPAWNER.popen(self.launch.argv(spec), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=self._stderr, env=self.launch.environment(spec, env),
                                       start_new_session=True)
        except OSError as exc:  # the launcher's command is missing or not executable
            self._stderr.close()
            raise WorkerFailure("CRASH", f"worker launcher {list(self.launch.command or [sys.executable])} "
                                         f"could not start: {exc}") from None
        self.pipe_bytes = _widen_pipe(self.proc.stdin.fileno())
        self._replies: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.hello = self._wait(HELLO_TIMEOUT_S, "starting").header

    def _read_loop(self) -> None:
        stream = self.proc.stdout
        while True:
            try:
                message = protocol.read_message(stream)
            except Exception as exc:  # ProtocolError, OSError, MemoryError: the parent decides what it means
                self._replies.put(exc)
                return
            self._replies.put(message)
            if message is None:
                return

    def stderr_tail(self, lines: int = 30) -> str:
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 16384))
        text = self._stderr.read().decode("utf-8", errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def _died(self, what: str) -> WorkerFailure:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        tail = self.stderr_tail()
        limited = bool(self.spec.get("memory_limit_mb"))
        if limited and code not in _KILLED and any(w in tail for w in MEMORY_WORDS):
            return WorkerFailure("OOM", f"worker ran out of memory {what} (limit {self.spec['memory_limit_mb']} MB, "
                                        f"{signal_name(code)})", signal_name=signal_name(code), stderr_tail=tail)
        return WorkerFailure("CRASH", f"worker died {what}: {signal_name(code)}", signal_name=signal_name(code),
                             stderr_tail=tail)

    def _wait(self, timeout: float, what: str) -> Reply:
        try:
            item = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerFailure("TIMEOUT", f"no reply within {timeout:.3g} s {what} (cell timeout; raise it with --timeout)",
                                stderr_tail=self.stderr_tail()) from None
        if isinstance(item, Exception) and not isinstance(item, protocol.TruncatedFrame) and self._still_alive():
            # A live worker sent something that is not a frame (or one too large to take): it is broken, not
            # out of memory; say what went wrong rather than guessing from how it dies once killed.
            self.kill()
            raise WorkerFailure("CRASH", f"worker sent an unreadable reply {what}: {type(item).__name__}: {item}",
                                stderr_tail=self.stderr_tail())
        if item is None or isinstance(item, Exception):
            raise self._died(what)
        header, tensors = item
        return Reply(header, tensors)

    def _still_alive(self, grace_s: float = 0.5) -> bool:
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            return True
        return False

    def send(self, header: dict[str, Any], tensors: dict | None, what: str) -> None:
        try:
            protocol.write_message(self.proc.stdin, header, tensors)
        except (BrokenPipeError, OSError, ValueError):
            raise self._died(what) from None

    def receive(self, timeout: float, what: str) -> Reply:
        return self._wait(timeout, what)

    def request(self, header: dict[str, Any], tensors: dict | None, timeout: float, what: str) -> Reply:
        self.send(header, tensors, what)
        return self._wait(timeout, what)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.wait()

    def say_bye(self) -> None:
        """Ask the worker to exit (it then tears down onnxruntime, ~0.1 s): ``close`` waits for it. A pool says
        bye to all its workers first, so that they exit side by side."""
        if self.proc.poll() is None and not self.proc.stdin.closed:
            try:
                protocol.write_message(self.proc.stdin, {"type": protocol.MSG_BYE})
                self.proc.stdin.close()
            except (OSError, ValueError):
                self.kill()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.say_bye()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):  # also when the worker was killed or died first
            try:
                pipe.close()
            except (OSError, ValueError):
                pass
        self._stderr.close()


FIXABLE_BY_INSTALL = ("not_installed", "not_in_build")  # unavailable kinds that a pip install (or build) fixes


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # "pkg.sub" with pkg missing raises instead of returning None
        return False


def missing_requirements(profile: Profile) -> str:
    """Why the profile cannot run here without even starting a worker ("" when nothing is missing)."""
    fix = f"; fix: {profile.install_hint}" if profile.install_hint else ""
    missing = [p for p in profile.requires_packages if not importable(p)]
    if missing:
        return f"missing package(s) {', '.join(missing)}{fix}"
    unset = [v for v in profile.requires_env if v not in os.environ]
    if unset:
        return f"environment variable(s) {', '.join(unset)} not set"
    try:
        launch_for(profile)
    except LauncherUnavailable as exc:  # e.g. the emulated root or the Node worker is not set up
        return str(exc)
    return ""


class WorkerPool:
    """Idle runners per profile; a runner that failed is discarded, never reused. ``factory`` builds a
    runner from a profile's worker spec and launch: an isolated worker process unless told otherwise.

    ``prestart`` starts workers in the background (a worker takes ~0.3-0.5 s to import onnxruntime and probe its
    EP), so that they start while the parent plans the run; ``acquire`` then takes a started one, or waits for
    one still starting rather than starting another. ``started`` counts every worker this pool started."""

    def __init__(self, factory: Callable[[dict[str, Any], Launch], Any] | None = None) -> None:
        self._idle: dict[str, list[WorkerHandle]] = {}
        self._starting: dict[str, int] = {}  # profile name -> workers being started in the background
        self._changed = threading.Condition()
        self._factory = factory or WorkerHandle
        self._closed = False
        self.started = 0

    def _start(self, profile: Profile) -> WorkerHandle:
        with self._changed:
            self.started += 1
        try:
            launch = launch_for(profile)
        except LauncherUnavailable as exc:  # set-up removed after the availability check: a CRASH naming why
            raise WorkerFailure("CRASH", str(exc)) from None
        return self._factory(profile.worker_spec(), launch)

    def prestart(self, profile: Profile, count: int = 1) -> None:
        """Start ``count`` workers for ``profile`` in the background. One that fails to start is dropped: the
        next ``acquire`` starts its own and meets the failure itself, as it would have without prestarting."""
        with self._changed:
            self._starting[profile.name] = self._starting.get(profile.name, 0) + count
        for _ in range(count):
            threading.Thread(target=self._start_in_background, args=(profile,), daemon=True,
                             name=f"harness-prestart-{profile.name}").start()

    def _start_in_background(self, profile: Profile) -> None:
        try:
            worker = self._start(profile)
        except Exception:  # WorkerFailure, a launcher that cannot run: acquire() will say it
            worker = None
        with self._changed:
            self._starting[profile.name] -= 1
            if worker is not None and not self._closed:
                self._idle.setdefault(profile.name, []).append(worker)
                worker = None
            self._changed.notify_all()
        if worker is not None:  # the pool was closed while it started
            worker.close()

    def acquire(self, profile: Profile) -> WorkerHandle:
        with self._changed:
            while True:
                idle = self._idle.get(profile.name, [])
                while idle:
                    worker = idle.pop()
                    if worker.alive:
                        return worker
                    worker.close()
                if not self._starting.get(profile.name):
                    break
                self._changed.wait()  # a background start ends (started or failed) and notifies
        return self._start(profile)

    def release(self, profile: Profile, worker: WorkerHandle) -> None:
        with self._changed:
            self._idle.setdefault(profile.name, []).append(worker)
            self._changed.notify_all()

    def discard(self, worker: WorkerHandle) -> None:
        worker.kill()
        worker.close()

    def close(self) -> None:
        """Close every idle worker; workers still starting in the background close themselves when they are up."""
        with self._changed:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
        for worker in workers:
            getattr(worker, "say_bye", lambda: None)()  # in-process runners have nothing to say it to
        for worker in workers:
            worker.close()
