"""The idle deadline of a body's reads, on bodies made here piece by piece with set pauses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest

from xrouter_tui.api.reading import StalledRead, read_document, sse_data

IDLE = 0.3


class _Paced(httpx.AsyncByteStream):
    """Yields each piece after its pause (seconds), as a router sends them."""

    def __init__(self, pieces: Sequence[tuple[float, bytes]]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for pause, piece in self.pieces:
            if pause:
                await asyncio.sleep(pause)
            yield piece


def _response(pieces: Sequence[tuple[float, bytes]]) -> httpx.Response:
    return httpx.Response(200, stream=_Paced(pieces))


async def _events(pieces: Sequence[tuple[float, bytes]]) -> list[str]:
    return [data async for data in sse_data(_response(pieces), line_limit=1000, idle=IDLE)]


async def test_lines_that_keep_coming_outlast_the_idle_limit():
    # Fifteen lines 0.05 s apart: 0.75 s in all, past the limit more than twice over.
    pieces = [(0.05, f"data: {n}\n\n".encode()) for n in range(15)]
    assert await _events(pieces) == [str(n) for n in range(15)]


async def test_a_stream_that_stops_stalls_about_the_idle_limit_after_its_last_line():
    pieces = [(0, b"data: 1\n\n"), (0.1, b"data: 2\n\n"), (5, b"data: 3\n\n")]
    seen: list[str] = []
    started = time.monotonic()
    with pytest.raises(StalledRead):
        async for data in sse_data(_response(pieces), line_limit=1000, idle=IDLE):
            seen.append(data)
    assert seen == ["1", "2"]
    assert 0.1 + IDLE * 0.9 <= time.monotonic() - started < 0.1 + IDLE + 1.0


async def test_a_drip_without_a_whole_line_stalls_though_bytes_keep_coming():
    pieces = [(0, b"data: 1\n\n"), *[(0.05, b"x") for _ in range(60)]]
    with pytest.raises(StalledRead):
        await _events(pieces)


async def test_a_reader_busy_past_the_limit_still_gets_what_had_arrived():
    # The consumer holds the stream longer than the limit between two reads; the lines that
    # arrived meanwhile are read at once, as a timeout that starts expired lets them be.
    pieces = [(0, b"data: 1\n\ndata: 2\n\n"), (0, b"data: 3\n\n")]
    seen: list[str] = []
    async for data in sse_data(_response(pieces), line_limit=1000, idle=IDLE):
        seen.append(data)
        await asyncio.sleep(IDLE * 1.5)
    assert seen == ["1", "2", "3"]


async def test_cancelling_a_read_from_outside_is_a_cancellation_not_a_stall():
    pieces = [(0, b"data: 1\n\n"), (5, b"data: 2\n\n")]
    task = asyncio.create_task(_events(pieces))
    await asyncio.sleep(IDLE / 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stall_leaves_no_timer_behind():
    loop = asyncio.get_running_loop()
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    with pytest.raises(StalledRead):
        await _events([(0, b"data: 1\n\n"), (5, b"data: 2\n\n")])
    await _events([(0, b"data: 1\n\n")])
    live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert len(live) <= before


async def test_a_document_that_keeps_coming_is_read_whole_and_one_that_drips_stalls():
    steady = [(0.05, b"x" * 20_000) for _ in range(8)]
    body = await read_document(_response(steady), limit=10**6, idle=IDLE, setting="s")
    assert len(body) == 160_000
    drip = [(0.05, b"x") for _ in range(60)]
    with pytest.raises(StalledRead):
        await read_document(_response(drip), limit=10**6, idle=IDLE, setting="s")
