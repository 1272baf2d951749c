"""One saved conversation as a document: Markdown with a front-matter, or JSON with every
message and its payment. For `xrouter-tui export` and the chat's export alike.

The history keeps answers as the router sent them; the Markdown shows them through `safe_text`
(Markdown is read on terminals too: `export 3 | less -R`), the JSON keeps them. In the Markdown
each message is a section (`## You`, `## Assistant`), and the headings a message holds are moved
down beneath it, so that an answer's `# Title` does not read as a message of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from xrouter_tui.history.store import ConversationInfo, StoredMessage
from xrouter_tui.payments import format_usd, network_label
from xrouter_tui.payments.networks import usd_text
from xrouter_tui.safe_text import json_text, one_line, shown_tx, terminal_text

__all__ = ["COPIED_NOTE", "export_json", "export_markdown", "nest_headings", "usd_text"]

# What is said of a fork's copy of an answer instead of its payment, which stays with the
# answer it copies (saying "not charged" would be untrue of a paid one).
COPIED_NOTE = "copied from the original conversation: its cost is counted there"

# The level of the sections a message is put under (`## You`): its own headings go beneath.
_SECTION_LEVEL = 2


def export_json(info: ConversationInfo, messages: list[StoredMessage]) -> str:
    """One conversation as a JSON object with all of its messages and their payments."""
    document = {
        "id": info.id,
        "title": info.title,
        "model": info.model,
        "system_prompt": info.system_prompt,
        "temperature": info.temperature,
        "max_tokens": info.max_tokens,
        "forked_from": info.forked_from,
        "created": info.created,
        "updated": info.updated,
        "spent_usd": usd_text(info.spent_usd),
        "messages": [_message(message) for message in messages],
    }
    return json_text(document)


def export_markdown(info: ConversationInfo, messages: list[StoredMessage]) -> str:
    """One conversation as Markdown, with a YAML front-matter: model, tokens, cost, tx hashes."""
    prompt_tokens = sum(m.prompt_tokens or 0 for m in messages)
    completion_tokens = sum(m.completion_tokens or 0 for m in messages)
    models = sorted({m.model for m in messages if m.role == "assistant" and m.model})
    transactions = [shown_tx(m.payment.tx) for m in messages if m.payment and m.payment.tx]
    front = [
        "---",
        f"id: {info.id}",
        f"title: {_yaml(info.title)}",
        f"model: {_yaml(info.model)}",
    ]
    if len(models) > 1:
        front.append("models: [" + ", ".join(_yaml(m) for m in models) + "]")
    # The conversation's own settings, where it has them (else the user's defaults applied).
    if info.temperature is not None:
        front.append(f"temperature: {info.temperature!r}")
    if info.max_tokens is not None:
        front.append(f"max_tokens: {info.max_tokens}")
    if info.forked_from is not None:
        front.append(f"forked_from: {info.forked_from}")
    front += [
        f"created: {_yaml(info.created)}",
        f"updated: {_yaml(info.updated)}",
        f"prompt_tokens: {prompt_tokens}",
        f"completion_tokens: {completion_tokens}",
        f"cost_usd: {_yaml(usd_text(info.spent_usd))}",
        "transactions:" + ("" if transactions else " []"),
        *(f"  - {_yaml(tx)}" for tx in transactions),
        "---",
        "",
        f"# {one_line(info.title)}",
        "",
    ]
    if info.system_prompt:
        front += ["## System prompt", "", _section_text(info.system_prompt), ""]
    body = []
    for message in messages:
        heading = "## You" if message.role == "user" else f"## {message.role.capitalize()}"
        notes = []
        if message.role == "assistant":
            if message.model:
                notes.append(one_line(message.model))
            if message.status != "complete":
                notes.append(message.status)
            if message.payment is None and message.copied_from is not None:
                notes.append(COPIED_NOTE)
            if message.payment is not None:
                payment = message.payment
                paid = (
                    f"{format_usd(payment.amount_usd)} on "
                    f"{one_line(network_label(payment.network))} "
                    f"({payment.shown_status})"
                )
                notes.append(paid + (f", tx {shown_tx(payment.tx)}" if payment.tx else ""))
        if notes:
            heading += " (" + " · ".join(notes) + ")"
        body += [heading, "", _section_text(message.content) or "*(no text)*", ""]
        if message.error:
            body += [f"> Error: {one_line(message.error)}", ""]
    return "\n".join(front + body).rstrip() + "\n"


def _section_text(text: str) -> str:
    """A message (or the system prompt) as the body of its section: safe for a terminal, its
    headings beneath the section's."""
    return nest_headings(terminal_text(text).rstrip(), _SECTION_LEVEL)


