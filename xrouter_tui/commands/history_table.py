"""What `xrouter-tui history` prints: the saved conversations as a table or JSON.

The history keeps titles as they were written; the table shows them through `safe_text`, the
JSON keeps them.
"""

from __future__ import annotations

from xrouter_tui.history.store import ConversationInfo
from xrouter_tui.payments import format_usd
from xrouter_tui.payments.networks import usd_text
from xrouter_tui.safe_text import json_text, one_line

__all__ = ["history_json", "history_table", "nothing_listed", "text_table"]

_TITLE_WIDTH = 50


def history_json(conversations: list[ConversationInfo]) -> str:
    """The conversations as a JSON list (amounts as decimal strings: never floats for money)."""
    return json_text(
        [
            {
                "id": info.id,
                "title": info.title,
                "model": info.model,
                "messages": info.messages,
                "created": info.created,
                "updated": info.updated,
                "spent_usd": usd_text(info.spent_usd),
            }
            for info in conversations
        ]
    )


def history_table(conversations: list[ConversationInfo]) -> str:
    """A table for people: id, last change, model, message count, spend, title."""
    if not conversations:
        return nothing_listed(None)
    rows = [("ID", "UPDATED", "MODEL", "MSGS", "SPENT", "TITLE")]
    for info in conversations:
        title = one_line(info.title, _TITLE_WIDTH)
        updated = info.updated[:16].replace("T", " ")  # to the minute, UTC
        spent = format_usd(info.spent_usd)
        model = one_line(info.model)
        rows.append((str(info.id), updated, model, str(info.messages), spent, title))
    return text_table(rows, right={0, 3, 4})


def nothing_listed(search: str | None, *, demo: bool = False) -> str:
    """What an empty listing says: that no conversation matches the `search` (None: there was
    none, or the history is empty), or that the history (the demo's) has none yet."""
    if search is not None:
        return f'No conversation matches "{one_line(search)}".'
    if demo:
        return "No demo conversations yet."
    return "No saved conversations yet."


def text_table(rows: list[tuple[str, ...]], *, right: set[int]) -> str:
    """Columns two spaces apart, the columns in `right` (numbers) aligned right; the first row
    is the header. A last column aligned left is not padded, so a long title widens nothing."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
