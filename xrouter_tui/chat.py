"""One conversation in memory: who said what, how each answer ended, and what it cost.

The full-screen chat keeps one `Conversation`; what it sends to the router is `history()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from xrouter_tui.api import Usage
from xrouter_tui.payments import Receipt, SignedPayment

__all__ = ["ChatMessage", "Conversation", "MessageStatus"]


class MessageStatus(StrEnum):
    """How a message ended (the names the history store will keep)."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    STOPPED = "stopped"
    FAILED = "failed"
    # Left streaming by a program that stopped before the answer ended (read from the history).
    INTERRUPTED = "interrupted"


@dataclass(slots=True)
class ChatMessage:
    """A user's question or an answer, with what the answer cost."""

    role: str
    content: str
    model: str = ""
    status: MessageStatus = MessageStatus.COMPLETE
    usage: Usage | None = None
    payment: SignedPayment | None = None
    # True once the router accepted the paid request: the payment was taken.
    accepted: bool = False
    receipt: Receipt | None = None
    error: str = ""
    # The max_tokens an answer was cut at (the router said finish_reason "length"), if it was.
    cut_at: int | None = None
    # Its row in the history, once saved (a fork is made through a saved message).
    id: int | None = None

    @property
    def charged_usd(self) -> Decimal:
        """What this message cost: the payment's amount once the router took it, else nothing."""
        return self.payment.amount_usd if self.payment is not None and self.accepted else Decimal(0)


@dataclass(slots=True)
class Conversation:
    """The messages of one chat, oldest first."""

    system_prompt: str = ""
    messages: list[ChatMessage] = field(default_factory=list)
    # What the answers cost that are known only by their amount: those of a conversation resumed
    # from the history, whose signed payments are not in memory.
    carried_usd: Decimal = Decimal(0)
    # The conversation's own temperature and max_tokens; None: the user's defaults.
    temperature: float | None = None
    max_tokens: int | None = None
    # `earlier()`'s messages, with what the conversation looked like when they were made.
    _earlier: tuple[object, list[dict[str, str]]] | None = field(
        default=None, repr=False, compare=False
    )

    def add(self, message: ChatMessage) -> ChatMessage:
        self.messages.append(message)
        return message

    def history(self) -> list[dict[str, str]]:
        """What the router is sent: the system prompt, then every exchange that produced text.

        A question whose answer failed, or was stopped before any text came, is left out: the
        user gets it back in the prompt box, and sending it twice would confuse the model.
        """
        pairs, pending_question = self._walk()
        sent = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for question, answer in pairs:
            sent.append({"role": "user", "content": question.content})
            sent.append({"role": "assistant", "content": answer.content})
        if pending_question is not None:
            sent.append({"role": "user", "content": pending_question.content})
        return sent

    def earlier(self) -> list[dict[str, str]]:
        """`exchanges()` as the messages they are sent as, oldest first. The chat asks for them
        on every keystroke's price: they are made again only when the conversation changed
        (a message added, or the newest ones grown or ended), not thousands of dicts a time."""
        tail = tuple((m.status, len(m.content)) for m in self.messages[-2:])
        key = (len(self.messages), tail)
        if self._earlier is None or self._earlier[0] != key:
            sent: list[dict[str, str]] = []
            for question, answer in self.exchanges():
                sent.append({"role": "user", "content": question.content})
                sent.append({"role": "assistant", "content": answer.content})
            self._earlier = (key, sent)
        return self._earlier[1]

    def exchanges(self) -> list[tuple[ChatMessage, ChatMessage]]:
        """The earlier exchanges that can be sent again: each question with its answer, when
        the answer is complete or was stopped with text, oldest first (`history()`'s pairs)."""
        return self._walk()[0]

    def _walk(self) -> tuple[list[tuple[ChatMessage, ChatMessage]], ChatMessage | None]:
        """The exchanges that produced text, and the last question still without an answer."""
        pairs: list[tuple[ChatMessage, ChatMessage]] = []
        pending_question: ChatMessage | None = None
        for message in self.messages:
            if message.role == "user":
                if message.status is not MessageStatus.FAILED:
                    pending_question = message
                continue
            if pending_question is None or not message.content:
                continue
            if message.status in (MessageStatus.COMPLETE, MessageStatus.STOPPED):
                pairs.append((pending_question, message))
            pending_question = None
        return pairs, pending_question

    @property
    def spent_usd(self) -> Decimal:
        """Everything this conversation's answers cost."""
        return sum((message.charged_usd for message in self.messages), self.carried_usd)

    def last_answer(self) -> ChatMessage | None:
        """The newest answer that has text, if any."""
        for message in reversed(self.messages):
            if message.role == "assistant" and message.content:
                return message
        return None
