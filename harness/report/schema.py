"""The run record's JSON Schema, one file per schema version (schemas/run-record.v<N>.json), and a validator.

The schema documents record.json for other tools; the harness itself reads records with
``harness.run.record.load_record`` (which upgrades older versions) and needs no validator. Validation uses the
``jsonschema`` package, which only the ``test`` extra installs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.run import record as R

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def schema_path(version: int = R.SCHEMA_VERSION) -> Path:
    """The JSON Schema file of record.json at ``version``."""
    return SCHEMA_DIR / f"run-record.v{version}.json"


def load_schema(version: int = R.SCHEMA_VERSION) -> dict[str, Any]:
    path = schema_path(version)
    if not path.is_file():
        raise UsageError(f"no JSON Schema for run record version {version} ({path} is missing)",
                         hint=f"this harness documents version {R.SCHEMA_VERSION}")
    return json.loads(path.read_text(encoding="utf-8"))


def record_problems(data: Any, version: int = R.SCHEMA_VERSION) -> list[str]:
    """Where ``data`` (a parsed record.json) breaks the schema: one line per problem, with its JSON path, [] when
    it conforms."""
    try:
        import jsonschema
    except ImportError:
        raise UsageError("validating a run record needs the jsonschema package",
                         hint="pip install 'onnx-conformance-harness[test]' (or pip install jsonschema)") from None
    validator = jsonschema.Draft202012Validator(load_schema(version))
    return [f"{error.json_path}: {error.message[:300]}"
            for error in sorted(validator.iter_errors(data), key=lambda e: e.json_path)]
