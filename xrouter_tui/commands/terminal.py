"""Whether a stream is a terminal, and JSON a terminal shows without obeying: what the command
line and the key commands share."""

from __future__ import annotations

import json
import re
from typing import IO, Any

__all__ = ["ask_yes_no", "is_terminal", "json_text"]

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


def is_terminal(stream: IO[str]) -> bool:
    """True when `stream` is a terminal; False for pipes, files, and closed or fake streams."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def ask_yes_no(question: str, stdin: IO[str], stderr: IO[str]) -> bool | None:
    """Ask `question` on the terminal and return the answer (only `y`/`yes` is a yes), or None
    when there is no terminal to ask on.

    The answer is read from stdin when it is the terminal, else from the controlling terminal
    (`/dev/tty`), so that a prompt piped in on stdin still leaves a way to answer.
    """
    if not is_terminal(stderr):
        return None
    if is_terminal(stdin):
        return _ask(question, stdin, stderr)
    try:
        with open("/dev/tty", encoding="utf-8", errors="replace") as terminal:
            return _ask(question, terminal, stderr)
    except OSError:
        return None


def _ask(question: str, answers: IO[str], stderr: IO[str]) -> bool:
    stderr.write(question)
    stderr.flush()
    line = answers.readline()
    if not line.endswith("\n"):
        stderr.write("\n")  # end of input: the next line must not follow the question
    return line.strip().lower() in ("y", "yes")
