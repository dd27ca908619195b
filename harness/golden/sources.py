"""Case sources: where a run's cases come from, behind one small interface.

A source has a ``name`` and ``cases(pattern)``: every case it holds, or those whose name ``re.search``es
the pattern (``--filter``). The CLI and the library look sources up by name here instead of growing a
special case per kind; a new kind (a fuzzer, a model hub) registers a factory.

    from harness.golden.sources import get_source
    cases = get_source("onnx-node").cases(r"^test_conv")     # onnx's node tests, built once and cached
    cases = DirectorySource(Path("reference_outputs")).cases()  # folders in the ONNX test-data layout
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.errors import UsageError
from harness.golden.cases import Case, discover, filter_names
from harness.golden.suite import NodeSuite
from harness.suggest import did_you_mean


@runtime_checkable
class CaseSource(Protocol):
    name: str

    def cases(self, pattern: str | None = None) -> list[Case]:
        """The source's cases, or those whose name matches the regex ``pattern``; bad input is a UsageError."""
        ...

    def describe(self, pattern: str | None = None) -> dict[str, Any]:
        """Plain JSON for the run record: what the source is, which cases it gave, what it decided."""
        ...


@dataclass(frozen=True)
class DirectorySource:
    """Folders in the ONNX test-data layout (the zoo's reference_outputs/ is one): ``selectors`` as the CLI
    takes them (case names under ``root``, case folders, .onnx files); none means every case under root."""

    root: Path = Path("reference_outputs")
    selectors: tuple[str, ...] = ()
    name: str = "directory"

    def cases(self, pattern: str | None = None) -> list[Case]:
        found = discover(list(self.selectors), self.root)
        wanted = set(filter_names([c.name for c in found], pattern, str(self.root)))
        return [c for c in found if c.name in wanted]

    def describe(self, pattern: str | None = None) -> dict[str, Any]:
        return {"source": self.name, "root": str(self.root), "selectors": list(self.selectors), "filter": pattern}


SOURCES: dict[str, Callable[[], CaseSource]] = {
    NodeSuite.name: NodeSuite,
    DirectorySource.name: DirectorySource,
}


def register_source(name: str, factory: Callable[[], CaseSource]) -> None:
    """Add a source kind (a layer above golden, e.g. a fuzzer, registers itself here)."""
    SOURCES[name] = factory


def get_source(name: str) -> CaseSource:
    """The source registered as ``name``, with its defaults; an unknown name is a UsageError."""
    factory = SOURCES.get(name)
    if factory is None:
        raise UsageError(f"no case source named {name!r}{did_you_mean(name, SOURCES)}",
                         hint=f"known sources: {', '.join(sorted(SOURCES))}")
    return factory()


def source_names() -> Sequence[str]:
    return sorted(SOURCES)


__all__ = ["CaseSource", "DirectorySource", "SOURCES", "register_source", "get_source", "source_names"]
