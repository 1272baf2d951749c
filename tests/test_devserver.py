"""The local X-Router: real HTTP on 127.0.0.1, paid with the client's own signing code."""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
    is_loopback,
    start_dev_server,
)
from xrouter_tui.devserver.catalog import MODELS, find_model, price_request
from xrouter_tui.devserver.reply import MAX_PIECE_CHARS, UNICODE_LINE, make_reply
from xrouter_tui.payments import (
    BASE_SEPOLIA,
    ChallengeError,
    SignedPayment,
    SpendingPolicy,
    parse_challenge,
    read_receipt,
    sign_payment,
    usd_to_atomic,
)

CHAT = "/v1/chat/completions"
ACCOUNT = Account.create()
POLICY = SpendingPolicy(networks=(BASE_SEPOLIA,), max_per_request_usd=Decimal("5"))
# Small replies keep the suite fast; the natural size is checked on its own.
DELTAS = 40


PROMPT = "How do I count words in Python?"


def body(prompt: str = PROMPT, **changes: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], "max_tokens": 256, **changes}


def stream_body(**changes: Any) -> dict[str, Any]:
    return body(stream=True, **changes)


def expected(deltas: int | None = DELTAS, prompt: str = PROMPT) -> str:
    return make_reply(prompt, deltas=deltas).text


@pytest.fixture(scope="module")
def running() -> Iterator[RunningDevServer]:
    with start_dev_server() as server:
        yield server


@pytest.fixture
def dev(running: RunningDevServer) -> RunningDevServer:
    # The test before may have left a stream ending: its end must not land in this test's counts.
    assert wait_for(lambda: running.state.open_streams == 0)
    running.reset(DevServerConfig(reply_deltas=DELTAS))
    return running


@pytest.fixture
def client(dev: RunningDevServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=5) as client:
        yield client


def challenge(client: httpx.Client, request: dict[str, Any]) -> httpx.Response:
    response = client.post(CHAT, json=request)
    assert response.status_code == 402, response.text
    return response


def pay(
    client: httpx.Client, request: dict[str, Any], account: Any = ACCOUNT, **sign: Any
) -> SignedPayment:
    response = challenge(client, request)
    return sign_payment(
        account, POLICY.choose(parse_challenge(response.headers, response.content)), **sign
    )


def decode(value: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(value))


