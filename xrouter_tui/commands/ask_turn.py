"""`xrouter-tui ask`: one paid question, the answer streamed to stdout as it arrives.

stdout carries the answer only, so it pipes cleanly: drawn as Markdown on a terminal, plain
text to a pipe or a file, the router's very text with --raw, or one JSON document at the end
with --json. stderr carries a progress line (on a terminal) and one summary line at the end:
model, tokens, amount paid, transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

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
from xrouter_tui.payments.networks import usd_text
from xrouter_tui.safe_text import TerminalFilter, one_line, valid_tx

if TYPE_CHECKING:
    from xrouter_tui.history.journal import TurnJournal
    from xrouter_tui.ledger import Ledger
    from xrouter_tui.resends import Resend

__all__ = [
    "AnswerOutput",
    "AskRequest",
    "PlainAnswer",
    "Progress",
    "PromptError",
    "TurnRecord",
    "answer_output",
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
    # The answer's text as it came, escapes and all (what --json prints; the screen gets the
    # safe text).
    received: list[str] = field(default_factory=list)
    usage: Usage | None = None
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

    def document(
        self,
        status: Literal["complete", "failed", "stopped"],
        conversation_id: int | None,
        error: str | None = None,
    ) -> dict[str, Any]:
        """The turn for scripts (`ask --json`): the answer as it came, its model, tokens and
        payment, how it ended, and why when it did not complete."""
        payment, receipt, usage = self.payment, self.receipt, self.usage
        paid = receipt is not None and receipt.success
        document: dict[str, Any] = {
            "answer": "".join(self.received),
            "model": self.model,
            "tokens_in": usage.prompt_tokens if usage is not None else None,
            "tokens_out": usage.completion_tokens if usage is not None else None,
            "amount_usd": usd_text(payment.amount_usd) if payment is not None else None,
            "network": (
                payment.network.name_for(payment.x402_version) if payment is not None else None
            ),
            # The router's word: passed on only when it is a transaction hash.
            "tx": valid_tx(receipt.transaction) if paid and receipt is not None else None,
            "conversation_id": conversation_id,
            "status": status,
            "finish_reason": self.finish_reason,
        }
        if error is not None:
            document["error"] = error
        return document


class AnswerOutput(Protocol):
    """Where the answer goes as it streams."""

    # True when each piece goes to the terminal as it comes: the progress line, which shares
    # the terminal, then gives way for good at the first piece. An output that holds text back
    # (Markdown, a block at a time) clears the progress line itself before each write.
    takes_terminal: bool

    def write(self, text: str) -> None:
        """The next piece of the answer, as the router sent it."""

    def end(self) -> None:
        """The answer is over, or stopped: write what is held, end on a new line."""


class PlainAnswer:
    """The answer as text: without escape sequences or control characters (a model can be
    steered into setting the window title or the clipboard), a lone carriage return kept only
    where `out` is no terminal; with `raw`, as the router sent it."""

    def __init__(self, out: IO[str], *, raw: bool, on_terminal: bool) -> None:
        self._out = out
        self.takes_terminal = on_terminal
        # One filter for the whole answer: a sequence may be cut between two deltas.
        self._safe = None if raw else TerminalFilter(keep_cr=not on_terminal)
        self._wrote = False
        self._ends_with_newline = True

    def write(self, text: str) -> None:
        shown = text if self._safe is None else self._safe.feed(text)
        self._out.write(shown)
        self._out.flush()
        if shown:
            self._wrote = True
            self._ends_with_newline = shown.endswith("\n")

    def end(self) -> None:
        rest = self._safe.flush() if self._safe is not None else ""
        if rest:
            self._wrote = True
            self._ends_with_newline = rest.endswith("\n")
        if self._wrote and not self._ends_with_newline:
            rest += "\n"  # what follows on the terminal starts on a line of its own
        if rest:
            self._out.write(rest)
            self._out.flush()
        self._wrote = False
        self._ends_with_newline = True


class _NoAnswer:
    """`ask --json`: nothing while the answer streams (the record keeps it for the end)."""

    takes_terminal = False

    def write(self, text: str) -> None:
        pass

    def end(self) -> None:
        pass


def answer_output(
    out: IO[str],
    env: Mapping[str, str],
    progress: Progress,
    *,
    as_json: bool,
    raw: bool,
    on_terminal: bool,
) -> AnswerOutput:
    """How the answer is written to `out`: nothing until the end with --json; as sent with
    --raw; drawn as Markdown on a terminal; else plain text."""
    if as_json:
        return _NoAnswer()
    if on_terminal and not raw:
        # Rich is imported only here: a pipe, --raw and --json never pay for it.
        from xrouter_tui.commands.ask_markdown import MarkdownAnswer

        return MarkdownAnswer(out, env, before_write=progress.clear)
    return PlainAnswer(out, raw=raw, on_terminal=on_terminal)


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
    answer: AnswerOutput,
    progress: Progress,
    ledger: Ledger,
    journal: TurnJournal | None = None,
    confirm: ConfirmPayment | None = None,
    resend: Resend | None = None,
) -> None:
    """Pay, then hand each delta to `answer` as it comes; `record` keeps what happened, the
    `ledger` the payment, and `journal`, if given, writes the turn to the history as it goes.

    What `answer` shows is its own affair (safe text, Markdown, nothing until the end); the
    record and the history keep the text as it came. With `resend`, a lost answer's request
    goes again with its own payment instead of `request`'s messages. The caller ends `answer`.
    """

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
                if answer.takes_terminal:
                    # The answer and the progress line would share one terminal: the answer wins.
                    progress.clear()
                    progress.enabled = False
            record.received.append(event.text)
            if journal is not None:
                journal.delta(event.text)
            record.deltas += 1
            answer.write(event.text)
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
    progress.clear()
