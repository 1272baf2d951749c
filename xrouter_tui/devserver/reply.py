"""A deterministic Markdown reply in token-sized deltas, with what a renderer must handle:
a heading, paragraphs, a list, a code fence, a table and multi-byte UTF-8.
"""

from __future__ import annotations

import itertools
import re
import zlib
from dataclasses import dataclass

__all__ = [
    "MAX_PIECE_CHARS",
    "NATURAL_DELTAS",
    "UNICODE_LINE",
    "Reply",
    "is_reasoning_model",
    "make_reply",
    "split_into_pieces",
]

UNICODE_LINE = "naïve café — 日本語 ✓ 🚀 €"
MAX_PIECE_CHARS = 6
# About how many pieces the first section comes to; the exact count is `len(make_reply(p).content)`.
NATURAL_DELTAS = 200
_TITLE_CHARS = 60

# A leading space stays with its word, as in BPE vocabularies; newlines and indents stand alone.
_TOKEN = re.compile(r" ?\w+| ?[^\w\s]+|\s+")

_OPENINGS = (
    "Here is a short answer from the local dev server: no model was called.",
    "This reply comes from the local dev server, so nothing real was spent.",
    "A quick overview, written by the dev server the same way every time.",
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply as deltas: optional reasoning pieces, then the content pieces."""

    content: tuple[str, ...]
    reasoning: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


def is_reasoning_model(model_id: str) -> bool:
    """Whether the model id names a reasoning model (R1, o1), which thinks before answering."""
    name = model_id.rpartition("/")[2].lower()
    return "r1" in name or "o1" in name


def split_into_pieces(text: str) -> list[str]:
    """Cut text into pieces of 1 to `MAX_PIECE_CHARS` characters along word boundaries."""
    pieces: list[str] = []
    for token in _TOKEN.findall(text):
        # Long words become several near-equal pieces, as a tokenizer splits rare words.
        parts = -(-len(token) // MAX_PIECE_CHARS)
        size = -(-len(token) // parts)
        pieces.extend(token[i : i + size] for i in range(0, len(token), size))
    return pieces


def make_reply(
    prompt: str, model: str = "", deltas: int | None = None, min_bytes: int | None = None
) -> Reply:
    """The reply to `prompt`: about `NATURAL_DELTAS` content pieces, or exactly `deltas`.

    With `min_bytes`, whole sections are added until the text is at least that many bytes of
    UTF-8 (and, with `deltas`, has at least that many pieces); then neighbouring pieces are
    joined, evenly, into exactly `deltas`, so they may be longer than `MAX_PIECE_CHARS`. A big
    reply in few deltas is what a benchmark of rendering needs; nothing is cut off.
    """
    if deltas is not None and deltas < 0:
        raise ValueError("deltas must be zero or more")
    if min_bytes is not None and min_bytes < 0:
        raise ValueError("min_bytes must be zero or more")
    title = _title(prompt)
    seed = zlib.crc32(prompt.encode("utf-8"))
    blocks = [_first_section(title, seed)]
    pieces = split_into_pieces(blocks[0])
    if min_bytes is not None:
        size = len(blocks[0].encode("utf-8"))
        number = 2
        while size < min_bytes or (deltas is not None and len(pieces) < deltas):
            section = _extra_section(number, title)
            size += len(section.encode("utf-8"))
            pieces.extend(split_into_pieces(section))
            number += 1
        if deltas is not None:
            pieces = _join_evenly(pieces, deltas)
    elif deltas is not None:
        number = 2
        while len(pieces) < deltas:
            section = _extra_section(number, title)
            blocks.append(section)
            pieces.extend(split_into_pieces(section))
            number += 1
        pieces = _fit(pieces, deltas)
    reasoning = split_into_pieces(_reasoning(title)) if is_reasoning_model(model) else []
    return Reply(content=tuple(pieces), reasoning=tuple(reasoning))


def _title(prompt: str) -> str:
    words = " ".join(prompt.split())
    # A heading is one line of prose: a prompt starting with Markdown markers must not nest.
    words = words.lstrip("#>-*+` ").strip() or "your question"
    if len(words) > _TITLE_CHARS:
        words = words[:_TITLE_CHARS].rstrip() + "…"
    return words


def _first_section(title: str, seed: int) -> str:
    opening = _OPENINGS[seed % len(_OPENINGS)]
    return (
        f"## {title}\n\n"
        f"{opening}\n\n"
        "- **Keep it simple:** start from the smallest working version.\n"
        "- **Measure first:** time the slow part before changing it.\n"
        "- **Write it down:** a short note saves the next person an hour.\n\n"
        "For example:\n\n"
        "```python\n"
        "def word_counts(text: str) -> dict[str, int]:\n"
        "    counts: dict[str, int] = {}\n"
        "    for word in text.lower().split():\n"
        "        counts[word] = counts.get(word, 0) + 1\n"
        "    return counts\n"
        "```\n\n"
        "| Step | What to do | Time |\n"
        "|------|------------|-----:|\n"
        "| 1 | Read the question | 1 min |\n"
        "| 2 | Try the example | 5 min |\n\n"
        f"Text beyond ASCII: {UNICODE_LINE}\n\n"
        "In short: begin small, check, then grow.\n"
    )


def _extra_section(number: int, title: str) -> str:
    # Rotating the block kinds keeps sections short, so a wanted size is reached closely.
    kind = number % 4
    heading = f"\n### {number}. More on {title}\n\n"
    if kind == 0:
        body = (
            f"Section {number} adds detail. Each step builds on the one before it, and the "
            "example stays small enough to read at a glance.\n"
        )
    elif kind == 1:
        body = (
            f"- Point {number}.1: check the inputs.\n"
            f"- Point {number}.2: handle the edge cases.\n"
            f"- Point {number}.3: test the result.\n"
        )
    elif kind == 2:
        body = f"```python\nresult_{number} = sum(range({number}))\nprint(result_{number})\n```\n"
    else:
        body = (
            "| Item | Value |\n"
            "|------|------:|\n"
            f"| section | {number} |\n"
            f"| text | {UNICODE_LINE} |\n"
        )
    return heading + body


def _reasoning(title: str) -> str:
    return (
        f'The user asks about "{title}". I should give a heading, a short explanation, '
        "a list, a Python example and a table, then a one-line summary."
    )


def _join_evenly(pieces: list[str], wanted: int) -> list[str]:
    """Exactly `wanted` pieces (no more than there are), each of one or more neighbours."""
    count = len(pieces)
    bounds = [index * count // wanted for index in range(wanted + 1)] if wanted else [0]
    return ["".join(pieces[start:end]) for start, end in itertools.pairwise(bounds)]


def _fit(pieces: list[str], wanted: int) -> list[str]:
    """Exactly `wanted` pieces: merge neighbours (from the end) while the text fits, else cut."""
    excess = len(pieces) - wanted
    merged = True
    while excess > 0 and merged:
        merged = False
        index = len(pieces) - 2
        while index >= 0 and excess > 0:
            if len(pieces[index]) + len(pieces[index + 1]) <= MAX_PIECE_CHARS:
                pieces[index : index + 2] = [pieces[index] + pieces[index + 1]]
                excess -= 1
                merged = True
            index -= 1
    return pieces[:wanted]
