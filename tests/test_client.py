"""The router client against the local router over real loopback HTTP, fault by fault.

Every paid case also checks the rule that matters most: exactly one paid request per turn.
"""

from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal

import pytest
from eth_account import Account

from xrouter_tui.api import (
    BadChallenge,
    Delta,
    Done,
    Paid,
    PaymentDeclined,
    PaymentRejected,
    Reasoning,
    ResponseTimeout,
    RouterClient,
    RouterHTTPError,
    RouterUnreachable,
    StreamError,
    StreamInterrupted,
    Timeouts,
    Usage,
)
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.payments import BASE_SEPOLIA, PaymentRefused, SpendingPolicy

MODEL = "openai/gpt-4o-mini"
QUESTION = [{"role": "user", "content": "Show me a table and some Python, please."}]
TEST_NET = SpendingPolicy(networks=(BASE_SEPOLIA,))


@pytest.fixture
def router():
    with start_dev_server(DevServerConfig(network="base-sepolia", reply_deltas=40)) as server:
        yield server


@pytest.fixture
def account():
    return Account.create()


def make_client(router, account, **kwargs) -> RouterClient:
    kwargs.setdefault("policy", TEST_NET)
    return RouterClient(router.url, account=account, **kwargs)


async def turn(router, account, *, model: str = MODEL, messages=QUESTION, **kwargs):
    """One streamed turn; returns its events, or raises what the client raised."""
    client_kwargs = {k: kwargs.pop(k) for k in ("timeouts", "policy") if k in kwargs}
    async with make_client(router, account, **client_kwargs) as client:
        return [
            event
            async for event in client.stream_chat(
                messages, model=model, max_tokens=kwargs.pop("max_tokens", 256), **kwargs
            )
        ]


def text_of(events) -> str:
    return "".join(event.text for event in events if isinstance(event, Delta))


def assert_paid_once(router, account, *, other_turns: int = 0) -> None:
    """This account's turn made one paid request, and the router took one payment from it."""
    assert router.state.paid_requests == 1 + other_turns
    assert [p.payer for p in router.state.payments].count(account.address) == 1


async def clean_text(router) -> str:
    """The reply as a fault-free stream delivers it (the local router's reply is deterministic),
    paid by another wallet."""
    faults = router.config.faults
    router.config.faults = set()
    try:
        return text_of(await turn(router, Account.create()))
    finally:
        router.config.faults = faults


# -- the whole turn ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
async def test_a_paid_turn_streams_the_reply_in_order(router, account, version):
    router.config.x402_version = version
    events = await turn(router, account)
    assert isinstance(events[0], Paid)
    paid = events[0]
    assert paid.payment.payer == account.address
    assert paid.payment.header_name == ("X-PAYMENT" if version == 1 else "PAYMENT-SIGNATURE")
    assert paid.receipt is not None and paid.receipt.success
    assert paid.receipt.transaction.startswith("0x")
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    usage = [e for e in events if isinstance(e, Usage)]
    assert len(usage) == 1 and usage[0].completion_tokens == 40
    assert len([e for e in events if isinstance(e, Delta)]) == 40
    assert_paid_once(router, account)
    assert router.state.payments[0].amount == paid.payment.amount


async def test_the_reply_is_markdown_with_a_table_code_and_multibyte_text(router, account):
    router.config.reply_deltas = None
    text = text_of(await turn(router, account))
    assert "```python" in text
    assert "|" in text and "---" in text
    assert "日本語" in text and "🚀" in text


async def test_the_payment_is_handed_over_before_the_paid_request_is_sent(router, account):
    seen = []

    def on_signed(payment, body):
        seen.append((payment.nonce, tuple(body["messages"]), router.state.paid_requests))

    events = await turn(router, account, on_signed=on_signed)
    assert seen == [(events[0].payment.nonce, router.state.payments[0].messages, 0)]


async def test_the_estimate_matches_the_amount_the_402_asks(router, account):
    quotes = []

    async def confirm(quote):
        quotes.append(quote)
        return True

    async with make_client(router, account) as client:
        estimate = await client.estimate(QUESTION, model=MODEL, max_tokens=256)
    await turn(router, account, confirm=confirm)
    assert quotes[0].amount_usd == estimate.usd
    assert estimate.usd > 0


async def test_a_declined_confirmation_signs_nothing(router, account):
    async def confirm(quote):
        return False

    signed = []
    with pytest.raises(PaymentDeclined):
        await turn(
            router,
            account,
            confirm=confirm,
            on_signed=lambda payment, _body: signed.append(payment),
        )
    assert signed == []
    assert router.state.paid_requests == 0


async def test_a_price_above_the_cap_is_refused_before_signing(router, account):
    cheap = SpendingPolicy(networks=(BASE_SEPOLIA,), max_per_request_usd=Decimal("0.000001"))
    signed = []
    with pytest.raises(PaymentRefused) as caught:
        await turn(
            router, account, policy=cheap, on_signed=lambda payment, _body: signed.append(payment)
        )
    assert caught.value.code == "over_cap"
    assert signed == [] and router.state.paid_requests == 0


