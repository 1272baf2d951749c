"""The local router's hostile faults, as they go over loopback HTTP: what the server sends is the
subject here, so the client is plain httpx (or a socket, to see a head arrive line by line), not
the project's RouterClient. What clients make of these faults is tested elsewhere.

Sizes are counted a piece at a time as the bytes come, never held whole; drips are checked by
when each line or byte arrived, no sooner than the drip allows, never by how late.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account

from xrouter_tui.devserver import (
    FAULTS,
    DevServerConfig,
    RunningDevServer,
    add_arguments,
    config_from_args,
    start_dev_server,
)
from xrouter_tui.devserver.hostile import (
    DRIP_COUNT,
    NESTED_DEPTH,
    NESTED_HEADER_DEPTH,
    PIECE_BYTES,
    dripped_line,
)
from xrouter_tui.payments import (
    BASE_SEPOLIA,
    SignedPayment,
    SpendingPolicy,
    parse_challenge,
    sign_payment,
)

CHAT = "/v1/chat/completions"
MODELS = "/v1/models"
ACCOUNT = Account.create()
POLICY = SpendingPolicy(networks=(BASE_SEPOLIA,), max_per_request_usd=Decimal("5"))
# Small, for a fast suite, yet many pieces of PIECE_BYTES.
HUGE = 2_000_000
DRIP = 0.2
# asyncio may fire a timer up to its clock's resolution early; a drip is never more early.
EARLY = 0.005
# Long enough that only a broken server gets there; a socket read past it fails the test.
HANG = 30
NEW_FAULTS = (
    "nested-models",
    "nested-challenge",
    "nested-stream",
    "endless-line",
    "huge-answer",
    "huge-json-answer",
    "huge-models",
    "huge-error",
    "drip-headers",
    "drip-stream",
    "no-read",
)


def base_config() -> DevServerConfig:
    return DevServerConfig(reply_deltas=8, huge_bytes=HUGE, drip_seconds=DRIP)


@pytest.fixture(scope="module")
def running() -> Iterator[RunningDevServer]:
    with start_dev_server(base_config()) as server:
        yield server


@pytest.fixture
def dev(running: RunningDevServer) -> RunningDevServer:
    running.reset(base_config())
    return running


@pytest.fixture
def client(dev: RunningDevServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=HANG) as client:
        yield client


def body(stream: bool = True) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 64, "stream": stream}


def pay(client: httpx.Client, request: dict[str, Any]) -> SignedPayment:
    """A payment for `request`, signed by the project's own signer against a real 402."""
    response = client.post(CHAT, json=request)
    assert response.status_code == 402, response.text
    return sign_payment(ACCOUNT, POLICY.choose(parse_challenge(response.headers, response.content)))


def paid_headers(client: httpx.Client, request: dict[str, Any]) -> dict[str, str]:
    signed = pay(client, request)
    return {signed.header_name: signed.header_value}


def depth_of(text: str | bytes) -> int:
    """How deep the arrays at the start of `text` nest."""
    opening = "[" if isinstance(text, str) else b"["
    return len(text) - len(text.lstrip(opening))


def hollowed(pieces: Iterable[bytes], key: str) -> tuple[bytes, int, int]:
    """Read a JSON body a piece at a time, keeping all but the string under `key` (the
    filler, plain prose without quotes): the body with that string emptied, its length, and
    the body's size.
    """
    marker = f'"{key}":"'.encode()
    kept = bytearray()
    string = size = 0
    where = "before"
    for piece in pieces:
        size += len(piece)
        if where == "before":
            kept += piece
            at = kept.find(marker)
            if at < 0:
                continue
            piece = bytes(kept[at + len(marker) :])
            del kept[at + len(marker) :]
            where = "inside"
        if where == "inside":
            end = piece.find(b'"')
            if end < 0:
                string += len(piece)
                continue
            string += end
            piece = piece[end:]
            where = "after"
        kept += piece
    assert where == "after", f"no whole string under {key!r}"
    return bytes(kept), string, size


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def raw_lines(
    dev: RunningDevServer, request: bytes, count: int | None
) -> tuple[list[bytes], list[float]]:
    """The first `count` lines of the answer to `request` (all, to the end, if None), each with
    how long after the request was sent it arrived.
    """
    url = httpx.URL(dev.url)
    lines: list[bytes] = []
    times: list[float] = []
    with socket.create_connection((url.host, url.port), timeout=HANG) as sock:
        reader = sock.makefile("rb")
        sent = time.monotonic()
        sock.sendall(request)
        while count is None or len(lines) < count:
            line = reader.readline()
            if not line:
                break
            lines.append(line)
            times.append(time.monotonic() - sent)
    return lines, times


