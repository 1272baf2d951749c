"""`xrouter-tui proxy`, the real program, in front of a hostile local router and hostile
clients: a line longer than any read slice, answers past the limits, malformed receipts,
escapes meant for the proxy's log, oversized request bodies, clients that leave, and stopping
it with SIGTERM. Asserted as a client, and the user at the proxy's terminal, would notice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests import test_proxy
from tests.test_ask_money import write_config
from tests.test_proxy import PROMPT, QUESTION, SONNET, TOKEN, Proxy, stored, wait_until
from xrouter_tui.api import Limits
from xrouter_tui.devserver.hostile import HOSTILE_MODEL_ID, HOSTILE_TEXT, markers_in
from xrouter_tui.devserver.reply import make_reply
from xrouter_tui.devserver.state import RECEIPT_FAULTS
from xrouter_tui.proxy import StreamTap

LONG_LINE = 100_000  # characters in one data line: longer than the proxy's 64 KiB read slice
# The dev server counts bytes of UTF-8, and its reply has a few multi-byte characters.
LONG_LINE_BYTES = 110_000
# SIGTERM must stop the proxy within this long (the promise).
STOP_SECONDS = 5
# A header value a client can take as it is: printable ASCII.
PRINTABLE = set(range(0x20, 0x7F))

# test_proxy's fixtures: a wallet key, the local router, and the real proxy in front of it.
key = test_proxy.key
router = test_proxy.router
start = test_proxy.start
proxy = test_proxy.proxy


def post(proxy: Proxy, body: dict, **options) -> httpx.Response:
    with proxy.http(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        return http.post("/chat/completions", json=body, **options)


def stream_events(proxy: Proxy, body: dict) -> tuple[httpx.Response, list[str]]:
    """A streamed answer read as raw server-sent events: the response and each event's data."""
    with (
        proxy.http(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        http.stream("POST", "/chat/completions", json={**body, "stream": True}) as response,
    ):
        raw = response.read().decode("utf-8")
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        data = [
            line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
        ]
        if data:
            events.append("\n".join(data))
    return response, events


def streamed_text(events: list[str]) -> str:
    pieces = []
    for data in events:
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        for choice in chunk.get("choices", []):
            pieces.append(choice.get("delta", {}).get("content") or "")
    return "".join(pieces)


def answers():
    return [m for ms in stored()[1].values() for m in ms if m.role == "assistant"]


def settled_answer(status: str):
    """The one saved answer, once it has `status`."""

    def found():
        saved = answers()
        return saved and saved[-1].status == status and saved[-1]

    wait_until(found, f"the answer saved as {status}")
    return found()


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command's name: fields 14 and 15 of proc(5), utime and stime, in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_headers_clean(response: httpx.Response) -> None:
    for name, value in response.headers.raw:
        assert set(value) <= PRINTABLE, (name, value)
    assert "x-injected" not in response.headers


# -- the spin, and stopping ------------------------------------------------------------------------


def test_a_100_000_character_line_streams_through_then_the_proxy_idles_and_sigterm_stops_it(
    start, router
):
    router.config.reply_deltas = 1
    router.config.reply_bytes = LONG_LINE_BYTES
    proxy = start()
    whole = make_reply(PROMPT, SONNET, 1, LONG_LINE_BYTES).text
    assert len(whole) >= LONG_LINE

    response, events = stream_events(proxy, {"model": SONNET, "messages": QUESTION})
    assert response.status_code == 200
    assert streamed_text(events) == whole
    assert events[-1] == "[DONE]"
    assert settled_answer("complete").content == whole

    # Idle: a spinning proxy burns a whole second of CPU in a second; an idle one next to none.
    before, since = cpu_seconds(proxy.process.pid), time.monotonic()
    time.sleep(1.0)
    used, elapsed = cpu_seconds(proxy.process.pid) - before, time.monotonic() - since
    assert used < 0.1 * elapsed, f"{used:.2f} s of CPU in {elapsed:.2f} s"

    proxy.process.send_signal(signal.SIGTERM)
    try:
        proxy.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the proxy still runs {STOP_SECONDS} s after SIGTERM")
    assert proxy.process.returncode == 0
    assert "Traceback" not in proxy.stop()


def test_sigterm_mid_stream_stops_the_proxy_and_keeps_the_partial_answer_as_stopped(start, router):
    router.config.reply_deltas = 2000
    router.config.delta_delay = 0.01  # 20 s in all: it cannot end on its own meanwhile
    proxy = start()
    client = proxy.client()
    stream = client.chat.completions.create(model=SONNET, messages=QUESTION, stream=True)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
        if len(received) == 10:
            break
    # The client keeps its stream open: the proxy must not wait for it.
    proxy.process.send_signal(signal.SIGTERM)
    try:
        proxy.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the proxy still runs {STOP_SECONDS} s after SIGTERM")
    stream.close()
    assert proxy.process.returncode == 0
    assert "Traceback" not in proxy.stop()

    [answer] = answers()
    assert answer.status == "stopped" and answer.error == "the proxy was stopped"
    whole = make_reply(PROMPT, SONNET, 2000).text
    assert answer.content.startswith("".join(received))
    assert whole.startswith(answer.content) and len(answer.content) < len(whole)
    [payment] = stored()[2]
    assert payment.status == "settled"  # paid and taken


def test_sigterm_while_a_request_waits_for_the_router_answers_it_503_and_stops(start, router):
    router.config.faults = {"stall-first-byte"}
    router.config.stall_seconds = 30  # paid, and then nothing for far longer than the test
    proxy = start()
    result: list[httpx.Response] = []
    with proxy.http(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        request = http.build_request(
            "POST", "/chat/completions", json={"model": SONNET, "messages": QUESTION}
        )
        # Sent on a thread of its own, so the test can stop the proxy while it waits.
        sender = threading.Thread(target=lambda: result.append(http.send(request)), daemon=True)
        sender.start()
        wait_until(lambda: router.state.paid_requests == 1, "the paid request to reach the router")
        proxy.process.send_signal(signal.SIGTERM)
        try:
            proxy.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the proxy still runs {STOP_SECONDS} s after SIGTERM")
        sender.join(STOP_SECONDS)
    assert proxy.process.returncode == 0
    assert "Traceback" not in proxy.stop()
    [refused] = result
    assert refused.status_code == 503
    assert refused.headers["x-should-retry"] == "false"
    assert "The proxy was stopped" in refused.json()["error"]["message"]
    [answer] = answers()
    assert answer.status == "stopped" and answer.error == "the proxy was stopped"


def test_a_stream_longer_than_the_history_reads_in_one_go_is_saved_whole(proxy, router):
    router.config.reply_deltas = 60
    router.config.delta_delay = 0.02  # over a second: read for the history while it streams
    _, events = stream_events(proxy, {"model": SONNET, "messages": QUESTION})
    whole = make_reply(PROMPT, SONNET, 60).text
    assert streamed_text(events) == whole
    assert settled_answer("complete").content == whole


# -- limits ----------------------------------------------------------------------------------------


def test_a_line_past_max_line_bytes_fails_the_turn_with_its_partial_text(
    start, router, isolated_environment
):
    write_config(isolated_environment, "max_line_bytes = 65536\n")
    router.config.faults = {"escape-answer"}  # short pieces first, then the long line
    router.config.reply_deltas = 1
    router.config.reply_bytes = LONG_LINE_BYTES
    proxy = start()
    response, events = stream_events(proxy, {"model": SONNET, "messages": QUESTION})
    assert response.status_code == 200
    error = json.loads(events[-1])["error"]  # the client is told, in OpenAI's shape
    assert "max_line_bytes (65,536 bytes)" in error["message"]
    assert error["type"] == "upstream_error"

    answer = settled_answer("failed")
    assert answer.content == HOSTILE_TEXT  # what came before the long line, as it came
    assert "max_line_bytes" in answer.error and "was paid" in answer.error
    [payment] = stored()[2]
    assert payment.status == "settled"
    log = proxy.stop()
    assert "max_line_bytes" in log and not markers_in(log)


def test_a_stream_that_drips_without_a_whole_line_ends_at_idle_timeout(
    start, router, isolated_environment
):
    write_config(isolated_environment, "idle_timeout = 1\n")
    router.config.faults = {"drip-stream"}
    router.config.drip_seconds = 0.2  # a byte every 0.2 s: always something, never a line
    proxy = start()
    response, events = stream_events(proxy, {"model": SONNET, "messages": QUESTION})
    assert response.status_code == 200
    error = json.loads(events[-1])["error"]
    assert "no whole line for 1 s" in error["message"] and "was paid" in error["message"]
    answer = settled_answer("failed")
    assert "no whole line" in answer.error
    assert stored()[2][0].status == "settled"


def test_a_stream_past_max_answer_bytes_keeps_what_fits_and_fails(
    start, router, isolated_environment
):
    write_config(isolated_environment, "max_answer_bytes = 20000\n")
    router.config.reply_deltas = 20
    router.config.reply_bytes = LONG_LINE_BYTES  # 20 pieces of about 5,500 bytes
    proxy = start()
    _, events = stream_events(proxy, {"model": SONNET, "messages": QUESTION})
    error = json.loads(events[-1])["error"]
    assert "max_answer_bytes (20,000 bytes)" in error["message"]
    whole = make_reply(PROMPT, SONNET, 20, LONG_LINE_BYTES).text
    answer = settled_answer("failed")
    assert answer.content == whole.encode()[:20_000].decode("utf-8", "ignore")
    assert "max_answer_bytes" in answer.error
    assert stored()[2][0].status == "settled"


def test_a_whole_answer_past_max_document_bytes_is_a_502_and_a_failed_turn(
    start, router, isolated_environment
):
    write_config(isolated_environment, "max_document_bytes = 50000\n")
    router.config.reply_deltas = 1
    router.config.reply_bytes = LONG_LINE_BYTES
    proxy = start()
    response = post(proxy, {"model": SONNET, "messages": QUESTION})
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "false"
    assert "max_document_bytes (50,000 bytes)" in response.json()["error"]["message"]
    answer = settled_answer("failed")
    assert "max_document_bytes" in answer.error
    assert stored()[2][0].status == "settled"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_request_body_past_proxy_max_request_bytes_is_a_413(
    start, router, isolated_environment, declared
):
    write_config(isolated_environment, "proxy_max_request_bytes = 10000\n")
    proxy = start()
    body = json.dumps(
        {"model": SONNET, "messages": [{"role": "user", "content": "x" * 200_000}]}
    ).encode()
    content = body if declared else (body[i : i + 4096] for i in range(0, len(body), 4096))
    with proxy.http(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        refused = http.post(
            "/chat/completions", content=content, headers={"Content-Type": "application/json"}
        )
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert "proxy_max_request_bytes (10,000 bytes)" in error["message"]
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    assert router.state.unpaid_requests == router.state.paid_requests == 0
    assert stored()[0] == []  # nothing stored
    # A request within the limit still goes through.
    assert post(proxy, {"model": SONNET, "messages": QUESTION}).status_code == 200


# -- receipts, headers and the log -----------------------------------------------------------------


@pytest.mark.parametrize("fault", RECEIPT_FAULTS)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_malformed_receipt_never_breaks_the_answer_or_a_header(proxy, router, fault, streamed):
    router.config.faults = {fault}
    whole = make_reply(PROMPT, SONNET, router.config.reply_deltas).text
    body = {"model": SONNET, "messages": QUESTION}
    if streamed:
        response, events = stream_events(proxy, body)
        assert streamed_text(events) == whole and events[-1] == "[DONE]"
    else:
        response = post(proxy, body)
        assert response.json()["choices"][0]["message"]["content"] == whole
    assert response.status_code == 200
    assert_headers_clean(response)
    assert "x-xrouter-transaction" not in response.headers  # not a transaction hash
    assert response.headers["x-xrouter-charged-usd"]  # the rest of the proxy's headers stay
    assert settled_answer("complete").content == whole
    [payment] = stored()[2]
    assert payment.status == "settled"  # paid: the receipt said so, however malformed its tx
    log = proxy.stop()
    assert not markers_in(log) and "\u2028" not in log
    assert "tx (malformed)" in log


def test_router_and_client_text_reach_the_log_without_escapes(proxy, router):
    router.config.faults = {"escape-error"}
    refused = post(proxy, {"model": HOSTILE_MODEL_ID, "messages": QUESTION})
    assert refused.status_code >= 400
    log = proxy.stop()
    assert "failed" in log and "hostile/safe-model" in log
    assert not markers_in(log)


# -- a client that never got its answer ------------------------------------------------------------


def test_a_client_that_left_before_a_whole_answer_is_not_recorded_complete(proxy, router):
    router.config.faults = {"stall-first-byte"}
    router.config.stall_seconds = 1.5  # the client gives up first
    with pytest.raises(httpx.ReadTimeout):
        post(proxy, {"model": SONNET, "messages": QUESTION}, timeout=0.5)
    answer = settled_answer("stopped")
    assert answer.error == "the client closed the connection"
    assert answer.content == make_reply(PROMPT, SONNET, router.config.reply_deltas).text
    assert stored()[2][0].status == "settled"


# -- the tap, on its own ---------------------------------------------------------------------------


def event(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def test_the_tap_reads_a_line_longer_than_its_slice_in_slices_that_each_move_on():
    long = "x" * LONG_LINE
    tap = StreamTap()
    tap.feed(event("start ") + event(long) + b"data: [DONE]\n\n")
    reads = 0
    while tap.unread > 64 * 1024:
        before = tap.unread
        tap.read(limit=64 * 1024)
        assert tap.unread < before  # never the same read again
        reads += 1
    tap.read(final=True)
    assert reads >= 1 and tap.text == "start " + long and tap.complete


@pytest.mark.parametrize(
    "stream",
    [
        event("start ") + b'data: {"choices": [' + b" " * 5000,  # a line that never ends
        event("start ") + (b"data: " + b"x" * 100 + b"\n") * 100,  # one event, many data lines
    ],
    ids=["line", "event"],
)
def test_the_tap_stops_past_max_line_bytes_and_keeps_the_text_before(stream):
    tap = StreamTap(Limits(line_bytes=4096))
    for offset in range(0, len(stream), 1000):
        tap.feed(stream[offset : offset + 1000])
        tap.read()
    tap.read(final=True)
    assert tap.text == "start " and not tap.complete
    assert "max_line_bytes (4,096 bytes)" in (tap.failure or "")
    assert tap.unread == 0
