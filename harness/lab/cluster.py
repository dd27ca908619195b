"""The head's view of the lab: connect to the Ray cluster, which profiles its hosts offer, which hosts are alive.

Ray is imported here, lazily: ``import harness.lab.cluster`` costs nothing until a lab is used, and a machine
without Ray gets one line saying which extra to install.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from harness.errors import UsageError
from harness.lab import RESOURCE_PREFIX, resource_name

INSTALL_HINT = "pip install 'onnx-conformance-harness[ray]' on the head and on every host"
DEADLINE_ENV = "HARNESS_LAB_DEADLINE_S"  # a lab's cell deadline in seconds, instead of the one from the timeout
DEADLINE_SLACK_S = 180.0  # beyond twice the cell's timeout: a worker start (up to 120 s) and a transform


def import_ray() -> ModuleType:
    """Ray, or one line saying how to install it (it is the ``[ray]`` extra, never a core dependency)."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--ray needs Ray, which cannot be imported here ({exc})", hint=INSTALL_HINT) from None
    return ray


def connect(address: str) -> bool:
    """Join this process to the lab's cluster as a driver. True when it connected now (the caller disconnects
    at the end), False when this process was already connected (a test's or a bench's cluster: left as it is)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if not isinstance(address, str) or not address.strip():
        raise UsageError(f"--ray {address!r}: give the head's address HOST:PORT, or 'auto' on a host of the cluster")
    try:
        ray.init(address=address.strip(), logging_level=logging.ERROR, log_to_driver=False,
                 include_dashboard=False)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError, OSError, ray.exceptions.RayError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--ray {address}: cannot connect to the Ray cluster: {first}",
                         hint="start the head with 'ray start --head' (README, lab) and pass its HOST:6379, "
                              "or 'auto' on a host that joined it") from None
    return True


def disconnect() -> None:
    import_ray().shutdown()


def offered_slots() -> dict[str, int]:
    """Profile name -> how many of its cells the live hosts may run at once (their ``profile:<name>`` total)."""
    resources = import_ray().cluster_resources()
    return {key[len(RESOURCE_PREFIX):]: int(value) for key, value in resources.items()
            if key.startswith(RESOURCE_PREFIX) and value >= 1}


def hosts_offering(profile: str) -> list[str]:
    """The node ids of the live hosts that offer ``profile``."""
    name = resource_name(profile)
    return [node["NodeID"] for node in _nodes() if node.get("Alive") and node.get("Resources", {}).get(name, 0) >= 1]


def _nodes() -> list[dict[str, Any]]:
    return import_ray().nodes()


def cell_deadline(timeout_s: float) -> float:
    """Seconds a cell may take on the lab before it is cancelled and sent again: twice its timeout (the worker's
    own timeout makes a hung session a TIMEOUT long before) plus room for a worker start and a transform, or
    $HARNESS_LAB_DEADLINE_S where the head sets it."""
    given = os.environ.get(DEADLINE_ENV, "").strip()
    if given:
        try:
            value = float(given)
        except ValueError:
            value = -1.0
        if not value > 0 or value == float("inf"):
            raise UsageError(f"${DEADLINE_ENV}={given!r}: must be a number of seconds above 0",
                             hint=f"unset it for twice the cell's timeout plus {DEADLINE_SLACK_S:.0f} s")
        return value
    return 2 * timeout_s + DEADLINE_SLACK_S


__all__ = ["DEADLINE_ENV", "INSTALL_HINT", "cell_deadline", "connect", "disconnect", "hosts_offering",
           "import_ray", "offered_slots"]
