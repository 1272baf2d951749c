"""Reading a router's response bodies within a size limit and a deadline that measures progress.

A router may send a body of gigabytes, a line that never ends, or one byte every few seconds:
httpx's read timeout restarts on every byte, so on its own it waits forever for a drip. Here a
whole document must keep arriving (the deadline moves only after a real amount of it came), and a
stream's deadline moves only when a complete line arrives (a `: keep-alive` comment counts, as
routers send them while a model thinks).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only named: httpx loads with the client, not with the limits the chat reads at start.
    import httpx

    from xrouter_tui.config import Settings

__all__ = [
    "Limits",
    "StalledRead",
    "Timeouts",
    "TooLarge",
    "read_capped",
    "read_document",
    "sse_data",
]

# A document's deadline moves on after this much of it arrived: a drip of a byte a second
# would take hours to move it once.
_PROGRESS_BYTES = 16 * 1024
_NEWLINE = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Limits:
    """The most the client takes from a router, in bytes (the settings of the same names)."""

    answer_bytes: int = 4_000_000
    line_bytes: int = 1_000_000
    document_bytes: int = 8_000_000
    error_bytes: int = 65_536

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the user set."""
        return cls(
            answer_bytes=settings.max_answer_bytes,
            line_bytes=settings.max_line_bytes,
            document_bytes=settings.max_document_bytes,
            error_bytes=settings.max_error_bytes,
        )


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait: for a connection (and for a stalled write), for the response headers
    (however slowly they drip), and for progress in a body (a whole line of a stream)."""

    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 60.0

    @classmethod
    def of(cls, settings: Settings) -> Timeouts:
        """The timeouts the user set."""
        return cls(settings.connect_timeout, settings.first_byte_timeout, settings.idle_timeout)


class TooLarge(Exception):
    """A body or a line is past its limit; `setting` names the limit, `limit` its value."""

    def __init__(self, setting: str, limit: int) -> None:
        super().__init__(f"{setting} ({limit:,} bytes)")
        self.setting = setting
        self.limit = limit


class StalledRead(Exception):
    """Nothing that counts as progress arrived within the idle limit."""


class _Deadline:
    """The idle limit of one body's reads: each read must end by `idle` seconds after the last
    progress (`restart`), else StalledRead.

    One timer serves the whole body and is moved on only when it comes due early. An
    `asyncio.timeout_at` around each read made and cancelled a timer per read: about 3.5 µs for
    every delta of a fast stream, on the event loop that also draws the chat's frames and takes
    its keys (a key typed during a full-speed answer was shown some 3 ms later at the median).
    """

    def __init__(self, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = idle
        self._at = self._loop.time() + idle
        # The task waiting in a read, and whether this deadline cancelled it.
        self._reader: asyncio.Task[object] | None = None
        self._fired = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self._at, self._due)

    def restart(self) -> None:
        """Progress: the idle time counts from now."""
        self._at = self._loop.time() + self._idle
        if self._timer is None:
            self._timer = self._loop.call_at(self._at, self._due)

    async def read(self, chunks: AsyncIterator[bytes]) -> bytes:
        """The next chunk (StopAsyncIteration at the end); StalledRead past the deadline."""
        if self._timer is None:
            # It came due while no read waited: armed again, already due, it fails a read that
            # must wait and lets one that need not go on, as a timeout that starts expired does.
            self._timer = self._loop.call_at(self._at, self._due)
        task = self._reader = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        try:
            return await anext(chunks)
        except asyncio.CancelledError:
            # Only this deadline's own cancellation is a stall; anyone else's goes on.
            if self._fired:
                self._fired = False
                if task.uncancel() <= cancelling:
                    raise StalledRead from None
            raise
        finally:
            self._reader = None

    def close(self) -> None:
        """No more reads: the timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        if self._loop.time() < self._at:
            self._timer = self._loop.call_at(self._at, self._due)
        elif self._reader is not None:
            self._fired = True
            self._reader.cancel()


async def read_document(
    response: httpx.Response, *, limit: int, idle: float, setting: str
) -> bytes:
    """The whole body; TooLarge past `limit`, StalledRead when it stops coming."""
    body = await _read(response, limit=limit, idle=idle)
    if body is None:
        raise TooLarge(setting, limit)
    return body


async def read_capped(response: httpx.Response, *, limit: int, idle: float) -> bytes:
    """At most `limit` bytes of the body (an error's: the rest is not worth reading), or what
    came before it stalled; never raises for size or time."""
    try:
        body = await _read(response, limit=limit, idle=idle, keep_head=True)
    except StalledRead:
        return b""
    return body or b""


async def _read(
    response: httpx.Response, *, limit: int, idle: float, keep_head: bool = False
) -> bytes | None:
    """The body, or None past `limit` (its first `limit` bytes with `keep_head`)."""
    parts: list[bytes] = []
    size = 0
    counted = 0
    chunks = response.aiter_bytes()
    deadline = _Deadline(idle)
    try:
        while True:
            try:
                chunk = await deadline.read(chunks)
            except StopAsyncIteration:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                if not keep_head:
                    return None
                parts.append(chunk[: len(chunk) - (size - limit)])
                return b"".join(parts)
            parts.append(chunk)
            if size - counted >= _PROGRESS_BYTES:
                counted = size
                deadline.restart()
    finally:
        deadline.close()
        await chunks.aclose()


async def sse_data(response: httpx.Response, *, line_limit: int, idle: float) -> AsyncIterator[str]:
    """The data of each server-sent event, as it completes.

    Lines end with CR LF, LF or CR (the SSE spec); one longer than `line_limit` raises
    TooLarge("max_line_bytes"), and so does one event whose data lines add up to more. The
    deadline restarts only when a whole line arrived; past it, StalledRead.
    """
    buffer = bytearray()
    scanned = 0  # the buffer before this holds no line end: a dripped line is scanned once
    data: list[str] = []
    data_size = 0
    chunks = response.aiter_bytes()
    deadline = _Deadline(idle)
    ended = False
    try:
        while not ended:
            try:
                buffer += await deadline.read(chunks)
            except StopAsyncIteration:
                ended = True
            start = 0
            for newline in _NEWLINE.finditer(buffer, scanned):
                if newline.group() == b"\r" and newline.end() == len(buffer) and not ended:
                    break  # perhaps the first half of CR LF: the next read tells
                line = bytes(buffer[start : newline.start()])
                start = newline.end()
                if not line:
                    if data:
                        yield "\n".join(data)
                        data.clear()
                        data_size = 0
                    continue
                name, _, value = line.partition(b":")
                if name == b"data":
                    data_size += len(value)
                    if data_size > line_limit:
                        raise TooLarge("max_line_bytes", line_limit)
                    # Lines end only at CR or LF, never inside a UTF-8 sequence: safe to decode.
                    data.append(value.removeprefix(b" ").decode("utf-8", "replace"))
                # Comments and other fields (event, id, retry) say nothing a chat needs.
            if start:
                del buffer[:start]
                deadline.restart()
            if len(buffer) > line_limit:
                raise TooLarge("max_line_bytes", line_limit)
            scanned = max(len(buffer) - 1, 0)  # a held CR is looked at again
        if buffer.startswith(b"data:"):
            data.append(bytes(buffer[5:]).removeprefix(b" ").decode("utf-8", "replace"))
        if data:
            # A last event without its blank line: a broken router's, still worth reading.
            yield "\n".join(data)
    finally:
        deadline.close()
        await chunks.aclose()
