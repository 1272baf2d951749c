"""The chat's history on disk, as the app uses it: opening the store, turning saved messages
back into a `Conversation` and into what the log shows, and exporting one as Markdown.

The store is the one `xrouter-tui ask` writes (`history_path`); turns are written by the same
`TurnJournal`, so a conversation reads the same whichever side wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from xrouter_tui.api import ModelInfo, Usage
from xrouter_tui.charges import Charge
from xrouter_tui.chat import ChatMessage, Conversation, MessageStatus
from xrouter_tui.history.export import COPIED_NOTE, export_markdown
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import ConversationInfo, Store, StoredMessage
from xrouter_tui.payments import Receipt, format_usd, network_label
from xrouter_tui.ui.widgets.chat_log import ShownMessage

__all__ = [
    "conversation_from_store",
    "export_conversation",
    "open_history",
    "shown_messages",
    "stored_footer",
    "stored_usage",
    "write_new_file",
]


def open_history(env: Mapping[str, str], *, demo: bool = False) -> Store:
    """The history database `ask` uses too, or with `demo` the demo's own (as `ask --demo`
    uses); raises `StoreError` when it cannot be opened."""
    return Store.open(history_path(env, demo=demo))


def conversation_from_store(
    info: ConversationInfo, messages: Sequence[StoredMessage]
) -> Conversation:
    """The conversation as the chat keeps it, so that the next turn sends its history.

    Stored payments are amounts, not signed payments: what they cost is carried as a sum; a
    settled one's transaction comes back as its receipt (so "Copy last transaction" finds it).
    """
    conversation = Conversation(system_prompt=info.system_prompt, carried_usd=info.spent_usd)
    for message in messages:
        if message.role not in ("user", "assistant"):
            continue
        usage = stored_usage(message)
        conversation.add(
            ChatMessage(
                message.role,
                message.content,
                model=message.model,
                status=MessageStatus(message.status),
                usage=usage,
                error=message.error,
                receipt=_settled_receipt(message),
                id=message.id,
            )
        )
    return conversation


def _settled_receipt(message: StoredMessage) -> Receipt | None:
    payment = message.payment
    if payment is None or payment.status != "settled" or not payment.tx:
        return None
    return Receipt(success=True, transaction=payment.tx, network=payment.network)


def shown_messages(
    messages: Sequence[StoredMessage], models: Sequence[ModelInfo] = ()
) -> list[ShownMessage]:
    """What the log shows of saved messages: questions, answers with their money line (with
    the refund when `models` has the model's prices), errors."""
    prices = {model.id: model for model in models}
    shown: list[ShownMessage] = []
    for message in messages:
        if message.role == "user":
            shown.append(ShownMessage("user", message.content))
        elif message.role == "assistant":
            shown.append(
                ShownMessage(
                    "assistant",
                    message.content,
                    model=message.model,
                    footer=stored_footer(message, prices.get(message.model)),
                    error=message.error,
                )
            )
    return shown


def stored_usage(message: StoredMessage) -> Usage | None:
    """A saved answer's token counts, when the router reported them."""
    if message.prompt_tokens is None or message.completion_tokens is None:
        return None
    return Usage(
        message.prompt_tokens,
        message.completion_tokens,
        message.prompt_tokens + message.completion_tokens,
    )


def stored_footer(message: StoredMessage, model: ModelInfo | None = None) -> str:
    """The dim line under a saved answer, worded like the live one (`answer_footer`)."""
    parts: list[str] = []
    if message.status in ("stopped", "interrupted"):
        parts.append(message.status)
    usage = stored_usage(message)
    if usage is not None:
        parts.append(f"{usage.prompt_tokens} in / {usage.completion_tokens} out tokens")
    payment = message.payment
    if payment is None:
        # A fork's copy: its payment, if any, stays with the answer it copies.
        parts.append("not charged" if message.copied_from is None else COPIED_NOTE)
        return " · ".join(parts)
    where = network_label(payment.network)
    if payment.taken:
        charge = Charge(
            payment.amount_usd,
            where,
            payment.tx,
            usage=usage,
            model=model,
            refunded_usd=payment.refund_usd if payment.refund else None,
        )
        parts.extend(charge.parts())
    else:
        status = payment.shown_status  # an expired one reads "expired, not charged"
        outcome = {"signed": "signed, outcome unknown"}.get(status, status)
        note = f"payment of {format_usd(payment.amount_usd)} on {where} {outcome}"
        parts.append(note + (f" ({payment.reason})" if payment.reason else ""))
    return " · ".join(parts)


def export_conversation(store: Store, conversation_id: int, folder: Path) -> Path | None:
    """Write the conversation as Markdown (as `xrouter-tui export ID --format md`) to
    `conversation-ID.md` in `folder`, or `conversation-ID-2.md`... when that exists: an
    export never overwrites a file. None when there is no such conversation; `OSError` when
    the folder cannot be written."""
    info = store.conversation(conversation_id)
    if info is None:
        return None
    document = export_markdown(info, store.messages(conversation_id))
    return write_new_file(folder, f"conversation-{conversation_id}", ".md", document)


def write_new_file(folder: Path, stem: str, extension: str, document: str) -> Path:
    """Write `document` to `stem` + `extension` in `folder`, or to `stem-2`... when that
    exists: an export never overwrites a file. `OSError` when the folder cannot be written."""
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        path = folder / f"{stem}{suffix}{extension}"
        try:
            # "x": created here or not at all, so a file that appeared meanwhile is kept too.
            with path.open("x", encoding="utf-8", newline="") as file:
                file.write(document)
        except FileExistsError:
            number += 1
            continue
        return path
