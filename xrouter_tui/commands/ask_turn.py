"""`xrouter-tui ask`: one paid question, the answer streamed to stdout as it arrives.

stdout carries the answer only, so it pipes cleanly; stderr carries a progress line (on a
terminal) and one summary line at the end: model, tokens, amount paid, transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from xrouter_tui.api import (
    ConfirmPayment,
    Delta,
    Done,
    ModelInfo,
    Paid,
    Reasoning,
    RouterClient,
    Usage,
)
from xrouter_tui.charges import Charge
from xrouter_tui.payments import Receipt, SignedPayment, format_usd
from xrouter_tui.safe_text import TerminalFilter, one_line

if TYPE_CHECKING:
    from xrouter_tui.history.journal import TurnJournal
    from xrouter_tui.ledger import Ledger
    from xrouter_tui.resends import Resend

__all__ = [
    "AskRequest",
    "Progress",
    "PromptError",
    "TurnRecord",
    "build_messages",
    "read_prompt",
    "stream_answer",
]

# The progress line is redrawn at most this often: a terminal write per delta would cost more
# than the answer itself on a fast stream.
_PROGRESS_INTERVAL = 0.1


class PromptError(ValueError):
    """No usable prompt was given."""


@dataclass(frozen=True, slots=True)
class AskRequest:
    """What to ask and of which model."""

    prompt: str
    model: str
    max_tokens: int
    system: str = ""
    temperature: float | None = None
    # The earlier exchanges of a continued conversation, oldest first (no system prompt).
    earlier: tuple[Mapping[str, str], ...] = ()


@dataclass(slots=True)
class TurnRecord:
    """What happened in a turn so far: enough to summarise it, or to say what an error cost."""

    model: str
    payment: SignedPayment | None = None
    # True once the router answered the paid request with success: the payment was taken.
    accepted: bool = False
    receipt: Receipt | None = None
    deltas: int = 0
    usage: Usage | None = None
    ends_with_newline: bool = True
    started: float = field(default_factory=time.monotonic)
    # The model's prices, when known: they tell what the tokens used cost, and the refund.
    model_info: ModelInfo | None = None
    # Why the answer ended, as the router said ("stop"; "length": cut at max_tokens).
    finish_reason: str | None = None

    def summary(self) -> str:
        """One line: model, tokens, what was paid and where, the transaction."""
        if self.usage is not None:
            tokens = f"{self.usage.prompt_tokens} in / {self.usage.completion_tokens} out tokens"
        else:
            tokens = f"~{self.deltas} out tokens"
        parts = [self.model, tokens]
        if self.payment is None:
            parts.append("not charged")
        else:
            charge = Charge.of(self.payment, self.receipt, self.usage, self.model_info)
            parts.extend(charge.parts())
        return one_line(" · ".join(parts))


class Progress:
    """A one-line status on stderr, drawn only when stderr is a terminal."""

    def __init__(self, stream: IO[str], *, enabled: bool) -> None:
        self._stream = stream
        self.enabled = enabled
        self._visible = False
        self._last = 0.0

    def show(self, text: str, *, throttle: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if throttle and now - self._last < _PROGRESS_INTERVAL:
            return
        self._last = now
        self._stream.write("\r\x1b[2K" + text)
        self._stream.flush()
        self._visible = True

    def clear(self) -> None:
        if self._visible:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._visible = False


def read_prompt(words: Sequence[str], stdin: IO[str] | None) -> str:
    """The prompt from the arguments, else stdin; piped stdin is appended to a given prompt."""
    given = " ".join(words).strip()
    piped = stdin is not None and not stdin.isatty()
    if not given or given == "-":
        if not piped:
            raise PromptError("no prompt: give it as arguments, or pipe it on stdin")
        text = stdin.read()  # type: ignore[union-attr]
    else:
        extra = stdin.read() if piped else ""  # type: ignore[union-attr]
        text = f"{given}\n\n{extra}" if extra.strip() else given
    if not text.strip():
        raise PromptError("the prompt is empty")
    return text


def build_messages(request: AskRequest) -> list[dict[str, str]]:
    """What is sent: an optional system prompt, the earlier exchanges, then the question."""
    messages = [{"role": "system", "content": request.system}] if request.system.strip() else []
    messages.extend({"role": m["role"], "content": m["content"]} for m in request.earlier)
    messages.append({"role": "user", "content": request.prompt})
    return messages


async def stream_answer(
    client: RouterClient,
    request: AskRequest,
    record: TurnRecord,
    *,
    out: IO[str],
    progress: Progress,
    out_is_terminal: bool,
    ledger: Ledger,
    journal: TurnJournal | None = None,
    confirm: ConfirmPayment | None = None,
    raw: bool = False,
    resend: Resend | None = None,
) -> None:
    """Pay, then write each delta to `out` as it comes; `record` keeps what happened, the
    `ledger` the payment, and `journal`, if given, writes the turn to the history as it goes.

    What is written is the answer without escape sequences or control characters (a model can
    be steered into setting the window title or the clipboard), a lone carriage return kept
    only where `out` is no terminal; `raw` writes the text as it came. The history keeps it as
    it came either way. With `resend`, a lost answer's request goes again with its own
    payment instead of `request`'s messages.
    """
    # One filter for the whole answer: a sequence may be cut between two deltas.
    safe = None if raw else TerminalFilter(keep_cr=not out_is_terminal)

    def signed(payment: SignedPayment, body: Mapping[str, Any]) -> None:
        # Before the paid request goes out; a budget spent meanwhile stops it here, unsent.
        reply_id = journal.reply_id if journal is not None else None
        ledger.signed(payment, body, message_id=reply_id, model=request.model)
        record.payment = payment
        progress.show(f"paying {format_usd(payment.amount_usd)} on {payment.network.label}…")

    if resend is not None:
        # The lost answer's own request and payment, again: nothing is signed.
        ledger.resending(resend)
        record.payment = resend.payment
        progress.show(f"asking {request.model} again, with the same payment…")
        events = client.resend_chat(resend.body, resend.payment)
    else:
        progress.show(f"asking {request.model}…")
        events = client.stream_chat(
            build_messages(request),
            model=request.model,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            budgets=ledger.budgets(),
            confirm=confirm,
            on_signed=signed,
        )
    first_text_at: float | None = None
    async for event in events:
        if type(event) is Delta:
            if first_text_at is None:
                first_text_at = time.monotonic()
                if out_is_terminal:
                    # The answer and the progress line would share one terminal: the answer wins.
                    progress.clear()
                    progress.enabled = False
            shown = event.text if safe is None else safe.feed(event.text)
            out.write(shown)
            out.flush()
            if journal is not None:
                journal.delta(event.text)
            record.deltas += 1
            if shown:
                record.ends_with_newline = shown.endswith("\n")
            if progress.enabled:
                rate = record.deltas / max(time.monotonic() - first_text_at, 1e-3)
                progress.show(
                    f"streaming · {record.deltas} tokens · {rate:.0f} tok/s", throttle=True
                )
        elif isinstance(event, Paid):
            record.accepted = True
            record.receipt = event.receipt
            if record.payment is not None:
                ledger.paid(record.payment, event.receipt)
            progress.show("paid; waiting for the answer…")
        elif isinstance(event, Reasoning):
            progress.show("thinking…", throttle=True)
        elif isinstance(event, Usage):
            record.usage = event
        elif isinstance(event, Done):
            record.finish_reason = event.finish_reason
    if safe is not None:
        out.write(safe.flush())
    progress.clear()
