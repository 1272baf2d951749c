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
from collections import OrderedDict
from collections.abc import Sequence

from xrouter_tui.api import Usage, error_text, read_chunk
from xrouter_tui.commands.journal import TurnJournal
from xrouter_tui.proxy.wire import ProxyRequest
from xrouter_tui.store import Store

__all__ = ["ProxyHistory", "StreamTap"]

# Conversations the proxy remembers how to continue (the most recent ones).
_REMEMBERED = 512


class StreamTap:
    """Reads an SSE chat stream from the bytes passed on: the answer's text, usage, finish."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._data: list[str] = []
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.done = False
        self.skipped = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def complete(self) -> bool:
        """The router said the answer is whole: `[DONE]` or a finish reason, and no error."""
        return self.error is None and (self.done or self.finish_reason is not None)

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk

    @property
    def unread(self) -> int:
        """Bytes fed and not read yet."""
        return len(self._pending)

    def read(self, *, final: bool = False, limit: int | None = None) -> str:
        """Read the complete lines fed so far (all of them when `final`; those within the first
        `limit` bytes, when given); the new text."""
        pending = self._pending
        if limit is not None and len(pending) > limit:
            cut = pending.rfind(b"\n", 0, limit) + 1
        else:
            cut = len(pending) if final else pending.rfind(b"\n") + 1
        if cut <= 0:
            return ""
        lines = bytes(pending[:cut]).splitlines()  # bytes: \r\n, \r or \n, nothing else
        del pending[:cut]
        start = len(self.parts)
        for raw in lines:
            if not raw:
                self._dispatch()
                continue
            line = raw.decode("utf-8", "replace")
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value[1:] if value.startswith(" ") else value)
        if final:
            self._dispatch()
        return "".join(self.parts[start:])

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = "\n".join(self._data)
        self._data.clear()
        if data == "[DONE]":
            self.done = True
            return
        chunk = read_chunk(data)
        if chunk is None:
            self.skipped += 1
            return
        if chunk.error:
            self.error = error_text(chunk.error)
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