async def test_a_mainnet_only_policy_refuses_the_test_network(router, account):
    with pytest.raises(PaymentRefused) as caught:
        await turn(router, account, policy=SpendingPolicy())
    assert caught.value.code == "network_not_allowed"
    assert router.state.paid_requests == 0


async def test_reasoning_arrives_apart_from_the_answer(router, account):
    events = await turn(router, account, model="deepseek/deepseek-r1")
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    assert reasoning
    assert reasoning not in text_of(events)


async def test_a_non_streamed_completion_reads_the_same_reply(router, account):
    streamed = text_of(await turn(router, account))
    async with make_client(router, account) as client:
        completion = await client.complete(QUESTION, model=MODEL, max_tokens=256)
    assert completion.text == streamed
    assert completion.usage.completion_tokens == 40
    assert completion.receipt.success
    assert router.state.paid_requests == 2


async def test_a_completion_with_a_top_level_content_field_is_read(router, account):
    streamed = text_of(await turn(router, account))
    router.config.faults = {"top-level-content"}
    async with make_client(router, account) as client:
        completion = await client.complete(QUESTION, model=MODEL, max_tokens=256)
    assert completion.text == streamed
    assert completion.usage is None


async def test_a_reply_cut_at_max_tokens_says_length(router, account):
    events = await turn(router, account, max_tokens=10)
    assert events[-1].finish_reason == "length"
    assert len([e for e in events if isinstance(e, Delta)]) == 10


# -- the stream survives what real streams do ------------------------------------------------


async def test_comments_crlf_and_splits_mid_character_do_not_change_the_text(router, account):
    router.config.reply_deltas = None
    expected = await clean_text(router)
    router.config.faults = {"comments", "crlf", "split"}
    events = await turn(router, account)
    assert text_of(events) == expected
    assert "\ufffd" not in text_of(events)
    assert isinstance(events[-1], Done) and events[-1].skipped == 0


async def test_an_unreadable_data_line_is_skipped_and_counted(router, account):
    expected = await clean_text(router)
    router.config.faults = {"bad-json"}
    events = await turn(router, account)
    assert text_of(events) == expected
    assert events[-1] == Done("stop", skipped=1)


async def test_a_stream_answered_as_plain_json_still_gives_the_reply(router, account):
    expected = await clean_text(router)
    router.config.faults = {"ignore-stream"}
    events = await turn(router, account)
    assert text_of(events) == expected
    assert isinstance(events[-1], Done)


async def test_a_missing_receipt_is_fine(router, account):
    router.config.faults = {"no-receipt"}
    events = await turn(router, account)
    assert events[0].receipt is None
    assert isinstance(events[-1], Done)


# -- failures mid-answer keep the partial text and the payment ------------------------------


async def test_an_error_line_mid_stream_raises_with_the_partial_text(router, account):
    expected = await clean_text(router)
    router.config.faults = {"midstream-error"}
    with pytest.raises(StreamError) as caught:
        await turn(router, account)
    error = caught.value
    assert "overloaded" in error.message
    assert error.partial_text and expected.startswith(error.partial_text)
    assert error.payment is not None and "was paid" in error.message
    assert_paid_once(router, account, other_turns=1)


@pytest.mark.parametrize("fault", ["truncate", "disconnect"])
async def test_a_stream_that_ends_early_is_interrupted_not_done(router, account, fault):
    router.config.faults = {fault}
    with pytest.raises(StreamInterrupted) as caught:
        await turn(router, account)
    assert caught.value.partial_text
    assert caught.value.payment is not None
    assert_paid_once(router, account)


async def test_silence_before_the_first_byte_times_out_and_is_not_resent(router, account):
    router.config.faults = {"stall-first-byte"}
    router.config.stall_seconds = 3
    timeouts = Timeouts(connect=2, first_byte=0.4, idle=30)
    with pytest.raises(ResponseTimeout) as caught:
        await turn(router, account, timeouts=timeouts)
    assert caught.value.phase == "first_byte"
    assert "may be charged" in caught.value.message
    assert caught.value.payment is not None
    assert router.state.paid_requests == 1


async def test_silence_mid_stream_times_out_on_the_idle_limit_not_the_first_byte_one(
    router, account
):
    # first_byte is far longer than the stall: without the switch to the idle limit after the
    # headers, the stall would pass and the answer would end normally.
    router.config.faults = {"stall-mid-stream"}
    router.config.stall_seconds = 5
    timeouts = Timeouts(connect=2, first_byte=30, idle=0.4)
    with pytest.raises(ResponseTimeout) as caught:
        await turn(router, account, timeouts=timeouts)
    assert caught.value.phase == "idle"
    assert caught.value.partial_text
    assert router.state.paid_requests == 1


