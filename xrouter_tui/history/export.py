"""One saved conversation as a document: Markdown with a front-matter, or JSON with every
message and its payment. For `xrouter-tui export` and the chat's export alike.

The history keeps answers as the router sent them; the Markdown shows them through `safe_text`
(Markdown is read on terminals too: `export 3 | less -R`), the JSON keeps them.
"""

from __future__ import annotations

import json
from typing import Any

from xrouter_tui.history.store import ConversationInfo, StoredMessage
from xrouter_tui.payments import format_usd, network_label
from xrouter_tui.payments.networks import usd_text
from xrouter_tui.safe_text import json_text, one_line, shown_tx, terminal_text

__all__ = ["export_json", "export_markdown", "usd_text"]


def export_json(info: ConversationInfo, messages: list[StoredMessage]) -> str:
    """One conversation as a JSON object with all of its messages and their payments."""
    document = {
        "id": info.id,
        "title": info.title,
        "model": info.model,
        "system_prompt": info.system_prompt,
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
        front += ["> System: " + terminal_text(info.system_prompt).replace("\n", "\n> "), ""]
    body = []
    for message in messages:
        heading = "## You" if message.role == "user" else f"## {message.role.capitalize()}"
        notes = []
        if message.role == "assistant":
            if message.model:
                notes.append(one_line(message.model))
            if message.status != "complete":
                notes.append(message.status)
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
        body += [heading, "", terminal_text(message.content).rstrip() or "*(no text)*", ""]
        if message.error:
            body += [f"> Error: {one_line(message.error)}", ""]
    return "\n".join(front + body).rstrip() + "\n"


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
