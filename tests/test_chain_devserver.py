"""The local router's chain: a real EVM (py-evm) with USDC at its real address, settling every
payment, refunding the unused part, and serving JSON-RPC at /rpc, all over real loopback HTTP.

One router and one chain serve the module; each test pays from wallets of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from tests.test_devserver import CHAT, stream_body, wait_for
from xrouter_tui.api import Delta, Done, Paid, PaymentRejected, RouterClient, Usage
from xrouter_tui.devserver import (
    CHAIN_PAY_TO,
    DevServerConfig,
    RunningDevServer,
    add_arguments,
    config_from_args,
    start_dev_server,
)
from xrouter_tui.devserver import token as usdc
from xrouter_tui.devserver.catalog import find_model, price_used
from xrouter_tui.devserver.chain import DEV_KEY
from xrouter_tui.payments import (
    BASE,
    BASE_SEPOLIA,
    SignedPayment,
    SpendingPolicy,
    parse_challenge,
    sign_payment,
)
from xrouter_tui.payments.reasons import NONCE_ALREADY_USED

MODEL = "openai/gpt-4o-mini"
QUESTION = [{"role": "user", "content": "What does the chain say?"}]
POLICY = SpendingPolicy(networks=(BASE_SEPOLIA, BASE), max_per_request_usd=Decimal("5"))
DOLLAR = 1_000_000
INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
ZERO_TOPIC = "0x" + "00" * 32


@pytest.fixture(scope="module")
def running() -> Iterator[RunningDevServer]:
    with start_dev_server(DevServerConfig(chain=True)) as server:
        yield server


@pytest.fixture
def dev(running: RunningDevServer) -> RunningDevServer:
    assert wait_for(lambda: running.state.open_streams == 0)
    running.reset(DevServerConfig(chain=True, network="base-sepolia", reply_deltas=30))
    return running


def funded(dev: RunningDevServer, dollars: Decimal | int = 1) -> Any:
    """A new wallet holding `dollars` of the chain's USDC."""
    account = Account.create()
    dev.config.fund = {account.address: int(Decimal(dollars) * DOLLAR)}
    assert dev.chain is not None  # mints
    return account


