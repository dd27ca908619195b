"""The campaign folder's journal (journal.jsonl): one JSON object per line for each graph, finding, alias and
session, appended as they happen. The campaign resumes from it and the report is built from it alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.errors import UsageError

CAMPAIGN_NAME = "campaign.json"
JOURNAL_NAME = "journal.jsonl"


class Journal:
    """journal.jsonl: a JSON object per line, appended and flushed as each graph or finding is done, so a killed
    campaign loses at most the batch in flight."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        texts = self.path.read_text(encoding="utf-8").splitlines()
        found = []
        for number, text in enumerate(texts, 1):
            try:
                found.append(json.loads(text))
            except json.JSONDecodeError:
                if number < len(texts):  # a torn last line (a kill mid-write) is only the graph that reruns
                    raise UsageError(f"{self.path}:{number}: not a JSON line",
                                     hint="restore the journal, or start a new campaign folder") from None
        return found


__all__ = ["CAMPAIGN_NAME", "JOURNAL_NAME", "Journal"]