# CommonMark, outside code fences: an ATX heading (up to 3 spaces in), a fence's opening, a
# setext underline, and what starts a block that is no paragraph (so no setext heading).
_ATX = re.compile(r"^( {0,3})(#{1,6})(?=[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^( {4}|\t| {0,3}([-+*>|]|\d{1,9}[.)])( |\t|$)| {0,3}(<|\*\*\*|___))")


def nest_headings(markdown: str, level: int) -> str:
    """`markdown` with its headings moved down so that the highest becomes `level` + 1 (the
    others keep their distance from it, to 6 at most); a setext heading becomes an ATX one.
    Code fences are left as they are; nothing changes when the headings are low enough."""
    lines = markdown.split("\n")
    found = list(_headings(lines))
    if not found:
        return markdown
    shift = max(0, level + 1 - min(depth for _, _, depth in found))
    if not shift:
        return markdown
    for start, end, depth in reversed(found):
        if end == start + 1:  # ATX: "## text" keeps its text and closing hashes
            match = _ATX.match(lines[start])
            assert match is not None
            rest = lines[start][match.end() :]
            lines[start] = match.group(1) + "#" * min(6, depth + shift) + rest
        else:  # setext: the paragraph's lines, then the underline
            text = " ".join(line.strip() for line in lines[start : end - 1])
            lines[start:end] = ["#" * min(6, depth + shift) + " " + text]
    return "\n".join(lines)


def _headings(lines: list[str]) -> Iterator[tuple[int, int, int]]:
    """(first line, line after the last, level) of each heading outside code fences."""
    fence = ""
    paragraph: int | None = None  # where the paragraph being read started
    block = False  # inside a block that is no paragraph (a list, a quote...) until a blank line
    for index, line in enumerate(lines):
        if fence:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
            continue
        opening = _FENCE.match(line)
        if opening:
            fence, paragraph, block = opening.group(1), None, False
            continue
        if not line.strip():
            paragraph, block = None, False
            continue
        atx = _ATX.match(line)
        if atx:
            yield index, index + 1, len(atx.group(2))
            paragraph, block = None, False
            continue
        underline = _SETEXT.match(line)
        if underline and paragraph is not None:
            yield paragraph, index + 1, 1 if underline.group(1)[0] == "=" else 2
            paragraph = None
        elif block or paragraph is not None:
            continue
        elif underline and underline.group(1)[0] == "-":
            continue  # a thematic break, between paragraphs
        elif _NOT_PARAGRAPH.match(line):
            block = True
        else:
            paragraph = index


def _message(message: StoredMessage) -> dict[str, Any]:
    payment = message.payment
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "error": message.error or None,
        "created": message.created,
        "copied_from": message.copied_from,
        "payment": None
        if payment is None
        else {
            "amount_usd": usd_text(payment.amount_usd),
            "amount": str(payment.amount),
            "tx": payment.tx,
            "network": payment.network,
            "status": payment.shown_status,
            "payer": payment.payer,
            "pay_to": payment.pay_to,
            "nonce": payment.nonce,
            "valid_before": payment.valid_before,
            "reason": payment.reason or None,
        },
    }


def _yaml(text: str) -> str:
    # A JSON string is a valid YAML scalar, whatever it holds; on one safe line first, since
    # JSON would leave C1 controls raw.
    return json.dumps(one_line(text), ensure_ascii=False)