def encode(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def tampered(signed: SignedPayment, change: Callable[[dict[str, Any]], None]) -> dict[str, str]:
    document = decode(signed.header_value)
    change(document)
    return {signed.header_name: encode(document)}


def data_lines(raw: bytes) -> list[str]:
    """The data of each SSE event, whatever the line ends; comments are skipped."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def chunks(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data_lines(raw) if line != "[DONE]"]


def content_of(events: list[dict[str, Any]]) -> str:
    return "".join(
        event["choices"][0]["delta"].get("content", "") for event in events if event.get("choices")
    )


def paid_stream(
    client: httpx.Client, request: dict[str, Any] | None = None
) -> tuple[httpx.Response, bytes, list[bytes]]:
    """Pay and read a stream's raw bytes, keeping each network read apart."""
    request = request or stream_body()
    signed = pay(client, request)
    reads: list[bytes] = []
    headers = {signed.header_name: signed.header_value}
    with client.stream("POST", CHAT, json=request, headers=headers) as response:
        assert response.status_code == 200, response.read()
        reads.extend(response.iter_raw())
    return response, b"".join(reads), reads


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# The catalog and the reply generator, without the network.


def test_price_follows_the_published_rates_and_rounds_up() -> None:
    sonnet = find_model("anthropic/claude-3.5-sonnet")
    assert sonnet is not None
    messages = [{"role": "user", "content": "x" * 401}]
    price = price_request(sonnet, messages, 1000)
    assert price.input_tokens == 101 + 4  # ceil(401 / 4) plus the per-message framing
    expected = Decimal(105) * Decimal("0.003") / 1000 + Decimal(1000) * Decimal("0.015") / 1000
    assert price.usd == expected
    assert price.atomic == usd_to_atomic(expected) == 15315
    cheapest = min(MODELS, key=lambda model: model.output_per_1k)
    assert price_request(cheapest, [{"role": "user", "content": "a"}], 1).atomic == 1


def test_reply_has_the_requested_number_of_token_sized_pieces() -> None:
    natural = make_reply("Explain x402 in one paragraph")
    assert 180 <= len(natural.content) <= 240
    assert natural == make_reply("Explain x402 in one paragraph")
    for wanted in (0, 1, 7, 50, 199, 200, 201, 333, 1500):
        reply = make_reply("hello", deltas=wanted)
        assert len(reply.content) == wanted
        assert all(1 <= len(piece) <= MAX_PIECE_CHARS for piece in reply.content)
    long = make_reply("hello", deltas=1500).text
    assert long.count("```") % 2 == 0  # every code fence is closed
    assert "### 5." in long


def test_reply_of_a_given_size_in_a_given_number_of_deltas() -> None:
    # What benchmarks/bench_chat.py streams: ~27 KB of Markdown in 5,000 deltas.
    reply = make_reply("hello", deltas=5000, min_bytes=27_000)
    text = reply.text
    assert len(reply.content) == 5000 and all(reply.content)
    assert 27_000 <= len(text.encode()) < 27_500
    # Whole sections, nothing cut: the same text as without a delta count.
    assert text == make_reply("hello", min_bytes=27_000).text
    assert text.count("```") % 2 == 0 and text.endswith("\n")
    assert all(kind in text for kind in ("\n### ", "\n- ", "```python\n", "|------|"))
    # More deltas than the size needs: sections go on until there are enough pieces.
    many = make_reply("hello", deltas=600, min_bytes=100)
    assert len(many.content) == 600 and all(many.content)
    assert many.text.count("```") % 2 == 0 and many.text.endswith("\n")
    assert make_reply("hello", deltas=0, min_bytes=1000).content == ()
    with pytest.raises(ValueError):
        make_reply("hello", min_bytes=-1)


def test_reply_markdown_and_reasoning() -> None:
    prompt = "Why is the sky blue? " * 10
    reply = make_reply(prompt, "deepseek/deepseek-r1")
    assert reply.text.startswith("## Why is the sky blue?")
    assert len(reply.text.splitlines()[0]) <= len("## ") + 61
    assert "```python\n" in reply.text and "| Step |" in reply.text and UNICODE_LINE in reply.text
    assert "\n- " in reply.text
    assert reply.reasoning and "sky blue" in reply.reasoning_text
    assert not make_reply(prompt, "openai/gpt-4o").reasoning
    assert make_reply(prompt, "openai/o1-mini").reasoning


# Free endpoints.


def test_models_in_x_router_shape(client: httpx.Client) -> None:
    listing = client.get("/v1/models").json()
    assert listing["total"] == len(listing["models"]) >= 12
    by_id = {model["id"]: model for model in listing["models"]}
    sonnet = by_id["anthropic/claude-3.5-sonnet"]
    assert sonnet["pricing"]["input_per_1k_tokens"] == pytest.approx(0.003)
    assert sonnet["pricing"]["output_per_1k_tokens"] == pytest.approx(0.015)
    assert "deepseek/deepseek-r1" in by_id
    for model in listing["models"]:
        assert model["name"] and model["description"] and model["context_length"] > 0
        pricing = model["pricing"]
        low, high = sorted((pricing["input_per_1k_tokens"], pricing["output_per_1k_tokens"]))
        assert low <= pricing["blended_per_1k_tokens"] <= high


def test_models_in_openai_shape(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.models_shape = "openai"
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list" and "total" not in listing
    first = listing["data"][0]
    assert first["object"] == "model"
    assert first["owned_by"] == first["id"].split("/")[0]
    assert isinstance(first["created"], int) and first["pricing"]["input_per_1k_tokens"] > 0


@pytest.mark.parametrize("version", [1, 2])
def test_estimate_matches_the_challenge(
    dev: RunningDevServer, client: httpx.Client, version: int
) -> None:
    dev.config.x402_version = version
    request = body(model="openai/gpt-4o", max_tokens=1234)
    estimate = client.post("/v1/estimate", json=request).json()
    assert estimate["model"] == "openai/gpt-4o"
    assert estimate["estimatedOutputTokens"] == 1234
    response = challenge(client, request)
    offered = parse_challenge(response.headers, response.content).accepts[0].amount
    assert usd_to_atomic(Decimal(estimate["estimatedCost"]["usd"])) == offered
    assert dev.state.unpaid_requests == 1


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({}, "INVALID_REQUEST"),
        ({"messages": []}, "INVALID_REQUEST"),
        ({"messages": [{"role": "user", "content": "hi"}] * 101}, "INVALID_REQUEST"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "INVALID_REQUEST"),
        ({"messages": [{"role": "user", "content": ""}]}, "INVALID_REQUEST"),
        ({"messages": [{"role": "user", "content": "x" * 100_001}]}, "INVALID_REQUEST"),
        ({"messages": [{"role": "user", "content": 5}]}, "INVALID_REQUEST"),
        (body(model="acme/none"), "INVALID_MODEL"),
        (body(max_tokens=0), "INVALID_REQUEST"),
        (body(max_tokens=128_001), "INVALID_REQUEST"),
        (body(max_tokens=10.5), "INVALID_REQUEST"),
        (body(temperature=2.5), "INVALID_REQUEST"),
        (body(temperature=True), "INVALID_REQUEST"),
        (body(stream="yes"), "INVALID_REQUEST"),
    ],
)
def test_invalid_bodies_get_400_before_any_challenge(
    dev: RunningDevServer, client: httpx.Client, request_body: dict[str, Any], code: str
) -> None:
    response = client.post(CHAT, json=request_body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert dev.state.unpaid_requests == 0 and dev.state.invalid_requests == 1


def test_unparseable_body_gets_400(client: httpx.Client) -> None:
    response = client.post(CHAT, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


# Challenges.


def test_v1_challenge(dev: RunningDevServer, client: httpx.Client) -> None:
    request = body(max_tokens=300)
    response = challenge(client, request)
    assert "payment-required" not in response.headers
    parsed = parse_challenge(response.headers, response.content)
    assert parsed.x402_version == 1
    offer = parsed.accepts[0]
    assert offer.scheme == "exact" and offer.network == "base-sepolia"
    assert offer.asset == BASE_SEPOLIA.usdc.address
    assert offer.pay_to == dev.config.pay_to
    assert offer.resource == dev.url + CHAT
    assert offer.extra == {"name": "USDC", "version": "2"}
    sonnet = find_model("anthropic/claude-3.5-sonnet")
    assert sonnet is not None
    assert offer.amount == price_request(sonnet, request["messages"], 300).atomic
    assert response.json()["accepts"][0]["outputSchema"] is None


def test_v2_challenge(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.x402_version = 2
    response = challenge(client, body())
    assert response.json() == {}
    parsed = parse_challenge(response.headers, response.content)
    assert parsed.x402_version == 2
    assert parsed.accepts[0].network == "eip155:84532"
    assert parsed.resource is not None and parsed.resource["url"] == dev.url + CHAT
    assert set(parsed.accepts[0].raw) == {
        "scheme",
        "network",
        "amount",
        "asset",
        "payTo",
        "maxTimeoutSeconds",
        "extra",
    }


# Paying.


@pytest.mark.parametrize("version", [1, 2])
def test_a_paid_stream_carries_the_whole_reply(
    dev: RunningDevServer, client: httpx.Client, version: int
) -> None:
    dev.config.x402_version = version
    dev.config.reply_deltas = None
    response, raw, _ = paid_stream(client)
    assert response.headers["content-type"] == "text/event-stream"
    events = chunks(raw)
    assert data_lines(raw)[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[0]["object"] == "chat.completion.chunk"
    text = content_of(events)
    assert text == expected(None)
    assert "```python\n" in text and "|------|" in text and UNICODE_LINE in text
    assert "🚀".encode() in raw and b"\\u" not in raw  # raw UTF-8 on the wire, not escapes
    finish, usage = events[-2], events[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    deltas = sum(
        1 for event in events if event["choices"] and event["choices"][0]["delta"].get("content")
    )
    assert usage["usage"]["completion_tokens"] == deltas
    assert usage["usage"]["total_tokens"] == deltas + usage["usage"]["prompt_tokens"]

    receipt = read_receipt(response.headers)
    assert receipt is not None and receipt.success
    assert receipt.payer == ACCOUNT.address
    assert receipt.network == ("base-sepolia" if version == 1 else "eip155:84532")
    assert receipt.transaction is not None and len(receipt.transaction) == 66
    [payment] = dev.state.payments
    assert payment.payer == ACCOUNT.address and payment.transaction == receipt.transaction
    if version == 2:
        assert receipt.amount == payment.amount
    else:
        raw_receipt = decode(response.headers["x-payment-response"])
        assert raw_receipt["transactionHash"] == raw_receipt["transaction"]
    assert dev.state.paid_requests == 1
    # Counted just after the last chunk is sent, so possibly a moment after the client has it.
    assert wait_for(lambda: dev.state.completed_streams == 1)


def test_a_stream_of_a_given_size(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.reply_deltas = 100
    dev.config.reply_bytes = 3000
    _, raw, _ = paid_stream(client, stream_body(max_tokens=1000))
    events = chunks(raw)
    text = content_of(events)
    assert text == make_reply(PROMPT, deltas=100, min_bytes=3000).text
    assert len(text.encode()) >= 3000
    assert events[-1]["usage"]["completion_tokens"] == 100


def test_a_paid_request_without_stream_gets_json(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    request = body()
    signed = pay(client, request)
    response = client.post(CHAT, json=request, headers={signed.header_name: signed.header_value})
    assert response.status_code == 200
    completion = response.json()
    assert completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == expected()
    assert choice["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] == DELTAS
    assert dev.state.payments[0].amount == signed.amount


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client: httpx.Client) -> None:
    _, raw, _ = paid_stream(client, stream_body(max_tokens=12))
    events = chunks(raw)
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 12
    assert content_of(events) == "".join(make_reply(PROMPT, deltas=DELTAS).content[:12])


def test_a_reasoning_model_streams_reasoning_first(client: httpx.Client) -> None:
    _, raw, _ = paid_stream(client, stream_body(model="deepseek/deepseek-r1"))
    events = chunks(raw)
    deltas = [event["choices"][0]["delta"] for event in events if event["choices"]]
    assert "reasoning" in deltas[0] and deltas[0]["role"] == "assistant"
    first_content = next(i for i, delta in enumerate(deltas) if "content" in delta)
    assert all("reasoning" in delta for delta in deltas[:first_content])
    assert first_content > 3


# Verification: each check names its facilitator error, and nothing is recorded.


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = document
        for key in parents:
            target = target[key]
        target[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            _set("payload.authorization.value", "1"),
            "invalid_exact_evm_payload_authorization_value_mismatch",
        ),
        (
            _set("payload.authorization.to", "0x" + "12" * 20),
            "invalid_exact_evm_payload_recipient_mismatch",
        ),
        (_set("network", "base"), "invalid_network"),
        (_set("scheme", "upto"), "invalid_scheme"),
        (_set("x402Version", 2), "invalid_x402_version"),
        (
            _set("payload.authorization.from", "0x" + "34" * 20),
            "invalid_exact_evm_payload_signature",
        ),
        (_set("payload.signature", "0x" + "ab" * 65), "invalid_exact_evm_payload_signature"),
        (_set("payload.authorization.nonce", "0x1234"), "invalid_payload"),
        (_set("payload", "nothing"), "invalid_payload"),
    ],
)
def test_v1_tampered_payments_are_refused(
    dev: RunningDevServer,
    client: httpx.Client,
    change: Callable[[dict[str, Any]], None],
    code: str,
) -> None:
    request = body()
    signed = pay(client, request)
    response = client.post(CHAT, json=request, headers=tampered(signed, change))
    assert response.status_code == 402
    assert response.json()["error"] == code
    assert parse_challenge(response.headers, response.content).error == code
    assert dev.state.rejections == [code] and dev.state.payments == []


def _refusal(client: httpx.Client, request: dict[str, Any], headers: dict[str, str]) -> str | None:
    response = client.post(CHAT, json=request, headers=headers)
    assert response.status_code == 402
    return parse_challenge(response.headers, response.content).error


def test_unreadable_header_is_invalid_payload(client: httpx.Client) -> None:
    assert _refusal(client, body(), {"X-PAYMENT": "not base64 at all!"}) == "invalid_payload"
    assert _refusal(client, body(), {"X-PAYMENT": encode([1, 2])}) == "invalid_payload"


def test_expired_and_not_yet_valid_authorizations(client: httpx.Client) -> None:
    request = body()
    expired = pay(client, request, now=int(time.time()) - 1000)
    assert _refusal(client, request, {expired.header_name: expired.header_value}) == (
        "invalid_exact_evm_payload_authorization_valid_before"
    )
    future = pay(client, request, now=int(time.time()) + 1000)
    assert _refusal(client, request, {future.header_name: future.header_value}) == (
        "invalid_exact_evm_payload_authorization_valid_after"
    )


def test_a_signature_by_another_key_is_refused(client: httpx.Client) -> None:
    request = body()
    other = pay(client, request, account=Account.create())
    headers = tampered(other, _set("payload.authorization.from", ACCOUNT.address))
    assert _refusal(client, request, headers) == "invalid_exact_evm_payload_signature"


def test_a_signature_over_the_wrong_domain_is_refused(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    request = body()
    document = challenge(client, request).json()
    document["accepts"][0]["extra"]["name"] = "USD Coin"  # mainnet's name, not Base Sepolia's
    quote = POLICY.choose(parse_challenge({}, json.dumps(document).encode()))
    signed = sign_payment(ACCOUNT, quote)
    assert _refusal(client, request, {signed.header_name: signed.header_value}) == (
        "invalid_exact_evm_payload_signature"
    )
    assert dev.state.payments == []


def test_a_payment_for_another_body_is_refused(client: httpx.Client) -> None:
    signed = pay(client, body(max_tokens=10))
    assert _refusal(client, body(max_tokens=4000), {signed.header_name: signed.header_value}) == (
        "invalid_exact_evm_payload_authorization_value_mismatch"
    )


def test_a_reused_nonce_is_refused(dev: RunningDevServer, client: httpx.Client) -> None:
    request = body()
    signed = pay(client, request)
    headers = {signed.header_name: signed.header_value}
    assert client.post(CHAT, json=request, headers=headers).status_code == 200
    assert _refusal(client, request, headers) == "invalid_exact_evm_nonce_already_used"
    assert len(dev.state.payments) == 1
    assert dev.state.rejections == ["invalid_exact_evm_nonce_already_used"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (_set("accepted.maxTimeoutSeconds", 60), "invalid_payload"),
        (_set("accepted.amount", "1"), "invalid_payload"),
        (_set("accepted.network", "eip155:8453"), "invalid_network"),
        (_set("accepted", None), "invalid_payload"),
        (_set("x402Version", 1), "invalid_x402_version"),
    ],
)
def test_v2_payments_must_echo_the_offer(
    dev: RunningDevServer,
    client: httpx.Client,
    change: Callable[[dict[str, Any]], None],
    code: str,
) -> None:
    dev.config.x402_version = 2
    request = body()
    signed = pay(client, request)
    assert signed.header_name == "PAYMENT-SIGNATURE"
    assert _refusal(client, request, tampered(signed, change)) == code
    assert dev.state.payments == []


# Faults, as the raw bytes show them.


def test_unknown_fault_names_are_refused_with_the_known_ones(dev: RunningDevServer) -> None:
    with pytest.raises(ValueError, match="split"):
        dev.config.faults = {"explode"}
    with pytest.raises(ValueError, match="known faults"):
        DevServerConfig(faults={"split", "nope"})
    assert all(isinstance(text, str) and text for text in FAULTS.values())


def test_comments_precede_every_event(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"comments"}
    _, raw, _ = paid_stream(client)
    text = raw.decode()
    events = text.count("\ndata: ") + text.startswith("data: ")
    assert text.startswith(": keep-alive\n\ndata: ")
    assert text.count(": keep-alive\n\n") == events
    assert content_of(chunks(raw)) == expected()


def test_crlf_line_ends(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"crlf"}
    _, raw, _ = paid_stream(client)
    assert raw.count(b"\n") == raw.count(b"\r\n") > 0
    assert raw.endswith(b"data: [DONE]\r\n\r\n")
    assert data_lines(raw)[-1] == "[DONE]"


@pytest.mark.parametrize("extra", [set(), {"crlf", "comments"}])
def test_split_writes_tiny_pieces_across_lines_and_characters(
    dev: RunningDevServer, client: httpx.Client, extra: set[str]
) -> None:
    dev.config.faults = {"split", *extra}
    # Few deltas keep it quick (each piece is a separate write); the heading brings multi-byte text.
    dev.config.reply_deltas = 6
    prompt = "Erklär: naïve café — 日本語 🚀"
    _, raw, reads = paid_stream(client, stream_body(prompt=prompt))
    assert len(reads) > 100
    assert all(1 <= len(piece) <= 5 for piece in reads)
    line_ends = sum(piece.endswith(b"\n") for piece in reads)
    assert line_ends < len(reads) / 3  # most reads stop mid-line

    def cuts_a_character(piece: bytes) -> bool:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    assert any(cuts_a_character(piece) for piece in reads)
    assert ("comments" in extra) == (b": keep-alive" in raw)
    assert ("crlf" in extra) == (b"\r\n" in raw)
    assert content_of(chunks(raw)) == expected(6, prompt)
    assert "日本語" in content_of(chunks(raw))
    assert data_lines(raw)[-1] == "[DONE]"


async def test_split_pieces_arrive_as_separate_async_reads(dev: RunningDevServer) -> None:
    dev.config.faults = {"split"}
    dev.config.reply_deltas = 3
    async with httpx.AsyncClient(base_url=dev.url, timeout=5) as client:
        first = await client.post(CHAT, json=stream_body())
        signed = sign_payment(ACCOUNT, POLICY.choose(parse_challenge(first.headers, first.content)))
        headers = {signed.header_name: signed.header_value}
        async with client.stream("POST", CHAT, json=stream_body(), headers=headers) as response:
            reads = [piece async for piece in response.aiter_raw()]
    assert len(reads) > 50 and max(map(len, reads)) <= 5
    assert data_lines(b"".join(reads))[-1] == "[DONE]"


def test_bad_json_line_then_the_stream_goes_on(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"bad-json"}
    _, raw, _ = paid_stream(client)
    lines = data_lines(raw)
    broken = [index for index, line in enumerate(lines) if line == '{"choices": [oops']
    assert broken == [5]  # after fault_after = 5 content deltas
    assert lines[-1] == "[DONE]"
    good = [json.loads(line) for line in lines if line not in ('{"choices": [oops', "[DONE]")]
    assert content_of(good) == expected()


def test_midstream_error_ends_the_stream(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"midstream-error"}
    dev.config.fault_after = 3
    _, raw, _ = paid_stream(client)
    events = chunks(raw)
    assert len(events) == 4 and "[DONE]" not in data_lines(raw)
    assert events[-1]["error"]["code"] == 502
    assert events[-1]["error"]["message"] == "The upstream model is overloaded"
    assert all(event["choices"][0]["finish_reason"] is None for event in events[:3])


def test_truncate_ends_cleanly_without_finish(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"truncate"}
    _, raw, _ = paid_stream(client)
    events = chunks(raw)
    assert len(events) == 5 and "[DONE]" not in data_lines(raw)
    assert all(event["choices"][0]["finish_reason"] is None for event in events)
    assert wait_for(lambda: dev.state.completed_streams == 1)


def test_disconnect_drops_the_connection_mid_body(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    dev.config.faults = {"disconnect"}
    request = stream_body()
    signed = pay(client, request)
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST", CHAT, json=request, headers={signed.header_name: signed.header_value}
        ) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_raw():
            received.extend(piece)
    assert len(chunks(bytes(received))) == 5
    assert wait_for(lambda: dev.state.dropped_streams == 1)
    assert dev.state.completed_streams == 0 and len(dev.state.payments) == 1


def test_a_client_leaving_mid_stream_is_counted(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    dev.config.reply_deltas = 400
    dev.config.delta_delay = 0.01
    request = stream_body(max_tokens=1000)
    signed = pay(client, request)
    with client.stream(
        "POST", CHAT, json=request, headers={signed.header_name: signed.header_value}
    ) as response:
        for piece in response.iter_raw():
            if piece:
                break
    assert wait_for(lambda: dev.state.disconnects == 1)
    assert dev.state.completed_streams == 0


def test_stall_mid_stream_pauses_then_continues(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    dev.config.faults = {"stall-mid-stream"}
    dev.config.stall_seconds = 0.4
    dev.config.fault_after = 2
    request = stream_body()
    signed = pay(client, request)
    arrivals: list[float] = []
    buffer = b""
    with client.stream(
        "POST", CHAT, json=request, headers={signed.header_name: signed.header_value}
    ) as response:
        for piece in response.iter_raw():
            buffer += piece
            arrivals.extend(time.monotonic() for _ in range(piece.count(b"\n\n")))
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.35
    assert gaps.index(max(gaps)) == 1  # between the second and the third delta
    assert data_lines(buffer)[-1] == "[DONE]"


def test_stall_first_byte_holds_the_response_and_still_charges() -> None:
    config = DevServerConfig(faults={"stall-first-byte"}, stall_seconds=0.5, reply_deltas=5)
    with start_dev_server(config) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        signed = pay(client, body())
        headers = {signed.header_name: signed.header_value}
        with pytest.raises(httpx.ReadTimeout):
            client.post(CHAT, json=body(), headers=headers, timeout=httpx.Timeout(5, read=0.15))
        # The router got the authorization, so it may settle even though the client gave up.
        assert wait_for(lambda: len(server.state.payments) == 1)


def test_stop_does_not_wait_for_a_stalled_request() -> None:
    config = DevServerConfig(faults={"stall-first-byte"}, stall_seconds=30)
    server = start_dev_server(config)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        signed = pay(client, body())
        outcome: list[object] = []

        def send() -> None:
            try:
                outcome.append(
                    client.post(
                        CHAT, json=body(), headers={signed.header_name: signed.header_value}
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        assert wait_for(lambda: server.state.paid_requests == 1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        assert not server.running
        sender.join(5)
        assert outcome and not (
            isinstance(outcome[0], httpx.Response) and outcome[0].status_code == 200
        )


def test_no_receipt(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"no-receipt"}
    response, _, _ = paid_stream(client)
    assert read_receipt(response.headers) is None
    assert len(dev.state.payments) == 1


def test_reject_payment_refuses_without_using_the_nonce(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    dev.config.faults = {"reject-payment"}
    request = body()
    signed = pay(client, request)
    headers = {signed.header_name: signed.header_value}
    assert _refusal(client, request, headers) == "invalid_exact_evm_insufficient_balance"
    assert dev.state.payments == []
    dev.config.faults = set()
    assert client.post(CHAT, json=request, headers=headers).status_code == 200


@pytest.mark.parametrize("version", [1, 2])
def test_http_errors_before_payment(
    dev: RunningDevServer, client: httpx.Client, version: int
) -> None:
    dev.config.x402_version = version
    dev.config.faults = {"http-error-json"}
    response = client.post(CHAT, json=body())
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "The upstream provider is unavailable"

    dev.config.faults = {"http-error-text"}
    dev.config.error_status = 502
    response = client.post(CHAT, json=body())
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Service temporarily unavailable"

    dev.config.faults = {"rate-limit"}
    response = client.post(CHAT, json=body())
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json() == {"error": {"message": "Rate limit exceeded"}}
    assert dev.state.unpaid_requests == 3


def test_paid_http_error_after_the_payment_was_taken(
    dev: RunningDevServer, client: httpx.Client
) -> None:
    dev.config.faults = {"paid-http-error"}
    request = body()
    signed = pay(client, request)
    response = client.post(CHAT, json=request, headers={signed.header_name: signed.header_value})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error while generating the reply"}
    assert [payment.nonce for payment in dev.state.payments] == [signed.nonce]


@pytest.mark.parametrize(
    "fault",
    [
        "bad-challenge-json",
        "bad-challenge-no-accepts",
        "bad-challenge-amount",
        "bad-challenge-header",
    ],
)
def test_bad_challenges_cannot_be_paid(
    dev: RunningDevServer, client: httpx.Client, fault: str
) -> None:
    dev.config.faults = {fault}
    response = challenge(client, body())
    with pytest.raises(ChallengeError):
        parse_challenge(response.headers, response.content)
    if fault == "bad-challenge-json":
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Payment required"
    if fault == "bad-challenge-amount":
        assert response.json()["accepts"][0]["maxAmountRequired"] == "12.5"


def test_bad_challenge_amount_in_v2(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.x402_version = 2
    dev.config.faults = {"bad-challenge-amount"}
    response = challenge(client, body())
    assert decode(response.headers["payment-required"])["accepts"][0]["amount"] == "12.5"


def test_ignore_stream_answers_json(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"ignore-stream"}
    request = stream_body()
    signed = pay(client, request)
    response = client.post(CHAT, json=request, headers={signed.header_name: signed.header_value})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["object"] == "chat.completion"
    assert read_receipt(response.headers) is not None


def test_faults_change_while_running(dev: RunningDevServer, client: httpx.Client) -> None:
    dev.config.faults = {"rate-limit"}
    assert client.post(CHAT, json=body()).status_code == 429
    dev.config.faults = set()
    assert client.post(CHAT, json=body()).status_code == 402


# Command line.


def test_only_loopback_hosts_count_as_local() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.20", "example.com"]))


def test_arguments_make_a_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--port=0",
            "--x402-version=2",
            "--network=base",
            "--fault=split",
            "--fault=crlf",
            "--deltas=10",
            "--reply-bytes=2000",
            "--delay=0.01",
            "--fault-after=3",
            "--stall=1.5",
        ]
    )
    config = config_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 0)
    assert config.x402_version == 2 and config.resolved_network.chain_id == 8453
    assert config.faults == {"split", "crlf"}
    assert (config.reply_deltas, config.delta_delay, config.fault_after) == (10, 0.01, 3)
    assert config.stall_seconds == 1.5 and config.reply_bytes == 2000
    defaults = config_from_args(parser.parse_args([]))
    assert defaults == DevServerConfig(network="base")  # the command mimics X-Router
    for bad in (
        ["--fault", "explode"],
        ["--network", "mars"],
        ["--deltas", "-1"],
        ["--reply-bytes", "-1"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_serve_prints_where_and_stops_on_ctrl_c() -> None:
    code = (
        "from xrouter_tui.devserver import DevServerConfig, serve\n"
        "serve(DevServerConfig(x402_version=2, faults={'crlf'}), port=0)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("X-Router dev server on http://127.0.0.1:")
        assert "x402 v2, Base Sepolia (test network), faults: crlf" in line
        url = line.split()[4]
        listing = httpx.get(url + "/v1/models", timeout=5)
        assert listing.status_code == 200
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert "Traceback" not in stderr
    assert process.returncode == 0
