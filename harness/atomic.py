"""Atomic file writes: a temp file in the same folder, fsync'd, then renamed over the target. A killed
run leaves either the old file or the new one, never half of one. Used by goldens, records and transforms.
The file gets the permissions any new file gets here (0666 less the umask), not mkstemp's private 0600."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """This process's umask, read without changing it where Linux says it (os.umask can only set it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