async def test_a_second_402_is_a_rejected_payment_in_plain_words(router, account):
    router.config.faults = {"reject-payment"}
    with pytest.raises(PaymentRejected) as caught:
        await turn(router, account)
    error = caught.value
    assert error.code == "invalid_exact_evm_insufficient_balance"
    assert "Not enough USDC in" in error.message and "Base Sepolia" in error.message
    assert router.state.paid_requests == 1 and router.state.payments == []


# -- failures before paying ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [
        ("http-error-json", 503, "The upstream provider is unavailable"),
        ("http-error-text", 503, "Service temporarily unavailable"),
        ("rate-limit", 429, "try again in 7 s"),
    ],
)
async def test_http_errors_before_paying_show_status_and_message(
    router, account, fault, status, words
):
    router.config.faults = {fault}
    signed = []
    with pytest.raises(RouterHTTPError) as caught:
        await turn(router, account, on_signed=lambda payment, _body: signed.append(payment))
    assert caught.value.status == status
    assert words in caught.value.message
    assert caught.value.payment is None and signed == []
    assert router.state.paid_requests == 0


async def test_an_http_error_after_paying_says_the_payment_may_be_charged(router, account):
    router.config.faults = {"paid-http-error"}
    with pytest.raises(RouterHTTPError) as caught:
        await turn(router, account)
    assert caught.value.status == 500
    assert "Internal error while generating the reply" in caught.value.message
    assert "may be charged" in caught.value.message
    assert router.state.paid_requests == 1


async def test_an_invalid_request_is_refused_before_any_payment(router, account):
    with pytest.raises(RouterHTTPError) as caught:
        await turn(router, account, messages=[{"role": "user", "content": ""}])
    assert caught.value.status == 400
    assert router.state.paid_requests == 0


@pytest.mark.parametrize(
    ("fault", "version"),
    [
        ("bad-challenge-json", 1),
        ("bad-challenge-no-accepts", 1),
        ("bad-challenge-amount", 1),
        ("bad-challenge-header", 2),
    ],
)
async def test_a_malformed_402_signs_nothing(router, account, fault, version):
    router.config.x402_version = version
    router.config.faults = {fault}
    signed = []
    with pytest.raises(BadChallenge) as caught:
        await turn(router, account, on_signed=lambda payment, _body: signed.append(payment))
    assert "Nothing was signed" in caught.value.message
    assert signed == [] and router.state.paid_requests == 0


async def test_a_refused_connection_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with RouterClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(RouterUnreachable) as caught:
            await client.list_models()
    assert f"127.0.0.1:{port}" in caught.value.message


async def test_a_connection_that_is_never_accepted_times_out_on_connect():
    # A listener whose backlog is full leaves further SYNs unanswered: a real connect timeout,
    # all on loopback.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        timeouts = Timeouts(connect=0.5, first_byte=5, idle=5)
        async with RouterClient(f"http://127.0.0.1:{port}", timeouts=timeouts) as client:
            with pytest.raises(RouterUnreachable) as caught:
                await client.list_models()
        assert "within 0.5 s" in caught.value.message
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -- cancellation ---------------------------------------------------------------------------


async def disconnect_seen(router, seconds: float = 2.0) -> None:
    """Give the router a moment to notice that the client went away."""
    deadline = time.monotonic() + seconds
    while not router.state.disconnects and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def test_closing_the_stream_mid_answer_closes_the_connection(router, account):
    router.config.reply_deltas = 400
    router.config.delta_delay = 0.01
    async with make_client(router, account) as client:
        events = client.stream_chat(QUESTION, model=MODEL, max_tokens=1000)
        seen = 0
        async for event in events:
            if isinstance(event, Delta):
                seen += 1
                if seen == 3:
                    break
        await events.aclose()
    await disconnect_seen(router)
    assert router.state.disconnects == 1
    assert router.state.completed_streams == 0
    assert router.state.paid_requests == 1


async def test_cancelling_the_task_mid_answer_closes_the_connection(router, account):
    router.config.reply_deltas = 400
    router.config.delta_delay = 0.01
    started = asyncio.Event()

    async def consume():
        async with make_client(router, account) as client:
            async for event in client.stream_chat(QUESTION, model=MODEL, max_tokens=1000):
                if isinstance(event, Delta):
                    started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await disconnect_seen(router)
    assert router.state.disconnects == 1
    assert router.state.paid_requests == 1


# -- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["xrouter", "openai"])
async def test_models_are_read_in_both_shapes_with_prices_per_million(router, shape):
    router.config.models_shape = shape
    async with RouterClient(router.url) as client:
        models = await client.list_models()
    assert len(models) >= 12
    sonnet = next(m for m in models if m.id == "anthropic/claude-3.5-sonnet")
    assert sonnet.input_per_1m_usd == Decimal(3)
    assert sonnet.output_per_1m_usd == Decimal(15)
    assert sonnet.context_length and sonnet.context_length >= 100_000
    assert [m.id for m in models] == sorted(m.id for m in models)
