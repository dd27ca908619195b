"""The lab: the matrix run across several machines on a Ray cluster (``harness run --ray ADDRESS|auto``).

Each host joins the cluster offering the profiles that really run on it as custom resources
(``profile:<name>``: how many of its cells may run at once; ``harness lab join`` prints or performs that join).
A cell is a Ray task that asks for one unit of its profile's resource and runs exactly as a local cell does: in
the harness's own isolated worker on that host, so a crash is a CRASH cell, never a Ray retry. Planning, the
journal, the record, ``--resume`` and the reports are the local run's own; only "observe one cell" crosses to
another machine (``executor.LabExecutor``).

Modules: ``cluster`` (connecting, which profiles the hosts offer, which hosts are alive), ``remote`` (what runs on
a host), ``executor`` (the local executor with the cell sent to a host), ``join`` (the ``ray start`` line for a
host). Ray is imported only here, and only when a lab is used: the core never needs it (the ``[ray]`` extra).
"""

from __future__ import annotations

RESOURCE_PREFIX = "profile:"


def resource_name(profile: str) -> str:
    """The custom Ray resource a host offers for a profile, and a cell of that profile asks for."""
    return f"{RESOURCE_PREFIX}{profile}"


__all__ = ["RESOURCE_PREFIX", "resource_name"]
