"""The proxy's requests in the history: each question and its answer, as the chat keeps them.

An OpenAI client sends the whole conversation with every request. When a request's earlier
messages are exactly a conversation this proxy just answered, the turn goes on in that
conversation instead of starting a new one, so a chat held through the proxy reads as one.

The stream passes through untouched; `StreamTap` reads a copy on the side, in batches, for the
answer's text: parsing every piece before passing it on would delay it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Sequence

from xrouter_tui.api import Limits, Usage, error_text, read_chunk
from xrouter_tui.history.journal import TurnJournal
from xrouter_tui.history.store import Store
from xrouter_tui.proxy.wire import ProxyRequest

__all__ = ["ProxyHistory", "StreamTap"]

# Conversations the proxy remembers how to continue (the most recent ones).
_REMEMBERED = 512
# The line ends of server-sent events: CR LF, LF or CR.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_CR, _LF = 0x0D, 0x0A


class StreamTap:
    """Reads an SSE chat stream from the bytes passed on: the answer's text, usage, finish.

    Within the limits the client keeps (`Limits`): a line longer than `line_bytes` or an
    answer longer than `answer_bytes` ends the reading, with `failure` saying which limit it
    was; the text read until then stays. An event's data lines count as one line (it is one
    JSON document). What is held at any time is one unfinished line and the event's data (each
    at most `line_bytes`), and what was fed since the last read.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._pending = bytearray()
        # The start of a line whose end has not been read yet.
        self._line = bytearray()
        self._data: list[str] = []
        self._data_size = 0
        self._size = 0
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: str | None = None
        # A limit the stream went past (in words that name the setting); nothing more is read.
        self.failure: str | None = None
        self.done = False
        self.skipped = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def complete(self) -> bool:
        """The router said the answer is whole: `[DONE]` or a finish reason, and no error."""
        return (
            self.error is None
            and self.failure is None
            and (self.done or self.finish_reason is not None)
        )

    def feed(self, chunk: bytes) -> None:
        if self.failure is None:
            self._pending += chunk

    @property
    def unread(self) -> int:
        """Bytes fed and not read yet."""
        return len(self._pending)

    def read(self, *, final: bool = False, limit: int | None = None) -> str:
        """Read what was fed so far (the first `limit` bytes of it, when given: a long stream
        is read in slices); the new text. The start of a line not ended yet is kept for the
        next read, unless `final` (the stream is over)."""
        pending = self._pending
        size = len(pending) if limit is None else min(max(limit, 1), len(pending))
        if size and pending[size - 1] == _CR:
            if size < len(pending):
                size += pending[size] == _LF  # CR LF is one line end: never cut between them
            elif not final:
                size -= 1  # perhaps the first half of CR LF: the next piece tells
        piece = bytes(pending[:size])
        del pending[:size]
        start = len(self.parts)
        position = 0
        for end in _LINE_END.finditer(piece):
            if self.failure is not None:
                break
            self._line_ended(piece[position : end.start()])
            position = end.end()
        if self.failure is None:
            self._line += piece[position:]
            if len(self._line) > self.limits.line_bytes:
                self._fail_line()
            elif final:
                if self._line:
                    self._line_ended(b"")
                self._dispatch()
        return "".join(self.parts[start:])

    def _line_ended(self, tail: bytes) -> None:
        if self._line:
            raw = bytes(self._line) + tail
            self._line.clear()
        else:
            raw = tail
        if len(raw) > self.limits.line_bytes:
            self._fail_line()
            return
        if not raw:
            self._dispatch()
            return
        name, _, value = raw.partition(b":")
        if name == b"data":
            self._data_size += len(value)
            if self._data_size > self.limits.line_bytes:
                self._fail_line()
                return
            # Lines end only at CR or LF, never inside a UTF-8 sequence: safe to decode.
            self._data.append(value.removeprefix(b" ").decode("utf-8", "replace"))

    def fail_line(self) -> str:
        """A line is past max_line_bytes, as whoever passes the stream on counted: read what
        was fed before it (whole lines keep their text), and stop there; the new text."""
        text = self.read() if self.failure is None else ""
        if self.failure is None:
            self._fail_line()
        return text

    def _fail_line(self) -> None:
        limit = self.limits.line_bytes
        self._stop(
            f"A line of the router's stream is longer than max_line_bytes ({limit:,} bytes): "
            "the answer was cut there."
        )

    def _stop(self, failure: str) -> None:
        self.failure = failure
        self._pending.clear()
        self._line.clear()
        self._data.clear()
        self._data_size = 0

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = "\n".join(self._data)
        self._data.clear()
        self._data_size = 0
        if data == "[DONE]":
            self.done = True
            return
        chunk = read_chunk(data)
        if chunk is None:
            self.skipped += 1
            return
        if chunk.error:
            self.error = error_text(chunk.error)
        for piece in (chunk.reasoning, chunk.text):
            if piece:
                self._size += len(piece.encode("utf-8", "replace"))
        if self._size > self.limits.answer_bytes:
            if chunk.text:  # what fits is kept
                room = len(chunk.text.encode("utf-8", "replace")) - (
                    self._size - self.limits.answer_bytes
                )
                if room > 0:
                    self.parts.append(
                        chunk.text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
                    )
            limit = self.limits.answer_bytes
            self._stop(
                f"The answer is longer than max_answer_bytes ({limit:,} bytes): the rest was "
                "not passed on."
            )
            return
        if chunk.text:
            self.parts.append(chunk.text)
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason


def _digest(messages: Sequence[dict[str, str]]) -> bytes:
    pairs = [(m["role"], m["content"].strip()) for m in messages]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).digest()


class ProxyHistory:
    """Starts each request's turn in the history, in a conversation of its own or the one it
    continues, and remembers each answered conversation so that the next request can go on."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._conversations: OrderedDict[bytes, int] = OrderedDict()

    def begin(self, request: ProxyRequest) -> TurnJournal:
        """Commit the question (and, for a new conversation, the messages it came with) before
        anything is sent; the journal then takes the answer."""
        messages = request.messages
        system_count = 0
        while system_count < len(messages) and messages[system_count]["role"] == "system":
            system_count += 1
        system = "\n\n".join(m["content"] for m in messages[:system_count])
        rest = messages[system_count:]
        conversation_id = self._conversations.pop(_digest(messages[:-1]), None)
        journal = TurnJournal(
            self.store, conversation_id=conversation_id, model=request.model, system_prompt=system
        )
        if rest and rest[-1]["role"] == "user":
            journal.begin(rest[-1]["content"], earlier=rest[:-1])
        else:
            journal.begin(None, earlier=rest or messages[-1:])
        return journal

    def answered(self, request: ProxyRequest, journal: TurnJournal, text: str) -> None:
        """A complete answer: a request that carries this conversation on continues it."""
        if journal.conversation_id is None:
            return
        exchange = [*request.messages, {"role": "assistant", "content": text}]
        self._conversations[_digest(exchange)] = journal.conversation_id
        while len(self._conversations) > _REMEMBERED:
            self._conversations.popitem(last=False)