def rpc(dev: RunningDevServer, method: str, *params: Any) -> Any:
    """One JSON-RPC call over HTTP; the node's error object is returned as it came."""
    response = httpx.post(
        dev.rpc_url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["jsonrpc"] == "2.0" and document["id"] == 7
    return document.get("result", document.get("error"))


def call(dev: RunningDevServer, data: bytes) -> str:
    token = dev.config.resolved_network.usdc.address
    return rpc(dev, "eth_call", {"to": token, "data": "0x" + data.hex()}, "latest")


def balance(dev: RunningDevServer, owner: str) -> int:
    return int(call(dev, usdc.balance_of_call(owner)), 16)


def used(dev: RunningDevServer, payer: str, nonce: str) -> bool:
    return int(call(dev, usdc.authorization_state_call(payer, nonce)), 16) == 1


def transfers(dev: RunningDevServer, sender: str | None, receiver: str) -> list[dict[str, Any]]:
    topics = [usdc.TRANSFER_TOPIC, _topic(sender) if sender else None, _topic(receiver)]
    address = dev.config.resolved_network.usdc.address
    return rpc(dev, "eth_getLogs", {"fromBlock": "0x0", "address": address, "topics": topics})


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


async def turn(dev: RunningDevServer, account: Any) -> list[Any]:
    async with RouterClient(dev.url, account=account, policy=POLICY) as client:
        return [event async for event in client.stream_chat(QUESTION, model=MODEL, max_tokens=256)]


def signed(dev: RunningDevServer, account: Any, request: dict[str, Any]) -> SignedPayment:
    response = httpx.post(dev.url + CHAT, json=request)
    assert response.status_code == 402
    return sign_payment(account, POLICY.choose(parse_challenge(response.headers, response.content)))


def paid_request(
    dev: RunningDevServer, payment: SignedPayment, request: dict[str, Any]
) -> httpx.Response:
    return httpx.post(
        dev.url + CHAT, json=request, headers={payment.header_name: payment.header_value}
    )


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 402, response.text
    return response.json()["error"]


# -- the token and its chain ----------------------------------------------------------------


def test_the_token_recompiles_to_the_checked_in_code_and_layout():
    try:
        from vyper import compiler
    except ImportError:
        if os.environ.get("XROUTER_REQUIRE_VYPER") == "1":
            pytest.fail("vyper is not installed, and XROUTER_REQUIRE_VYPER=1")
        pytest.skip("vyper is not installed (pip install -e '.[test]')")
    out = compiler.compile_code(
        usdc.SOURCE_PATH.read_text(), output_formats=["bytecode_runtime", "layout"]
    )
    assert bytes.fromhex(out["bytecode_runtime"][2:]) == usdc.runtime_code()
    layout = out["layout"]["storage_layout"]
    assert {name: entry["slot"] for name, entry in layout.items()} == usdc.STORAGE_SLOTS


def test_the_dev_key_is_the_chain_s_pay_to():
    assert Account.from_key(DEV_KEY).address == CHAIN_PAY_TO
    assert DevServerConfig(chain=True).payee == CHAIN_PAY_TO
    assert DevServerConfig().payee == DevServerConfig().pay_to != CHAIN_PAY_TO


@pytest.mark.parametrize("network", [BASE_SEPOLIA, BASE], ids=lambda net: net.v1_name)
def test_the_chain_is_the_configured_network_with_usdc_at_its_address(dev, network):
    dev.config.network = network.v1_name
    try:
        assert rpc(dev, "eth_chainId") == hex(network.chain_id)
        assert rpc(dev, "net_version") == str(network.chain_id)
        assert len(rpc(dev, "eth_getCode", network.usdc.address, "latest")) > 1000
        # The domain the token checks signatures against is the one the 402's extra names.
        response = httpx.post(dev.url + CHAT, json={"messages": QUESTION, "max_tokens": 16})
        extra = response.json()["accepts"][0]["extra"]
        domain = {
            "name": extra["name"],
            "version": extra["version"],
            "chainId": network.chain_id,
            "verifyingContract": network.usdc.address,
        }
        separator = encode_typed_data(domain, {"Nothing": []}, {}).header
        assert call(dev, keccak(text="DOMAIN_SEPARATOR()")[:4]) == "0x" + separator.hex()
        name = bytes.fromhex(call(dev, keccak(text="name()")[:4])[2:])
        assert network.usdc.eip712_name.encode() in name
    finally:
        dev.config.network = "base-sepolia"


def test_a_funded_wallet_s_balance_reads_over_json_rpc(dev):
    account = funded(dev, Decimal("2.5"))
    assert balance(dev, account.address) == 2_500_000
    assert balance(dev, Account.create().address) == 0
    minted = transfers(dev, None, account.address)
    assert len(minted) == 1 and minted[0]["topics"][1] == ZERO_TOPIC
    assert int(minted[0]["data"], 16) == 2_500_000
    # Funding is once per address, however often the chain is used.
    dev.chain.fund({account.address: DOLLAR})
    assert balance(dev, account.address) == 2_500_000


# -- payments settle on it --------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_a_paid_turn_moves_the_balance_by_the_amount_less_the_refund(dev, version):
    dev.config.x402_version = version
    account = funded(dev, 1)
    events = asyncio.run(turn(dev, account))
    paid = events[0]
    assert isinstance(paid, Paid) and paid.receipt is not None and paid.receipt.success
    assert isinstance(events[-1], Done)
    amount = paid.payment.amount
    usage = next(event for event in events if isinstance(event, Usage))
    model = find_model(MODEL)
    assert model is not None
    refund = amount - price_used(model, usage.prompt_tokens, usage.completion_tokens)
    assert 0 < refund < amount

    receipt = rpc(dev, "eth_getTransactionReceipt", paid.receipt.transaction)
    assert receipt["status"] == "0x1" and receipt["transactionHash"] == paid.receipt.transaction
    assert receipt["to"] == BASE_SEPOLIA.usdc.address and receipt["from"] == CHAIN_PAY_TO
    used_log, transfer_log = receipt["logs"]
    assert used_log["topics"][0] == usdc.AUTHORIZATION_USED_TOPIC
    assert used_log["topics"][2] == paid.payment.nonce.lower()
    assert transfer_log["topics"] == [
        usdc.TRANSFER_TOPIC,
        _topic(account.address),
        _topic(CHAIN_PAY_TO),
    ]
    assert int(transfer_log["data"], 16) == amount
    assert used(dev, account.address, paid.payment.nonce)

    assert wait_for(lambda: dev.state.refund_of(account.address, paid.payment.nonce) is not None)
    sent = dev.state.refund_of(account.address, paid.payment.nonce)
    assert sent is not None and sent.amount == refund and sent.status == 1
    assert balance(dev, account.address) == DOLLAR - amount + refund
    back = transfers(dev, CHAIN_PAY_TO, account.address)
    assert [(log["transactionHash"], int(log["data"], 16)) for log in back] == [
        (sent.transaction, refund)
    ]
    assert rpc(dev, "eth_getTransactionReceipt", sent.transaction)["status"] == "0x1"


def test_a_replayed_authorization_is_refused_as_used_by_the_chain(dev):
    account = funded(dev, 1)
    request = stream_body(model=MODEL)
    payment = signed(dev, account, request)
    first = paid_request(dev, payment, request)
    assert first.status_code == 200 and "[DONE]" in first.text
    assert refusal(paid_request(dev, payment, request)) == NONCE_ALREADY_USED
    # A router that forgot it (its records gone) still cannot take it twice: the chain refuses.
    dev.state.reset()
    assert refusal(paid_request(dev, payment, request)) == NONCE_ALREADY_USED
    assert dev.state.rejections == [NONCE_ALREADY_USED] and dev.state.payments == []
    assert len(transfers(dev, account.address, CHAIN_PAY_TO)) == 1


def test_an_underfunded_wallet_is_refused_and_nothing_moves(dev):
    account = funded(dev, Decimal("0.00001"))
    with pytest.raises(PaymentRejected) as refused:
        asyncio.run(turn(dev, account))
    assert refused.value.code == INSUFFICIENT_BALANCE
    nonce = refused.value.payment.nonce
    assert not used(dev, account.address, nonce)
    assert balance(dev, account.address) == 10
    assert transfers(dev, account.address, CHAIN_PAY_TO) == []
    assert dev.state.payments == [] and dev.state.rejections == [INSUFFICIENT_BALANCE]


def test_drop_paid_settled_charges_and_a_resend_is_answered_without_a_second_charge(dev):
    account = funded(dev, 1)
    request = stream_body(model=MODEL)
    payment = signed(dev, account, request)
    dev.config.faults = {"drop-paid-settled"}
    with pytest.raises(httpx.RemoteProtocolError):
        paid_request(dev, payment, request)
    assert used(dev, account.address, payment.nonce)
    assert balance(dev, account.address) == DOLLAR - payment.amount
    dev.config.faults = set()
    again = paid_request(dev, payment, request)
    assert again.status_code == 200 and "[DONE]" in again.text
    assert len(transfers(dev, account.address, CHAIN_PAY_TO)) == 1
    assert len(dev.state.payments) == 1 and len(dev.state.resends) == 1


def test_drop_paid_unsettled_leaves_the_authorization_unused(dev):
    account = funded(dev, 1)
    request = stream_body(model=MODEL)
    payment = signed(dev, account, request)
    dev.config.faults = {"drop-paid-unsettled"}
    with pytest.raises(httpx.RemoteProtocolError):
        paid_request(dev, payment, request)
    assert not used(dev, account.address, payment.nonce)
    assert balance(dev, account.address) == DOLLAR
    assert dev.state.payments == [] and dev.state.dropped_payments == [
        (account.address, payment.nonce)
    ]


def authorize(account: Any, chain: Any, value: int, valid_before: int) -> usdc.Authorization:
    """An EIP-3009 authorization to pay the chain's dev account, signed by `account`."""
    nonce = os.urandom(32)
    fields = [
        ("from", "address"),
        ("to", "address"),
        ("value", "uint256"),
        ("validAfter", "uint256"),
        ("validBefore", "uint256"),
        ("nonce", "bytes32"),
    ]
    message = {
        "from": account.address,
        "to": chain.account.address,
        "value": value,
        "validAfter": 0,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    domain = {
        "name": chain.network.usdc.eip712_name,
        "version": "2",
        "chainId": chain.chain_id,
        "verifyingContract": chain.token,
    }
    types = {"TransferWithAuthorization": [{"name": n, "type": t} for n, t in fields]}
    signature = account.sign_message(encode_typed_data(domain, types, message)).signature
    return usdc.Authorization(
        account.address,
        chain.account.address,
        value,
        0,
        valid_before,
        "0x" + nonce.hex(),
        "0x" + signature.hex(),
    )


def test_the_chain_s_own_clock_judges_validity_and_keeps_up_with_the_wall_clock(monkeypatch):
    from xrouter_tui.devserver import chain as chain_module

    chain = chain_module.LocalChain(BASE)  # a chain of its own: its clock is moved
    account = Account.create()
    chain.fund({account.address: DOLLAR})
    latest = int(chain.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    soon = authorize(account, chain, 1000, latest + 30)
    chain.advance_clock(60)
    expired = chain.settle(soon)
    assert expired.outcome is None and "authorization is expired" in (expired.revert or "")
    assert not chain.authorization_state(account.address, soon.nonce)
    good = chain.settle(authorize(account, chain, 1000, latest + 3600))
    assert good.outcome is not None and good.outcome.ok
    assert chain.balance_of(account.address) == DOLLAR - 1000
    # Read after a quiet spell, the chain makes an empty block, as Base does every 2 seconds.
    monkeypatch.setattr(chain_module, "BLOCK_SECONDS", -3600)
    before = int(chain.rpc("eth_blockNumber", []), 16)
    assert int(chain.rpc("eth_blockNumber", []), 16) == before + 1
    chain.close()


# -- JSON-RPC as a node answers it ------------------------------------------------------------


def test_json_rpc_errors_and_batches_are_node_shaped(dev):
    account = funded(dev, 1)
    error = rpc(dev, "eth_mine")
    assert error["code"] == -32601
    assert rpc(dev, "eth_getBalance", "0x1234")["code"] == -32602
    assert rpc(dev, "eth_getTransactionReceipt", "0x" + "ab" * 32) is None
    assert rpc(dev, "eth_getBlockByNumber", hex(10**6), False) is None
    latest = rpc(dev, "eth_getBlockByNumber", "latest", False)
    assert latest["number"] == rpc(dev, "eth_blockNumber") and latest["timestamp"].startswith("0x")
    assert int(rpc(dev, "eth_getBalance", CHAIN_PAY_TO, "latest"), 16) > 10**18

    # A transfer the token refuses: reverted, with USDC's reason, as geth says it.
    data = usdc.transfer_call(CHAIN_PAY_TO, 2 * DOLLAR)
    reverted = rpc(
        dev,
        "eth_call",
        {"from": account.address, "to": BASE_SEPOLIA.usdc.address, "data": "0x" + data.hex()},
    )
    assert reverted["code"] == 3
    assert reverted["message"] == "execution reverted: ERC20: transfer amount exceeds balance"
    assert reverted["data"].startswith("0x08c379a0")

    batch = httpx.post(
        dev.rpc_url,
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": "two", "method": "eth_blockNumber"},
            {"jsonrpc": "1.0", "id": 3, "method": "eth_chainId"},
        ],
    ).json()
    assert [answer["id"] for answer in batch] == [1, "two", None]
    assert batch[0]["result"] == hex(BASE_SEPOLIA.chain_id) and batch[2]["error"]["code"] == -32600
    assert httpx.post(dev.rpc_url, content=b"{oops").json()["error"]["code"] == -32700


def test_without_the_chain_rpc_is_not_served_and_nothing_settles(dev):
    dev.config.chain = False
    response = httpx.post(
        dev.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == -32601
    account = Account.create()  # nothing on chain, yet the verify-only router takes it
    events = asyncio.run(turn(dev, account))
    assert isinstance(events[0], Paid) and any(isinstance(e, Delta) for e in events)
    dev.config.chain = True
    assert (
        balance(dev, account.address) == 0 and transfers(dev, account.address, CHAIN_PAY_TO) == []
    )


# -- the command line and the demo ------------------------------------------------------------


def test_chain_and_fund_options():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    address = Account.create().address
    config = config_from_args(
        parser.parse_args(["--fund", f"{address}=2.5", "--fund", f"{address}=$1"])
    )
    assert config.chain and config.fund == {address: 3_500_000}
    assert config_from_args(parser.parse_args(["--chain"])).fund == {}
    assert not config_from_args(parser.parse_args([])).chain
    for bad in ("0x12=1", f"{address}", f"{address}=-1", f"{address}=lots"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--fund", bad])


def test_the_demo_funds_its_wallet_on_its_chain():
    from xrouter_tui.commands.demo import DEMO_FUNDS_USD, demo_router

    with demo_router() as demo:
        answer = httpx.post(
            demo.rpc_url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_call",
                "params": [
                    {
                        "to": demo.network.usdc.address,
                        "data": "0x" + usdc.balance_of_call(demo.account.address).hex(),
                    },
                    "latest",
                ],
            },
        ).json()
    assert int(answer["result"], 16) == DEMO_FUNDS_USD * DOLLAR


def test_the_chain_loads_only_when_one_starts():
    script = (
        "import sys\n"
        "import xrouter_tui.devserver.app, xrouter_tui.devserver.server\n"
        "import xrouter_tui.commands.demo\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('eth_tester', 'eth', 'vyper')]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
