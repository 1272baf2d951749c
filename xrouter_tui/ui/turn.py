"""One chat turn as plain async code: pay, stream, and keep count, with no widgets in sight.

The chat screen wraps `run_turn` in an exclusive worker and gives it an `AnswerSink` that
draws; tests and benchmarks can drive it with any sink.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from xrouter_tui.api import ConfirmPayment, Delta, Done, Paid, Reasoning, Usage
from xrouter_tui.chat import ChatMessage, Conversation, MessageStatus
from xrouter_tui.payments import SignedPayment

if TYPE_CHECKING:
    from xrouter_tui.api import RouterClient
    from xrouter_tui.history.journal import TurnJournal
    from xrouter_tui.ledger import Ledger
    from xrouter_tui.resends import Resend

__all__ = ["AnswerSink", "TurnSettings", "TurnStats", "run_turn"]

# The longest stretch the stream loop runs before it lets the rest of the app in.
STREAM_SLICE = 0.002


class AnswerSink(Protocol):
    """Where a turn's answer goes as it arrives."""

    def paying(self, payment: SignedPayment) -> None:
        """A payment was signed and is about to be sent."""

    def paid(self) -> None:
        """The router took the payment; the answer comes next."""

    def text(self, text: str) -> None:
        """A piece of the answer (called once per delta: keep it cheap)."""

    def reasoning(self, text: str) -> None:
        """A piece of the model's reasoning."""


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What a turn asks of which model."""

    model: str
    max_tokens: int
    temperature: float | None = None


@dataclass(slots=True)
class TurnStats:
    """Live counts of the turn being streamed; the status bar samples them."""

    started: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None
    last_text_at: float | None = None
    # One delta is about one token on every router we know; the server's usage replaces it.
    output_tokens: int = 0
    prompt_tokens: int | None = None
    exact: bool = False

    def tokens_per_second(self) -> float | None:
        if self.first_text_at is None or self.last_text_at is None:
            return None
        elapsed = self.last_text_at - self.first_text_at
        return self.output_tokens / elapsed if elapsed > 0.05 else None


async def run_turn(
    client: RouterClient,
    conversation: Conversation,
    answer: ChatMessage,
    settings: TurnSettings,
    sink: AnswerSink,
    stats: TurnStats,
    ledger: Ledger,
    journal: TurnJournal | None = None,
    confirm: ConfirmPayment | None = None,
    resend: Resend | None = None,
    messages: Sequence[Mapping[str, str]] | None = None,
) -> None:
    """Send the conversation so far (or `messages`, the part of it chosen to fit), pay once,
    and grow `answer` as the reply streams in. With `resend`, send a lost answer's request
    again with its own payment instead.

    `answer` may already be in `conversation`: without text it is not sent. On success it ends
    `COMPLETE`; on an error the caller marks it (it knows whether the user stopped it or
    something failed). The `ledger` records the payment before the paid request is sent (and
    holds the budgets); `journal`, if given, keeps the turn's text in the history about once a
    second; the caller writes how it ended. `confirm` sees the router's quote before anything
    is signed.
    """
    save = journal.delta if journal is not None else None

    def signed(payment: SignedPayment, request: Mapping[str, Any]) -> None:
        # Before the paid request goes out; a failure here (a budget spent meanwhile, a
        # history that cannot be written) stops the turn unsent.
        reply_id = journal.reply_id if journal is not None else None
        ledger.signed(payment, request, message_id=reply_id, model=settings.model)
        answer.payment = payment
        sink.paying(payment)

    if resend is not None:
        # The lost answer's own request and payment, again: nothing is signed. Its messages
        # are the ones chosen when it was first sent.
        ledger.resending(resend)
        answer.payment = resend.payment
        sink.paying(resend.payment)
        events = client.resend_chat(resend.body, resend.payment)
    else:
        events = client.stream_chat(
            conversation.history() if messages is None else messages,
            model=settings.model,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            budgets=ledger.budgets(),
            confirm=confirm,
            on_signed=signed,
        )
    parts: list[str] = []
    slice_start = time.monotonic()
    try:
        async for event in events:
            if type(event) is Delta:
                # The hot path: a few attribute writes and the sink's cheap `text`.
                parts.append(event.text)
                now = time.monotonic()
                if stats.first_text_at is None:
                    stats.first_text_at = now
                stats.last_text_at = now
                if not stats.exact:
                    stats.output_tokens += 1
                sink.text(event.text)
                if save is not None:
                    save(event.text)  # cheap: it writes only when a second has passed
                if now - slice_start > STREAM_SLICE:
                    # A fast stream is read from buffers without waiting, so this loop could
                    # keep the event loop for a long stretch: let keys and frames in.
                    await asyncio.sleep(0)
                    slice_start = time.monotonic()
            elif isinstance(event, Paid):
                answer.accepted = True
                answer.receipt = event.receipt
                if answer.payment is not None:
                    ledger.paid(answer.payment, event.receipt)
                sink.paid()
            elif isinstance(event, Reasoning):
                sink.reasoning(event.text)
            elif isinstance(event, Usage):
                answer.usage = event
                stats.output_tokens = event.completion_tokens
                stats.prompt_tokens = event.prompt_tokens
                stats.exact = True
            elif isinstance(event, Done) and event.finish_reason == "length":
                answer.cut_at = settings.max_tokens
    finally:
        answer.content = "".join(parts)
    answer.status = MessageStatus.COMPLETE
