"""Typed exceptions. Each is raised where the fault is; the CLI turns any HarnessError into one line
on stderr and exit code 2 (bad usage or bad input). Conformance failures are verdicts, not exceptions."""

from __future__ import annotations


class HarnessError(Exception):
    """Base for bad usage or bad input. ``hint`` says what to do about it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. Note: {self.hint}" if self.hint else text


class UsageError(HarnessError):
    """Bad command line: unknown case, path, flag value."""


class ModelError(HarnessError):
    """A model that is not ONNX, is truncated, or points outside its folder."""


class GoldenError(HarnessError):
    """Goldens that do not parse or do not match their model; refused overwrite."""


class ProfileError(HarnessError):
    """A device profile that is malformed, contradictory or names unknown things."""


class BaselineError(HarnessError):
    """A baseline record that cannot be used."""


class ExportError(HarnessError):
    """The export extra is missing or a module failed to export."""
