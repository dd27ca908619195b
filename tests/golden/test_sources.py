"""Case sources: one interface for directories, the onnx node suite and whatever registers later."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.golden import sources
from harness.golden.cases import Case
from harness.golden.sources import CaseSource, DirectorySource, get_source, register_source
from harness.golden.suite import NodeSuite


@pytest.fixture
def root(tmp_path: Path, make_case) -> Path:
    make_case(tmp_path / "root" / "mlp")
    make_case(tmp_path / "root" / "vision" / "cnn")
    return tmp_path / "root"


def test_known_sources_by_name() -> None:
    assert isinstance(get_source("onnx-node"), NodeSuite)
    assert isinstance(get_source("directory"), DirectorySource)
    assert all(isinstance(get_source(n), CaseSource) for n in sources.source_names())


def test_an_unknown_source_suggests_a_close_one() -> None:
    with pytest.raises(UsageError, match=r"no case source named 'onnx-nodes' \(did you mean 'onnx-node'\?\)") as info:
        get_source("onnx-nodes")
    assert "known sources: directory, onnx-node" in info.value.one_line()


def test_directory_source_discovers_and_filters(root: Path) -> None:
    assert [c.name for c in DirectorySource(root).cases()] == ["mlp", "vision/cnn"]
    assert [c.name for c in DirectorySource(root).cases("^vis")] == ["vision/cnn"]
    assert [c.name for c in DirectorySource(root, ("mlp",)).cases()] == ["mlp"]
    assert DirectorySource(root).describe("^vis") == {"source": "directory", "root": str(root), "selectors": [],
                                                      "filter": "^vis"}
    with pytest.raises(UsageError, match=r"--filter 'resnet' matches none of the 2 case\(s\)"):
        DirectorySource(root).cases("resnet")
    with pytest.raises(UsageError, match="not a valid regular expression"):
        DirectorySource(root).cases("[")


def test_a_registered_source_is_found(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))

    class Fuzzed:
        name = "fuzz"

        def cases(self, pattern: str | None = None) -> list[Case]:
            return DirectorySource(root).cases(pattern)

        def describe(self, pattern: str | None = None) -> dict:
            return {"source": self.name}

    register_source("fuzz", Fuzzed)
    assert [c.name for c in get_source("fuzz").cases("mlp")] == ["mlp"]
