"""The dev server's answer to a paid chat request, as one JSON completion or as an SSE stream.
The stream-level faults (framing, mid-stream errors, drops and stalls) are applied here, and the
hostile ones: streams too big, too deep or too slow, and a response head dripped a line at a time.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from xrouter_tui.devserver import hostile
from xrouter_tui.devserver.catalog import PriceEstimate
from xrouter_tui.devserver.hostile import HOSTILE_TEXT
from xrouter_tui.devserver.reply import Reply
from xrouter_tui.devserver.state import DevServerConfig, DevServerState
from xrouter_tui.serving import COMPLETED, LEFT, WatchedStream

if TYPE_CHECKING:
    from xrouter_tui.devserver.app import ChatRequest

__all__ = [
    "Answer",
    "DrippedHead",
    "DroppedConnection",
    "EventStream",
    "frame",
    "hostile_stream",
    "padded_response",
    "stream_events",
]

# Piece sizes for the `split` fault; uneven so that boundaries land everywhere in lines and
# multi-byte characters over a stream.
_SPLIT_PATTERN = (1, 4, 2, 5, 3, 1, 2)


class DroppedConnection(Exception):
    """Raised inside a stream so that uvicorn aborts the connection mid-body."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply as sent: cut to max_tokens (one delta is one completion token)."""

    id: str
    created: int
    model: str
    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    finish_reason: str
    prompt_tokens: int

    @classmethod
    def build(cls, chat: ChatRequest, reply: Reply, price: PriceEstimate) -> Answer:
        reasoning = reply.reasoning[: chat.max_tokens]
        content = reply.content[: chat.max_tokens - len(reasoning)]
        cut = len(reasoning) + len(content) < len(reply.reasoning) + len(reply.content)
        return cls(
            id=f"gen-{int(time.time())}-{secrets.token_hex(10)}",
            created=int(time.time()),
            model=chat.model.id,
            reasoning=reasoning,
            content=content,
            finish_reason="length" if cut else "stop",
            prompt_tokens=price.input_tokens,
        )

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.reasoning) + len(self.content)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def completion(self, *, top_level: bool = False) -> dict[str, Any]:
        if top_level:
            # The shape some of X-Router's documentation examples read.
            return {"id": self.id, "model": self.model, "content": "".join(self.content)}
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning"] = "".join(self.reasoning)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return _data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        )

    def usage_chunk(self) -> str:
        return _data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage,
            }
        )


def _data(document: Mapping[str, Any]) -> str:
    # Raw UTF-8, not \u escapes: clients must cope with multi-byte characters split across reads.
    return "data: " + json.dumps(document, ensure_ascii=False, separators=(",", ":"))


async def stream_events(
    answer: Answer, config: DevServerConfig, faults: frozenset[str]
) -> AsyncGenerator[str, None]:
    """The stream's events, without framing; mid-stream faults strike after `fault_after`."""
    delay = config.delta_delay
    role_sent = False
    first = True

    def delta(key: str, piece: str) -> dict[str, str]:
        nonlocal role_sent
        if role_sent:
            return {key: piece}
        role_sent = True
        return {"role": "assistant", key: piece}

    for piece in answer.reasoning:
        if delay and not first:
            await asyncio.sleep(delay)
        first = False
        yield answer.chunk(delta("reasoning", piece))

    # A reply shorter than fault_after still shows the fault, just before the finish.
    fault_at = min(config.fault_after, len(answer.content))
    for index in range(len(answer.content) + 1):
        if index == fault_at:
            if "bad-json" in faults:
                yield 'data: {"choices": [oops'
            if "midstream-error" in faults:
                yield _data(
                    {
                        "error": {
                            "message": "The upstream model is overloaded",
                            "type": "upstream_error",
                            "code": 502,
                        }
                    }
                )
                return
            if "escape-midstream-error" in faults:
                yield _data(
                    {"error": {"message": HOSTILE_TEXT, "type": "upstream_error", "code": 502}}
                )
                return
            if "truncate" in faults:
                return
            if "disconnect" in faults:
                raise DroppedConnection
            if "stall-mid-stream" in faults:
                await asyncio.sleep(config.stall_seconds)
        if index == len(answer.content):
            break
        if delay and not first:
            await asyncio.sleep(delay)
        first = False
        yield answer.chunk(delta("content", answer.content[index]))

    yield answer.chunk({"role": "assistant"} if not role_sent else {}, answer.finish_reason)
    yield answer.usage_chunk()
    yield "data: [DONE]"


