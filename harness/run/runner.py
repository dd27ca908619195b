"""The Runner protocol: what the executor needs from anything that runs a profile's sessions.

Today: ``pool.WorkerHandle`` (an isolated worker subprocess) and ``InProcessRunner`` (the same worker code
in this process, for debugging: no isolation, timeouts or memory limits). Planned runners (an aarch64
Python under qemu, a Node.js ONNX Runtime Web process, a remote host) implement the same five members
over the worker protocol (docs/worker-protocol.md).
"""

from __future__ import annotations

import io
import os
from collections import deque
from typing import Any, Protocol

from harness.run.launchers import Launch
from harness.run.pool import Reply
from harness.worker import protocol


class Runner(Protocol):
    hello: dict[str, Any]
    pipe_bytes: int  # request bytes that can be sent ahead of a reply without blocking

    @property
    def alive(self) -> bool: ...

    def send(self, header: dict[str, Any], tensors: dict | None, what: str) -> None: ...

    def receive(self, timeout: float, what: str) -> Reply: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class _Frames(io.RawIOBase):
    """A write-only stream that splits what the worker writes into decoded replies."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buffer += bytes(data)
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            header, tensors = protocol.decode_message(bytes(self._buffer))
            self._buffer.clear()
            self.replies.append(Reply(header, tensors))


class InProcessRunner:
    """Runs the worker's own code in this process, request by request. For stepping through a cell in
    a debugger; a crash or hang here takes the harness with it, and constraints are not applied. A profile's
    launcher command cannot apply here (this interpreter runs the worker code); its environment is set like the
    EP's, without overriding what is already set, and the hello says the launcher was bypassed."""

    def __init__(self, spec: dict[str, Any], launch: Launch | None = None) -> None:
        from harness.worker.main import Worker, hello_for
        launch = launch or Launch()
        for key, value in {**launch.env, **(spec.get("env") or {})}.items():
            os.environ.setdefault(key, value)
        self._frames = _Frames()
        self._worker = Worker(spec, self._frames)
        self.hello = hello_for(spec, {"in_process": True, "launcher_bypassed": list(launch.command)})
        self.pipe_bytes = 1 << 62  # requests are handled as they are sent: nothing can block
        self._open = True

    @property
    def alive(self) -> bool:
        return self._open

    def send(self, header: dict[str, Any], tensors: dict | None, what: str) -> None:
        from harness.worker.main import handle
        # Round-trip the inputs through the protocol, as a worker process would receive them.
        decoded, arrays = protocol.decode_message(protocol.encode_message(header, tensors))
        self._open = handle(self._worker, decoded, arrays)

    def receive(self, timeout: float, what: str) -> Reply:
        return self._frames.replies.popleft()

    def kill(self) -> None:
        self._open = False

    def close(self) -> None:
        self._open = False
