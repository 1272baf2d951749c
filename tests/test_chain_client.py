"""The chain's reads over real loopback HTTP: what a node answers, read right; what a hostile
one sends (too much, too deep, too slow, not hex), one line of error, never a crash; the
calldata and topics byte-identical to eth-abi's and Keccak's."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from eth_abi import encode

from tests.rpc_helpers import FakeNode, Raw, envelope, fake_node, topic, word
from xrouter_tui.api.reading import Limits, Timeouts
from xrouter_tui.chain import BalanceWatch, ChainError, TransferLog, UsdcReader
from xrouter_tui.chain.usdc import (
    AUTHORIZATION_STATE,
    AUTHORIZATION_USED_TOPIC,
    BALANCE_OF,
    TRANSFER_TOPIC,
    authorization_state_call,
    balance_of_call,
)
from xrouter_tui.payments import BASE, BASE_SEPOLIA
from xrouter_tui.payments.signer import keccak256

WALLET = "0x2C7536E3605D9C16a7a3D7b1898e529396a65c23"
PAY_TO = "0xeb4da07be74b26b2966b3cd07842cade70e47d53"
OTHER = "0x1111111111111111111111111111111111111111"
NONCE = "0x" + "ab" * 32
TX = "0x" + "cd" * 32
USDC = BASE.usdc.address
FAST = Timeouts(connect=1.0, first_byte=0.5, idle=0.3)


def reader(node: FakeNode, **kwargs) -> UsdcReader:
    return UsdcReader(node.url, BASE, timeouts=kwargs.pop("timeouts", FAST), **kwargs)


async def read(node: FakeNode, what, **kwargs):
    async with reader(node, **kwargs) as chain:
        return await what(chain)


def transfer_log(sender: str, recipient: str, value: int, block: int, index: int = 0, **extra):
    log = {
        "address": USDC.lower(),
        "topics": [TRANSFER_TOPIC, topic(sender), topic(recipient)],
        "data": word(value),
        "blockNumber": hex(block),
        "logIndex": hex(index),
        "transactionHash": "0x" + f"{block:02x}{index:02x}" * 16,
        "removed": False,
    }
    log.update(extra)
    return log


# -- what is sent ------------------------------------------------------------------------------


def test_selectors_and_topics_are_the_hashes_of_the_signatures():
    def selector(signature: str) -> str:
        return "0x" + keccak256(signature.encode()).hex()

    assert selector("balanceOf(address)")[:10] == BALANCE_OF
    assert selector("authorizationState(address,bytes32)")[:10] == AUTHORIZATION_STATE
    assert selector("Transfer(address,address,uint256)") == TRANSFER_TOPIC
    assert selector("AuthorizationUsed(address,bytes32)") == AUTHORIZATION_USED_TOPIC


def test_calldata_is_byte_identical_to_eth_abi():
    assert balance_of_call(WALLET) == BALANCE_OF + encode(["address"], [WALLET]).hex()
    nonce = bytes.fromhex(NONCE[2:])
    expected = AUTHORIZATION_STATE + encode(["address", "bytes32"], [WALLET, nonce]).hex()
    assert authorization_state_call(WALLET, NONCE) == expected


@pytest.mark.parametrize("bad", ["0x123", "2C7536E3605D9C16a7a3D7b1898e529396a65c23x", "", None])
def test_a_malformed_address_is_refused_before_anything_is_sent(bad):
    with pytest.raises(ValueError):
        balance_of_call(bad)


# -- reads of a node that tells the truth --------------------------------------------------------


async def test_the_balance_is_read_with_one_check_of_the_chain():
    node = FakeNode(answers={"eth_call": lambda r: word(12_345_678)})
    with fake_node(node):
        async with reader(node) as chain:
            assert await chain.balance_of(WALLET) == 12_345_678
            assert await chain.balance_of(WALLET) == 12_345_678
    assert node.methods() == ["eth_chainId", "eth_call", "eth_call"]
    call = node.calls[1]["params"]
    assert call == [{"to": USDC, "data": balance_of_call(WALLET)}, "latest"]


async def test_an_endpoint_of_another_chain_is_named_with_the_setting_to_change():
    node = FakeNode(chain_id=84532, answers={"eth_call": lambda r: word(1)})
    with fake_node(node), pytest.raises(ChainError) as caught:
        await read(node, lambda chain: chain.balance_of(WALLET))
    message = str(caught.value)
    assert "serves chain 84532, not Base (8453)" in message
    assert "rpc_url_base" in message
    assert "eth_call" not in node.methods()


async def test_authorization_state_is_true_once_used():
    used = {NONCE: True}

    def state(request):
        data = request["params"][0]["data"]
        return word(1 if ("0x" + data[-64:]) in used else 0)

    node = FakeNode(chain_id=BASE_SEPOLIA.chain_id, answers={"eth_call": state})
    with fake_node(node):
        async with UsdcReader(node.url, BASE_SEPOLIA, timeouts=FAST) as chain:
            assert await chain.authorization_state(WALLET, NONCE) is True
            assert await chain.authorization_state(WALLET, "0x" + "00" * 32) is False
    assert node.calls[1]["params"][0]["to"] == BASE_SEPOLIA.usdc.address


async def test_transfers_to_the_wallet_keep_only_the_tokens_transfers_in_chain_order():
    logs = [
        transfer_log(PAY_TO, WALLET, 500, block=9, index=2),
        transfer_log(PAY_TO, WALLET, 400, block=7),
        transfer_log(PAY_TO, WALLET, 1, block=8, removed=True),  # a reorganised block
        {**transfer_log(PAY_TO, WALLET, 2, block=8), "address": OTHER},  # another token
        {**transfer_log(PAY_TO, WALLET, 3, block=8), "topics": [TRANSFER_TOPIC, topic(PAY_TO)]},
    ]
    node = FakeNode(answers={"eth_getLogs": lambda r: logs})
    with fake_node(node):
        found = await read(node, lambda c: c.transfers_to(WALLET, 5, 20, senders=(PAY_TO,)))
    assert [(t.value, t.block) for t in found] == [(400, 7), (500, 9)]
    assert found[0] == TransferLog(PAY_TO, WALLET.lower(), 400, "0x" + "0700" * 16, 7, 0)
    query = node.calls[-1]["params"][0]
    assert query == {
        "address": USDC,
        "topics": [TRANSFER_TOPIC, [topic(PAY_TO)], topic(WALLET)],
        "fromBlock": "0x5",
        "toBlock": "0x14",
    }


async def test_authorization_used_names_the_transaction_that_used_it():
    log = {
        "address": USDC,
        "topics": [AUTHORIZATION_USED_TOPIC, topic(WALLET), NONCE],
        "data": "0x",
        "blockNumber": "0x10",
        "logIndex": "0x1",
        "transactionHash": TX,
    }
    stranger = {**log, "topics": [AUTHORIZATION_USED_TOPIC, topic(OTHER), NONCE]}
    node = FakeNode(answers={"eth_getLogs": lambda r: [log, stranger]})
    with fake_node(node):
        found = await read(node, lambda c: c.authorization_used(WALLET, NONCE, from_block=3))
    assert [(u.tx, u.block, u.nonce) for u in found] == [(TX, 16, NONCE)]
    query = node.calls[-1]["params"][0]
    assert query["topics"] == [AUTHORIZATION_USED_TOPIC, topic(WALLET), NONCE]
    assert query["toBlock"] == "latest"


async def test_a_receipt_says_whether_it_succeeded_and_what_it_moved():
    receipt = {
        "transactionHash": TX,
        "status": "0x1",
        "blockNumber": "0x2a",
        "logs": [transfer_log(WALLET, PAY_TO, 13_500, block=42)],
    }
    answers = {"eth_getTransactionReceipt": lambda r: receipt if r["params"][0] == TX else None}
    node = FakeNode(answers=answers)
    with fake_node(node):
        async with reader(node) as chain:
            mined = await chain.receipt(TX)
            assert await chain.receipt("0x" + "00" * 32) is None
            reverted = dict(receipt, status="0x0")
            node.answers["eth_getTransactionReceipt"] = lambda r: reverted
            failed = await chain.receipt(TX)
    assert mined is not None and mined.succeeded and mined.block == 42
    assert [t.value for t in mined.transfers] == [13_500]
    assert failed is not None and not failed.succeeded


# -- a node that misbehaves ------------------------------------------------------------------


async def _error_of(answer, **kwargs) -> str:
    node = FakeNode(answers={"eth_call": answer})
    with fake_node(node):
        started = time.monotonic()
        with pytest.raises(ChainError) as caught:
            await read(node, lambda c: c.balance_of(WALLET), **kwargs)
        assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert "secret-api-key" not in message  # only the host is ever named
    assert "127.0.0.1" in message
    return message


@pytest.mark.parametrize(
    ("result", "said"),
    [
        ("0x", "0 bytes, not the 32 of a number (is the token at that address"),
        ("0x" + "f" * 66, "33 bytes"),
        ("0xZZ", "not hex data"),
        ("0x123", "not hex data"),
        (12, "not hex data"),
        ({"a": 1}, "not hex data"),
        ("0x" + "1" * 100_000, "not the 32 of a number"),
    ],
)
async def test_a_balance_that_is_not_one_word_is_an_error(result, said):
    assert said in await _error_of(lambda r: result)


async def test_a_body_past_the_limit_is_an_error_naming_the_limit():
    big = Raw([b'{"jsonrpc": "2.0", "id": 2, "result": "0x' + b"0" * 3000 + b'"}'])
    message = await _error_of(lambda r: big, limits=Limits(document_bytes=2048))
    assert "sent more than max_document_bytes (2,048 bytes)" in message


async def test_json_nested_past_any_stack_is_an_error_not_a_crash():
    deep = Raw([b'{"jsonrpc": "2.0", "id": 2, "result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"])
    assert "nested too deeply" in await _error_of(lambda r: deep)


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Raw([b"<html>busy</html>"]), "not JSON"),
        (Raw([b'{"jsonrpc": "2.0", "id": 99, "result": "0x"}']), "something else than its answer"),
        (Raw([b'{"jsonrpc": "2.0", "id": 2}']), "without a result"),
        (Raw([b"gateway down"], status=502), "answered 502 Bad Gateway to eth_call"),
        (
            Raw([b'{"jsonrpc":"2.0","id":2,"error":{"message":"rate \\u001b[2Jlimited"}}']),
            "refused eth_call: rate limited.",
        ),
    ],
)
async def test_a_malformed_reply_is_one_line(reply, said):
    message = await _error_of(lambda r: reply)
    assert said in message
    assert "\x1b" not in message


async def test_a_reply_that_stops_coming_ends_at_the_idle_limit():
    drip = Raw([b'{"jsonrpc": "2.0", "id": 2, "result": "0x', b"00" * 32 + b'"}'], pause=3.0)
    assert "stopped sending its answer to eth_call" in await _error_of(lambda r: drip)


async def test_headers_that_never_come_end_at_the_first_byte_limit():
    def slow(request):
        time.sleep(2.0)
        return word(1)

    assert "did not answer eth_call within 0.5 s" in await _error_of(slow)


async def test_a_closed_port_is_an_error_at_once():
    async with UsdcReader("http://127.0.0.1:9/rpc", BASE, timeouts=FAST) as chain:
        with pytest.raises(ChainError, match="could not be reached"):
            await chain.balance_of(WALLET)


@pytest.mark.parametrize(
    "logs",
    [
        "0x",
        [1],
        [{**transfer_log(PAY_TO, WALLET, 1, block=1), "transactionHash": "0x12"}],
        [{**transfer_log(PAY_TO, WALLET, 1, block=1), "data": "0x" + "00" * 64}],
        [{**transfer_log(PAY_TO, WALLET, 1, block=1), "blockNumber": "0x" + "1" * 65}],
        [{**transfer_log(PAY_TO, WALLET, 1, block=1), "topics": [TRANSFER_TOPIC, "0x1", "0x2"]}],
    ],
)
async def test_malformed_logs_are_an_error(logs):
    node = FakeNode(answers={"eth_getLogs": lambda r: logs})
    with fake_node(node), pytest.raises(ChainError, match="sent an answer that is wrong"):
        await read(node, lambda c: c.transfers_to(WALLET, 0))


# -- the balance kept for the check before signing -----------------------------------------------


async def test_a_fresh_figure_serves_one_check_then_is_read_again():
    node = FakeNode(answers={"eth_call": lambda r: word(7_000_000)})
    with fake_node(node):
        watch = BalanceWatch({"base": node.url}, timeouts=FAST)
        try:
            first = await watch.read(BASE, WALLET)
            assert first.atomic == 7_000_000 and watch.last(BASE, WALLET) == first
            assert await watch.funds(BASE, WALLET) == 7_000_000
            assert node.methods().count("eth_call") == 1
            assert await watch.funds(BASE, WALLET) == 7_000_000
            assert node.methods().count("eth_call") == 2  # a figure serves one payment
        finally:
            await watch.aclose()


async def test_a_slow_read_is_given_a_short_grace_then_left_to_finish():
    def slow(request):
        time.sleep(0.6)
        return word(5)

    node = FakeNode(answers={"eth_call": slow})
    with fake_node(node):
        watch = BalanceWatch({"base": node.url}, grace_seconds=0.1)
        try:
            started = time.monotonic()
            assert await watch.funds(BASE, WALLET) is None
            assert time.monotonic() - started < 0.5
            await asyncio.sleep(1.0)
            assert watch.last(BASE, WALLET).atomic == 5  # it came, for the next look
        finally:
            await watch.aclose()


async def test_an_unreadable_balance_is_unknown_with_its_reason():
    watch = BalanceWatch({"base": "http://127.0.0.1:9/rpc"}, timeouts=FAST)
    try:
        assert await watch.funds(BASE, WALLET) is None
        balance = watch.last(BASE, WALLET)
        assert balance is not None and not balance.known
        assert "could not be reached" in balance.error
        # A network without an endpoint has no balance to read.
        assert await watch.funds(BASE_SEPOLIA, WALLET) is None
        assert "no RPC endpoint" in watch.last(BASE_SEPOLIA, WALLET).error
    finally:
        await watch.aclose()


def test_the_fake_node_answers_like_a_node():
    # The helper's own envelope: what every test above relies on.
    assert json.loads(envelope({"id": 3}, "0x1").pieces[0]) == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": "0x1",
    }


async def test_the_latest_block_gives_the_chains_number_and_clock():
    answers = {"eth_getBlockByNumber": lambda r: {"number": "0x10", "timestamp": "0x6553f100"}}
    node = FakeNode(answers=answers)
    with fake_node(node):
        block = await read(node, lambda c: c.latest_block())
        assert (block.number, block.timestamp) == (16, 0x6553F100)
        assert node.calls[-1]["params"] == ["latest", False]  # hashes only, never whole txs
        node.answers["eth_getBlockByNumber"] = lambda r: {"number": "0x10"}
        with pytest.raises(ChainError, match="the block's time is not a number"):
            await read(node, lambda c: c.latest_block())