async def frame(
    events: AsyncGenerator[str, None], faults: frozenset[str]
) -> AsyncGenerator[bytes, None]:
    """Events as SSE bytes, with the framing faults applied."""
    newline = "\r\n" if "crlf" in faults else "\n"
    comment = f": keep-alive{newline}{newline}" if "comments" in faults else ""
    split = "split" in faults
    position = 0
    try:
        async for event in events:
            data = (comment + event.replace("\n", newline) + newline + newline).encode("utf-8")
            if not split:
                yield data
                continue
            offset = 0
            while offset < len(data):
                size = _SPLIT_PATTERN[position % len(_SPLIT_PATTERN)]
                position += 1
                yield data[offset : offset + size]
                offset += size
                # Each piece is its own HTTP chunk, which the client reads as its own piece of
                # body however TCP coalesces them; yielding to the loop sends it right away.
                await asyncio.sleep(0)
    finally:
        await events.aclose()


class EventStream(WatchedStream):
    """An SSE response that notices a client leaving mid-stream and counts how streams end."""

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        state: DevServerState,
        *,
        delivered: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            chunks,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers},
            on_end=self._count,
        )
        self._state = state
        # Told when the stream went out to its end: the answer was delivered.
        self._delivered = delivered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._state.count("open_streams")
        try:
            await super().__call__(scope, receive, send)
        except DroppedConnection:
            self._state.count("dropped_streams")
            raise
        finally:
            self._state.count("open_streams", -1)

    def _count(self, how: str) -> None:
        if how == COMPLETED:
            self._state.count("completed_streams")
            if self._delivered is not None:
                self._delivered()
        elif how == LEFT:
            self._state.count("disconnects")


def hostile_stream(
    answer: Answer, config: DevServerConfig, faults: frozenset[str]
) -> AsyncGenerator[bytes, None] | None:
    """The body of a hostile stream fault, streamed whether or not the request asked; None
    when no such fault is on. Each is made as it is sent: memory stays one piece, whatever
    `huge_bytes` says.
    """
    if "endless-line" in faults:
        return _pieces(hostile.endless_line(config.huge_bytes))
    if "drip-stream" in faults:
        return _dripped(hostile.dripped_line(), config.drip_seconds)
    if "nested-stream" in faults:
        return frame(_nested_events(), faults)
    if "huge-answer" in faults:
        return frame(_huge_events(answer, config.huge_bytes), faults)
    return None


def padded_response(
    document: Mapping[str, Any],
    size: int,
    *,
    whole: bool,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> WatchedStream:
    """`document` as a JSON response made huge by `hostile.padded_json`, sent a piece at a time
    (chunked: no Content-Length lets a client refuse it before reading).
    """
    return WatchedStream(
        _pieces(hostile.padded_json(document, size, whole=whole)),
        headers={"Content-Type": "application/json", **(headers or {})},
        status=status,
    )


async def _pieces(pieces: Iterable[bytes]) -> AsyncGenerator[bytes, None]:
    for piece in pieces:
        yield piece


async def _dripped(data: bytes, seconds: float) -> AsyncGenerator[bytes, None]:
    for index in range(len(data)):
        if index:
            await asyncio.sleep(seconds)
        yield data[index : index + 1]


async def _nested_events() -> AsyncGenerator[str, None]:
    yield "data: " + hostile.nested_json().decode("ascii")


async def _huge_events(answer: Answer, size: int) -> AsyncGenerator[str, None]:
    # Many short lines, each a valid delta: only a limit on the whole answer stops this one.
    delta: dict[str, str] = {"role": "assistant"}
    for piece in hostile.filler(size):
        yield answer.chunk({**delta, "content": piece})
        delta = {}
    yield answer.chunk({}, "stop")
    yield "data: [DONE]"


class DrippedHead:
    """A response whose head comes one line every `seconds` and never ends: the connection is
    dropped after the last line. ASGI sends a head in one piece, so the lines are written on the
    connection's transport, which the dev server's HTTP protocol puts in the scope.
    """

    def __init__(self, lines: Iterable[bytes], seconds: float) -> None:
        self.lines = lines
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get("extensions", {}).get(hostile.RAW_TRANSPORT)
        if transport is None:
            # Served by something else than the dev server's own protocol: no socket to drip on.
            response = PlainTextResponse("drip-headers needs the dev server's HTTP protocol", 501)
            await response(scope, receive, send)
            return
        left = asyncio.create_task(_disconnected(receive))
        try:
            for index, line in enumerate(self.lines):
                if index:
                    await asyncio.wait((left,), timeout=self.seconds)
                if left.done() or transport.is_closing():
                    break
                transport.write(line)
        finally:
            # Aborted, not closed: a close waits to flush to a client that may never read.
            transport.abort()
            # A request that returns without a response gets uvicorn's own 500, unless it has
            # seen the connection go: it has once receive() says so.
            await left


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
