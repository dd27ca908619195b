"""ONNX Runtime's own words, out of its exception text.

ORT formats a failed status as ``[ONNXRuntimeError] : <number> : <CODE> : <file>:<line> <C++ signature> <message>``,
sometimes nested (a plugin EP's status inside the session's), sometimes with the location in the middle
(``... Status Message: <file>:<line> <signature> <message>``). The one line a person needs is the code and the
message; the source paths and GCC's ``__PRETTY_FUNCTION__`` signatures are dropped from that line, and the full
text is kept next to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"\[ONNXRuntimeError\] : (\d+) : (\w+) : ")
_LOCATION = re.compile(r"(?<![\w/.])/?[\w.+-]+(?:/[\w.+-]+)*\.(?:cc|cpp|cxx|c|h|hpp|cu|mm):\d+\s")
_QUALIFIER = re.compile(r"(?:const|volatile|noexcept|override|&&?)(?=\s|$)|\[with ")
_OPEN, _CLOSE = "(<[", ")>]"
_MAX_SIGNATURE = 1000


@dataclass(frozen=True)
class OrtMessage:
    """``code`` is ORT's status name (FAIL, EP_FAIL, INVALID_ARGUMENT, ...), empty when the text is not an ORT
    status; ``number`` its numeric code; ``text`` the message without source locations, on one line."""

    code: str
    number: int | None
    text: str
    full: str

    @property
    def line(self) -> str:
        """``CODE: message``, the line an ERROR cell shows."""
        return f"{self.code}: {self.text}" if self.code else self.text

    @property
    def says_everything(self) -> bool:
        """True when ``line`` dropped nothing but ORT's status header and line breaks."""
        header = f"[ONNXRuntimeError] : {self.number} : {self.code} : " if self.code else ""
        return _one_line(self.full) == _one_line(header + self.text)


def _signature_end(text: str, start: int) -> int:
    """Index just past the C++ signature that follows a source location, or ``start`` when none is found.
    The signature ends at the first blank outside brackets after its argument list, plus trailing qualifiers
    (``const``, ``[with T = float]``)."""
    depth, called = 0, False
    limit = min(len(text), start + _MAX_SIGNATURE)
    for i in range(start, limit):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and not (ch == ">" and text[i - 1] == "-"):
            depth -= 1
            called = called or (ch == ")" and depth == 0)
            if depth < 0:
                return start
        elif ch.isspace() and depth == 0 and called and not _QUALIFIER.match(text, i + 1):
            return i + 1
    return limit if called and depth == 0 and limit == len(text) else start


def strip_locations(text: str) -> str:
    """``text`` without ``<file>:<line> <signature> `` spans."""
    kept, pos = [], 0
    for match in _LOCATION.finditer(text):
        if match.start() < pos:
            continue
        kept.append(text[pos:match.start()])
        pos = _signature_end(text, match.end())
    kept.append(text[pos:])
    return "".join(kept)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse_ort_message(full: str) -> OrtMessage:
    """Split ORT's exception text into its status code and its message. Nested statuses keep the innermost
    words; an inner status with another code keeps that code in front of its words."""
    headers = list(_HEADER.finditer(full))
    if not headers:
        return OrtMessage("", None, _one_line(strip_locations(full)), full)
    outer = headers[0]
    parts = [strip_locations(full[:outer.start()])]
    for header, following in zip(headers, [*headers[1:], None]):
        body = _one_line(strip_locations(full[header.end():following.start() if following else len(full)]))
        if body:
            parts.append(body if header.group(2) == outer.group(2) else f"{header.group(2)}: {body}")
    return OrtMessage(outer.group(2), int(outer.group(1)), _one_line(" ".join(parts)), full)


def ort_message_of(exc: BaseException) -> OrtMessage:
    """The parsed words of an exception ORT (or anything else) raised; its type name when it has no text."""
    return parse_ort_message(str(exc).strip() or type(exc).__name__)
