"""'harness fuzz' refuses bad input in one line (exit 2) before any graph is drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import _budget, main
from harness.fuzzing.journal import CAMPAIGN_NAME


@pytest.mark.parametrize("text, seconds", [("10m", 600.0), ("90s", 90.0), ("1h", 3600.0), ("45", 45.0),
                                           ("0.5m", 30.0)])
def test_budgets(text, seconds):
    assert _budget(text) == seconds


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 or "usage:" in err
    return err.splitlines()[-1]


def test_no_profile_is_bad_input(capsys, tmp_path: Path):
    assert "needs at least one --profile" in _error(capsys, ["fuzz", "--out", str(tmp_path / "c")])


@pytest.mark.parametrize("budget, said", [("ten", "not a duration"), ("0s", "finite duration above 0"),
                                          ("infm", "finite duration above 0")])
def test_a_bad_budget_is_refused_by_the_parser(capsys, budget, said):
    with pytest.raises(SystemExit) as exited:
        main(["fuzz", "--profile", "cpu", "--budget", budget])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_the_reference_is_not_also_a_profile(capsys, tmp_path: Path):
    err = _error(capsys, ["fuzz", "--profile", "reference", "--out", str(tmp_path / "c")])
    assert "is the reference already" in err


def test_a_folder_holding_a_campaign_is_resumed_not_overwritten(capsys, tmp_path: Path):
    (tmp_path / CAMPAIGN_NAME).write_text(json.dumps({"seed": 1}))
    assert "holds a campaign already" in _error(capsys, ["fuzz", "--profile", "cpu", "--out", str(tmp_path)])
    assert "no campaign.json there" in _error(capsys, ["fuzz", "--resume", str(tmp_path / "none")])
    assert "not a campaign header (KeyError" in _error(capsys, ["fuzz", "--resume", str(tmp_path)])


def test_an_unknown_profile_is_named(capsys, tmp_path: Path):
    assert "cpuu" in _error(capsys, ["fuzz", "--profile", "cpuu", "--out", str(tmp_path / "c")])
