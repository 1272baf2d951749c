"""The one place that makes router-supplied text safe to show: on a terminal, in a CSV cell.

A router (or a model steered by prompt injection) can send escape sequences that set the window
title, write the clipboard (OSC 52), draw links (OSC 8) or clear the screen. Every sink that
reaches a terminal or a spreadsheet passes what it shows through here; the history keeps the
text as it was received.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "MALFORMED",
    "TerminalFilter",
    "csv_cell",
    "json_text",
    "one_line",
    "shown_tx",
    "terminal_text",
    "valid_tx",
]

MALFORMED = "(malformed)"

_ESC = "\x1b"
_BEL = "\x07"
_ST = "\x9c"
# C1 introducers of strings that run to a terminator: DCS, SOS, OSC, PM, APC.
_C1_STRINGS = "\x90\x98\x9d\x9e\x9f"
_C1_CSI = "\x9b"
# What ESC may start a string with (DCS P, SOS X, OSC ], PM ^, APC _) or a control sequence ([).
_ESC_STRINGS = "PX]^_"

# Characters that are never shown: C0 controls but tab and newline (carriage return is decided
# apart), DEL, C1 controls, and the bidirectional overrides and isolates that reorder what is
# drawn (a transaction hash or a command shown backwards). Anything else is plain text.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\r]")

# A control sequence's parameter and intermediate bytes, then its final byte.
_CSI_BODY = re.compile(r"[0-?]*[ -/]*[@-~]")
_CSI_PARTIAL = re.compile(r"[0-?]*[ -/]*\Z")
# After ESC (not a string or CSI): intermediate bytes, then a final byte.
_ESC_BODY = re.compile(r"[ -/]*[0-~]")
_ESC_PARTIAL = re.compile(r"[ -/]*\Z")

_NORMAL, _STRING, _STRING_ESC = 0, 1, 2
# A string sequence that never ends would hide the rest of an answer: past this many characters
# it is taken as ended (what follows is shown, still without controls).
_STRING_LIMIT = 4096

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_SPACES = re.compile(r"\s+")
# OWASP's rule for CSV injection: a cell a spreadsheet would read as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TerminalFilter:
    """Removes escape sequences and control characters from text that arrives in pieces.

    A sequence may be cut between two pieces (an answer streams a few characters at a time): the
    start of one is held back until the next piece shows where it ends, and a string sequence
    (OSC, DCS, ...) is dropped whole, however many pieces it spans. `keep_cr` keeps a lone
    carriage return, for plain text written to a pipe or a file; on a terminal it would move the
    cursor back over what was written, so there only CR LF passes.
    """

    def __init__(self, *, keep_cr: bool = False) -> None:
        self._keep_cr = keep_cr
        self._state = _NORMAL
        self._held = ""
        self._dropped = 0

    def feed(self, text: str) -> str:
        """The safe part of `text`, given everything fed before it."""
        if self._held:
            text = self._held + text
            self._held = ""
        if self._state == _NORMAL and not _UNSAFE.search(text):
            return text  # the common case: plain text passes untouched
        out: list[str] = []
        position = 0
        end = len(text)
        while position < end:
            if self._state != _NORMAL:
                position = self._skip_string(text, position)
                continue
            match = _UNSAFE.search(text, position)
            if match is None:
                out.append(text[position:])
                break
            start = match.start()
            out.append(text[position:start])
            position = self._control(text, start, out)
            if position < 0:  # an unfinished sequence at the end: wait for the next piece
                self._held = text[start:]
                break
        return "".join(out)

    def flush(self) -> str:
        """The end of the text: whatever is held back was never finished, and is dropped."""
        held = self._held
        self._held = ""
        self._state = _NORMAL
        return "\r" if held == "\r" and self._keep_cr else ""

    def _control(self, text: str, start: int, out: list[str]) -> int:
        """Handle the control character at `start`; the position after what it began, or -1
        when the text ends before that is known."""
        char = text[start]
        after = start + 1
        if char == "\r":
            if after == len(text):
                return -1
            if text[after] == "\n" or self._keep_cr:
                out.append("\r")
            return after
        if char == _ESC:
            if after == len(text):
                return -1
            follower = text[after]
            if follower == "[":
                return self._sequence(text, after + 1, _CSI_BODY, _CSI_PARTIAL)
            if follower in _ESC_STRINGS:
                self._start_string()
                return after + 1
            return self._sequence(text, after, _ESC_BODY, _ESC_PARTIAL)
        if char == _C1_CSI:
            return self._sequence(text, after, _CSI_BODY, _CSI_PARTIAL)
        if char in _C1_STRINGS:
            self._start_string()
        return after

    def _start_string(self) -> None:
        self._state = _STRING
        self._dropped = 0

    @staticmethod
    def _sequence(text: str, position: int, body: re.Pattern[str], partial: re.Pattern[str]) -> int:
        match = body.match(text, position)
        if match is not None:
            return match.end()
        if partial.match(text, position) is not None:
            return -1
        return position  # a malformed sequence: its introducer alone is dropped

    def _skip_string(self, text: str, position: int) -> int:
        """Inside a string sequence: drop text up to its terminator (BEL, ST or ESC \\)."""
        end = min(len(text), position + _STRING_LIMIT - self._dropped)
        start = position
        while position < end:
            char = text[position]
            if self._state == _STRING_ESC:
                # ESC \ ends the string; an ESC followed by anything else ends it too (xterm).
                self._state = _NORMAL
                return position + 1 if char == "\\" else position
            if char in (_BEL, _ST):
                self._state = _NORMAL
                return position + 1
            if char == _ESC:
                self._state = _STRING_ESC
            position += 1
        self._dropped += position - start
        if self._dropped >= _STRING_LIMIT:
            self._state = _NORMAL
        return position


def terminal_text(text: str, *, keep_cr: bool = False) -> str:
    """`text` without escape sequences or control characters; newlines and tabs stay."""
    if not _UNSAFE.search(text):
        return text
    safe = TerminalFilter(keep_cr=keep_cr)
    return safe.feed(text) + safe.flush()


def one_line(text: str, limit: int | None = None) -> str:
    """`text` safe for a terminal and on one line (a label, a table cell, an error line), cut
    to `limit` characters with an ellipsis."""
    line = _SPACES.sub(" ", terminal_text(text)).strip()
    if limit is not None and len(line) > limit:
        return line[: max(limit - 1, 0)] + "…"
    return line


def csv_cell(value: object) -> str:
    """A text value for a CSV cell: safe for a terminal, and never read as a formula."""
    text = one_line(str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def valid_tx(value: object) -> str | None:
    """A transaction hash (`0x` and 64 hex digits), or None for anything else."""
    return value if isinstance(value, str) and _TX_HASH.fullmatch(value) else None


def shown_tx(value: object) -> str:
    """A transaction hash as shown: itself when well-formed, else `(malformed)`."""
    return valid_tx(value) or MALFORMED


# What json.dumps(ensure_ascii=False) leaves raw although a terminal may act on it: DEL, the C1
# controls (U+009B is a CSI), line and paragraph separators, the bidirectional overrides.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(document: Any) -> str:
    """`document` as indented JSON for stdout. Every value stays as received (a parser reads
    back the very same strings), but no character a terminal would obey is written raw: JSON
    escapes C0 controls itself, and the few others above become `\\uXXXX` escapes too."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    # Outside strings JSON is ASCII, so these can only be inside one, where an escape is valid.
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
