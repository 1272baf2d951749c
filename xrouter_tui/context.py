"""What of a conversation is sent: the newest whole exchanges that fit the router's limits and
the model's context, chosen before anything is sent. No I/O.

X-Router refuses a body of more than 100 messages, or with a message over 100,000 characters
(protocol.md §8), before it asks for payment; a history longer than the model's context would be
refused or cut somewhere else, and every turn would pay for all of it as input. One function
decides for the chat, `ask -c` and the proxy: the system prompt always, the question always,
then the newest exchanges (a question with its answer) that fit, whole, and none older than the
first that does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xrouter_tui.pricing import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE

__all__ = [
    "CONTEXT_SHARE",
    "MAX_CONTENT_CHARS",
    "MAX_MESSAGES",
    "Context",
    "PromptTooLong",
    "check_length",
    "choose_context",
    "message_tokens",
    "request_refusal",
    "short_tokens",
]

# X-Router's limits on a chat body (checked before any 402).
MAX_MESSAGES = 100
MAX_CONTENT_CHARS = 100_000
# The share of a model's context the input and max_tokens may fill. Tokens are counted as the
# price is, a token per four characters: close for English prose, but code runs nearer three
# characters a token and CJK text one or two, so a count can be short by a quarter or more. The
# tenth kept free covers prose and most code; a history of mostly CJK text can still overrun a
# model's window, which the router then refuses (nothing is paid for a refusal before the 402).
CONTEXT_SHARE = 0.9


class PromptTooLong(ValueError):
    """The question (or the system prompt) cannot be sent, whatever history is left out; the
    message is one line naming the limit and the size."""


@dataclass(frozen=True, slots=True)
class Context:
    """What is sent for one turn, and what was left out."""

    messages: list[dict[str, str]]
    # Earlier messages not sent (older than the oldest exchange sent), and about how many
    # tokens they would have taken.
    left_out: int
    left_out_tokens: int
    # About how many input tokens the earlier exchanges sent take (the system prompt and the
    # question not counted): what the history adds to the price.
    history_tokens: int
    # Why the oldest exchanges were left out: "context_messages", "the model's context", or
    # "100 messages" (X-Router's limit); "" when nothing was.
    limit: str = ""

    @property
    def earlier_sent(self) -> int:
        """How many earlier messages are sent (the system prompt and the question not counted)."""
        system = 1 if self.messages and self.messages[0]["role"] == "system" else 0
        return len(self.messages) - system - 1


def message_tokens(message: Mapping[str, object]) -> int:
    """About how many tokens one message takes, counted as the price counts them (each rounded
    up, so a sum is never below the whole's count)."""
    return math.ceil(len(str(message.get("content", ""))) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE


def short_tokens(tokens: int) -> str:
    """`950`, `1.2K`, `21K`, `1.2M`: a token count for a status line."""
    if tokens < 1000:
        return str(tokens)
    if tokens < 10_000:
        return f"{tokens / 1000:.1f}".removesuffix(".0") + "K"
    if tokens < 999_500:
        return f"{round(tokens / 1000)}K"
    return f"{tokens / 1_000_000:.1f}".removesuffix(".0") + "M"


def choose_context(
    system: str,
    earlier: Sequence[Mapping[str, str]],
    question: str,
    *,
    context_length: int | None,
    max_tokens: int,
    max_exchanges: int | None = None,
) -> Context:
    """The messages to send: `system` (when not blank), the newest whole exchanges of `earlier`
    (user and assistant messages, oldest first) that fit, then `question`.

    Fits means: at most `MAX_MESSAGES` messages, none over `MAX_CONTENT_CHARS` characters, at
    most `max_exchanges` exchanges when given, and, when the model's `context_length` is known,
    the input's tokens plus `max_tokens` within `CONTEXT_SHARE` of it. Raises `PromptTooLong`
    when the question and system prompt alone do not fit.
    """
    head = [{"role": "system", "content": system}] if system.strip() else []
    last = {"role": "user", "content": question}
    check_length("The prompt", question)
    if head:
        check_length("The system prompt", system)
    fixed_tokens = sum(message_tokens(m) for m in head) + message_tokens(last)
    room = _token_room(context_length, max_tokens)
    if room is not None and fixed_tokens > room:
        what = "The prompt and the system prompt" if head else "The prompt"
        raise PromptTooLong(
            f"{what} take about {fixed_tokens:,} tokens; with max_tokens {max_tokens:,} the "
            f"model's context ({context_length:,} tokens) leaves room for {max(room, 0):,}."
        )

    # Walked from the newest exchange back; only what is sent is copied (this runs on every
    # debounced keystroke, over conversations of thousands of messages).
    earlier = [m for m in earlier if m.get("role") != "system"]
    starts = _exchange_starts(earlier)
    message_room = MAX_MESSAGES - len(head) - 1
    tokens = fixed_tokens
    cut = len(earlier)  # earlier[cut:] is sent
    limit = ""
    for kept, start in enumerate(reversed(starts)):
        exchange = earlier[start:cut]
        if max_exchanges is not None and kept >= max_exchanges:
            limit = "context_messages"
            break
        if len(earlier) - start > message_room:
            limit = f"{MAX_MESSAGES} messages"
            break
        if any(len(str(m.get("content", ""))) > MAX_CONTENT_CHARS for m in exchange):
            limit = f"{MAX_CONTENT_CHARS:,} characters a message"
            break
        cost = sum(message_tokens(m) for m in exchange)
        if room is not None and tokens + cost > room:
            limit = "the model's context"
            break
        tokens += cost
        cut = start

    messages = [*head]
    messages.extend({"role": m["role"], "content": m["content"]} for m in earlier[cut:])
    messages.append(last)
    return Context(
        messages=messages,
        left_out=cut,
        left_out_tokens=sum(message_tokens(m) for m in earlier[:cut]),
        history_tokens=tokens - fixed_tokens,
        limit=limit if cut else "",
    )


def check_length(what: str, text: str) -> None:
    """Raise `PromptTooLong` when `text` (`what`: "The prompt") is longer than X-Router takes
    in one message."""
    if len(text) > MAX_CONTENT_CHARS:
        raise PromptTooLong(
            f"{what} is {len(text):,} characters; the router takes at most "
            f"{MAX_CONTENT_CHARS:,} in one message."
        )


def _token_room(context_length: int | None, max_tokens: int) -> int | None:
    """How many input tokens the model's context leaves beside `max_tokens`; None when the
    context length is not known."""
    if context_length is None or context_length <= 0:
        return None
    return int(context_length * CONTEXT_SHARE) - max_tokens


def _exchange_starts(earlier: Sequence[Mapping[str, str]]) -> list[int]:
    """Where each exchange of `earlier` begins: at each user message, except that anything
    before the first one (an assistant's greeting) goes with the first exchange."""
    starts: list[int] = []
    has_question = False  # whether the exchange being read has its user message yet
    for index, message in enumerate(earlier):
        is_question = message.get("role") == "user"
        if not starts or (is_question and has_question):
            starts.append(index)
            has_question = is_question
        else:
            has_question = has_question or is_question
    return starts


def request_refusal(
    messages: Sequence[Mapping[str, object]],
    *,
    context_length: int | None,
    max_tokens: int,
    model: str = "the model",
) -> str | None:
    """Why another program's request cannot be sent as it is (one sentence), or None when it
    fits: its messages are its own, so nothing is left out of them here."""
    if len(messages) > MAX_MESSAGES:
        return (
            f"The request has {len(messages):,} messages; X-Router takes at most {MAX_MESSAGES}: "
            "leave the older ones out."
        )
    for index, message in enumerate(messages):
        size = len(str(message.get("content", "")))
        if size > MAX_CONTENT_CHARS:
            return (
                f"messages[{index}] is {size:,} characters; X-Router takes at most "
                f"{MAX_CONTENT_CHARS:,} in one message."
            )
    room = _token_room(context_length, max_tokens)
    tokens = sum(message_tokens(message) for message in messages)
    if room is not None and tokens > room:
        return (
            f"The messages take about {tokens:,} tokens; with max_tokens {max_tokens:,} the "
            f"context of {model} ({context_length:,} tokens) leaves room for {max(room, 0):,}."
        )
    return None