def raw_request(method: str, path: str, headers: dict[str, str], content: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(content)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content


# The configuration.


def test_the_new_faults_are_listed_with_a_description() -> None:
    for name in NEW_FAULTS:
        assert FAULTS[name] and "\n" not in FAULTS[name]


def test_huge_bytes_and_drip_seconds_are_settings_and_options() -> None:
    config = DevServerConfig()
    assert config.huge_bytes == 16 * 1024 * 1024 and config.drip_seconds == 2.0
    for name, bad in (("huge_bytes", -1), ("drip_seconds", -0.5), ("drip_seconds", math.nan)):
        with pytest.raises(ValueError, match=name):
            DevServerConfig(**{name: bad})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--huge-bytes", "1234", "--drip-seconds", "0.5"])
    config = config_from_args(args)
    assert (config.huge_bytes, config.drip_seconds) == (1234, 0.5)
    defaults = config_from_args(parser.parse_args([]))
    assert (defaults.huge_bytes, defaults.drip_seconds) == (16 * 1024 * 1024, 2.0)
    for option in ("--huge-bytes", "--drip-seconds"):
        with pytest.raises(SystemExit):
            parser.parse_args([option, "-1"])


# Nested JSON.


def test_nested_models_is_arrays_nested_past_any_stack(dev, client) -> None:
    dev.config.faults = {"nested-models"}
    response = client.get(MODELS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert depth_of(response.content) == NESTED_DEPTH
    assert response.content == b"[" * NESTED_DEPTH + b"]" * NESTED_DEPTH


def test_nested_challenge_v1_is_a_nested_402_body(dev, client) -> None:
    dev.config.faults = {"nested-challenge"}
    response = client.post(CHAT, json=body())
    assert response.status_code == 402
    assert depth_of(response.content) == NESTED_DEPTH
    assert dev.state.unpaid_requests == 1


def test_nested_challenge_v2_is_a_nested_payment_required_header(dev, client) -> None:
    dev.config.x402_version = 2
    dev.config.faults = {"nested-challenge"}
    response = client.post(CHAT, json=body())
    assert response.status_code == 402
    assert response.json() == {}  # the body looks like any v2 challenge's
    assert depth_of(base64.b64decode(response.headers["payment-required"])) == NESTED_HEADER_DEPTH


def test_nested_stream_is_one_nested_data_line_after_payment(dev, client) -> None:
    request = body()
    headers = paid_headers(client, request)
    dev.config.faults = {"nested-stream"}
    with client.stream("POST", CHAT, json=request, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "x-payment-response" in response.headers
        lines = [line for line in response.iter_lines() if line]
    (line,) = lines
    assert line.startswith("data: ")
    assert depth_of(line.removeprefix("data: ")) == NESTED_DEPTH
    assert len(dev.state.payments) == 1


# Huge bodies, counted as they come.


def test_endless_line_is_huge_bytes_without_a_line_end(dev, client) -> None:
    request = body()
    headers = paid_headers(client, request)
    dev.config.faults = {"endless-line"}
    size = 0
    start = b""
    with client.stream("POST", CHAT, json=request, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for piece in response.iter_raw():
            assert b"\n" not in piece and b"\r" not in piece
            if len(start) < 6:
                start += piece[:6]
            size += len(piece)
    assert start.startswith(b"data: ")
    assert size == len(b"data: ") + HUGE
    assert len(dev.state.payments) == 1


def test_huge_answer_is_short_valid_deltas_totalling_huge_bytes(dev, client) -> None:
    request = body()
    headers = paid_headers(client, request)
    dev.config.faults = {"huge-answer"}
    text = lines = longest = 0
    last = finish = None
    with client.stream("POST", CHAT, json=request, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                continue
            longest = max(longest, len(line))
            last = line.removeprefix("data: ")
            if last == "[DONE]":
                continue
            lines += 1
            choice = json.loads(last)["choices"][0]
            text += len(choice["delta"].get("content", ""))
            finish = choice["finish_reason"] or finish
    assert text == HUGE
    assert lines > HUGE // PIECE_BYTES  # many chunks ...
    assert longest < 2 * PIECE_BYTES  # ... each far below any line limit
    assert (last, finish) == ("[DONE]", "stop")


@pytest.mark.parametrize("stream", [True, False])
def test_huge_json_answer_is_a_completion_of_huge_bytes_streamed_or_not(
    dev, client, stream
) -> None:
    request = body(stream=stream)
    headers = paid_headers(client, request)
    dev.config.faults = {"huge-json-answer"}
    with client.stream("POST", CHAT, json=request, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert "x-payment-response" in response.headers
        rest, content, _ = hollowed(response.iter_raw(), "content")
    document = json.loads(rest)
    assert document["object"] == "chat.completion"
    assert document["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert content == HUGE


def test_huge_models_is_a_valid_list_of_huge_bytes(dev, client) -> None:
    dev.config.faults = {"huge-models"}
    with client.stream("GET", MODELS) as response:
        assert response.status_code == 200
        rest, description, size = hollowed(response.iter_raw(), "description")
    assert size == HUGE
    document = json.loads(rest)
    assert document["total"] == len(document["models"]) > 1
    assert document["models"][0]["description"] == ""
    assert description > HUGE - 10_000  # the filler is nearly all of it


def test_huge_error_is_an_error_status_with_a_json_body_of_huge_bytes(dev, client) -> None:
    dev.config.faults = {"huge-error"}
    with client.stream("POST", CHAT, json=body()) as response:
        assert response.status_code == dev.config.error_status == 503
        rest, _, size = hollowed(response.iter_raw(), "detail")
    assert size == HUGE
    error = json.loads(rest)["error"]
    assert error["message"] == "The upstream provider is unavailable"
    assert dev.state.paid_requests == 0


@pytest.mark.parametrize(
    "fault", ["endless-line", "huge-answer", "huge-json-answer", "huge-models", "huge-error"]
)
def test_a_huge_body_costs_the_server_a_piece_not_the_whole(dev, client, fault) -> None:
    request = body()
    paid = fault not in ("huge-models", "huge-error")
    headers = paid_headers(client, request) if paid else {}
    dev.config.faults = {fault}
    size = 0
    # Server and client share this process: the peak covers both, and stays far below HUGE.
    tracemalloc.start()
    try:
        if fault == "huge-models":
            context = client.stream("GET", MODELS)
        else:
            context = client.stream("POST", CHAT, json=request, headers=headers)
        with context as response:
            for piece in response.iter_raw():
                size += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size >= HUGE
    assert peak < HUGE // 2


# Drips: a line or a byte no sooner than drip_seconds after the one before.


def test_drip_headers_on_models_sends_a_head_line_per_drip(dev) -> None:
    dev.config.faults = {"drip-headers"}
    lines, times = raw_lines(dev, raw_request("GET", MODELS, {}), count=5)
    assert lines[0] == b"HTTP/1.1 200 OK\r\n"
    assert lines[1].lower() == b"content-type: application/json\r\n"
    assert all(line.endswith(b"\r\n") and line != b"\r\n" for line in lines)  # a head, unended
    for index, arrived in enumerate(times):
        assert arrived >= index * DRIP - EARLY


def test_drip_headers_on_a_paid_request_after_the_payment(dev, client) -> None:
    request = body()
    headers = paid_headers(client, request)
    dev.config.faults = {"drip-headers"}
    content = json.dumps(request).encode()
    headers["Content-Type"] = "application/json"
    lines, times = raw_lines(dev, raw_request("POST", CHAT, headers, content), count=5)
    assert lines[0] == b"HTTP/1.1 200 OK\r\n"
    assert lines[1].lower() == b"content-type: text/event-stream\r\n"
    assert lines[2].lower().startswith(b"x-payment-response: ")
    assert b"\r\n" not in lines
    for index, arrived in enumerate(times):
        assert arrived >= index * DRIP - EARLY
    assert len(dev.state.payments) == 1


def test_a_dripped_head_ends_in_a_dropped_connection_never_a_blank_line(dev) -> None:
    dev.config.faults = {"drip-headers"}
    dev.config.drip_seconds = 0
    lines, _ = raw_lines(dev, raw_request("GET", MODELS, {}), count=None)
    assert len(lines) == DRIP_COUNT
    assert b"\r\n" not in lines and all(line.endswith(b"\r\n") for line in lines)


def test_drip_stream_sends_a_byte_per_drip_and_never_a_whole_line(dev, client) -> None:
    request = body()
    headers = paid_headers(client, request)
    dev.config.faults = {"drip-stream"}
    received = b""
    times: list[tuple[int, float]] = []
    sent = time.monotonic()
    with client.stream("POST", CHAT, json=request, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "x-payment-response" in response.headers
        for piece in response.iter_raw():
            received += piece
            # The last byte of this read came no sooner than its place in the drip allows.
            times.append((len(received) - 1, time.monotonic() - sent))
            if len(received) >= 4:
                break
    assert received == dripped_line()[: len(received)]
    assert b"\n" not in dripped_line() and dripped_line().startswith(b"data: ")
    for index, arrived in times:
        assert arrived >= index * DRIP - EARLY
    # Leaving stops the drip.
    assert wait_for(lambda: dev.state.disconnects == 1)


# A router that does not read.


def test_no_read_leaves_a_big_request_unread_so_the_write_stalls(dev) -> None:
    dev.config.faults = {"no-read"}
    # 20 MB: more than the two sockets' buffers hold, so the write has to wait for the router.
    content = b"x" * 20_000_000
    timeout = httpx.Timeout(HANG, write=0.5)
    with (
        httpx.Client(base_url=dev.url, timeout=timeout) as client,
        pytest.raises(httpx.WriteTimeout),
    ):
        client.post(CHAT, content=content, headers={"Content-Type": "application/json"})
    assert dev.state.unpaid_requests == dev.state.invalid_requests == 0
