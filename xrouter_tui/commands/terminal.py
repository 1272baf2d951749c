"""Whether a stream is a terminal, and a yes-or-no question asked on it: what the command
line and the key commands share."""

from __future__ import annotations

from typing import IO

__all__ = ["ask_yes_no", "is_terminal"]


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
