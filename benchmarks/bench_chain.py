"""What the local router's chain costs the demo; prints, asserts nothing.

    python benchmarks/bench_chain.py [--rounds 7] [--payments 40]

1. The demo's extra start-up for the chain, in fresh processes that have loaded the demo's
   router and client already (the demo pays this once per run, at its first payment or balance
   read): loading eth-tester and py-evm, building the genesis with USDC at Base Sepolia's
   address, and minting the throwaway wallet's $5.
2. Settling one payment on it: `transferWithAuthorization` simulated, signed by the dev key,
   mined and its receipt read (what the router does before it answers), and the refund's
   transfer (sent after the answer).
3. One paid request over loopback HTTP (a plain JSON answer of 16 tokens): the router with
   the chain against the router that only verifies, the difference being what a paid turn of
   the demo waits for the chain. Interleaved, so a busy moment weighs on both alike.

Every figure is a median.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from decimal import Decimal

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data

from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.token import Authorization
from xrouter_tui.payments import (
    BASE_SEPOLIA,
    SpendingPolicy,
    parse_challenge,
    sign_payment,
)

PYTHON = sys.executable
POLICY = SpendingPolicy(networks=(BASE_SEPOLIA,), max_per_request_usd=Decimal("5"))
REQUEST = {
    "messages": [{"role": "user", "content": "Say hello."}],
    "model": "openai/gpt-4o-mini",
    "max_tokens": 16,
}

# What the demo adds at its first payment: the chain, its genesis and the wallet's $5, in a
# process that already runs the demo's router and its client (their modules loaded).
CHAIN_START = """
import time
import xrouter_tui.api, xrouter_tui.commands.demo, xrouter_tui.devserver.server
start = time.perf_counter()
from xrouter_tui.devserver.chain import LocalChain
loaded = time.perf_counter()
from xrouter_tui.payments import BASE_SEPOLIA
chain = LocalChain(BASE_SEPOLIA)
chain.fund({"0x70997970C51812dc3A010C7d01b50e0d17dc79C8": 5_000_000})
done = time.perf_counter()
print(loaded - start, done - loaded)
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def chain_start(rounds: int) -> None:
    bare, imports, genesis, whole = [], [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = subprocess.run(
            [PYTHON, "-c", CHAIN_START], check=True, capture_output=True, text=True
        ).stdout
        whole.append(time.perf_counter() - start)
        loaded, built = (float(word) for word in out.split())
        imports.append(loaded)
        genesis.append(built)
    imported, built = statistics.median(imports), statistics.median(genesis)
    print("1. the demo's extra start-up for the chain (fresh processes, the router loaded)")
    print(f"   load eth-tester + py-evm          {ms(imported)}")
    print(f"   genesis + mint the wallet's $5    {ms(built)}")
    print(f"   together                          {ms(imported + built)}")
    print(f"   whole process                     {ms(statistics.median(whole))}")
    print(f"   bare python                       {ms(statistics.median(bare))}")


def authorization(account, chain, amount: int) -> Authorization:
    now = int(time.time())
    nonce = "0x" + secrets.token_hex(32)
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": BASE_SEPOLIA.usdc.eip712_name,
            "version": "2",
            "chainId": chain.chain_id,
            "verifyingContract": chain.token,
        },
        "message": {
            "from": account.address,
            "to": chain.account.address,
            "value": amount,
            "validAfter": now - 600,
            # Far enough: every mined block moves the chain's clock a second at least.
            "validBefore": now + 3600,
            "nonce": bytes.fromhex(nonce[2:]),
        },
    }
    signature = account.sign_message(encode_typed_data(full_message=typed)).signature
    return Authorization(
        account.address,
        chain.account.address,
        amount,
        now - 600,
        now + 3600,
        nonce,
        "0x" + signature.hex(),
    )


def settling(payments: int) -> None:
    with start_dev_server(DevServerConfig(network="base-sepolia", chain=True)) as server:
        chain = server.chain
        account = Account.create()
        chain.fund({account.address: 100_000_000})
        settle, refund = [], []
        for _ in range(payments):
            signed = authorization(account, chain, 15_000)
            start = time.perf_counter()
            settlement = chain.settle(signed)
            settle.append(time.perf_counter() - start)
            assert settlement.outcome is not None and settlement.outcome.ok, settlement
            start = time.perf_counter()
            outcome = chain.transfer(account.address, 11_000)
            refund.append(time.perf_counter() - start)
            assert outcome.ok
    print(f"2. on the chain, {payments} payments")
    print(f"   settle one (simulate, send, mine, receipt) {ms(statistics.median(settle))}")
    print(f"   refund one (transfer, mine, receipt)       {ms(statistics.median(refund))}")


def paid_requests(rounds: int) -> None:
    timings: dict[bool, list[float]] = {False: [], True: []}
    servers = {
        chain: start_dev_server(
            DevServerConfig(network="base-sepolia", chain=chain, reply_deltas=16)
        )
        for chain in (False, True)
    }
    try:
        account = Account.create()
        servers[True].config.fund = {account.address: 100_000_000}
        assert servers[True].chain is not None  # started and funded before the clock runs
        with httpx.Client(timeout=30) as client:
            for _ in range(rounds):
                for chain, server in servers.items():
                    url = server.url + "/v1/chat/completions"
                    challenge = client.post(url, json=REQUEST)
                    payment = sign_payment(
                        account,
                        POLICY.choose(parse_challenge(challenge.headers, challenge.content)),
                    )
                    start = time.perf_counter()
                    answer = client.post(
                        url, json=REQUEST, headers={payment.header_name: payment.header_value}
                    )
                    timings[chain].append(time.perf_counter() - start)
                    assert answer.status_code == 200, answer.text
    finally:
        for server in servers.values():
            server.stop()
    verified, settled = (statistics.median(timings[key]) for key in (False, True))
    print(f"3. one paid request over loopback, {rounds} rounds")
    print(f"   verify only                       {ms(verified)}")
    print(f"   settled on the chain              {ms(settled)}")
    print(f"   the chain's share                 {ms(settled - verified)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--payments", type=int, default=40)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}")
    chain_start(args.rounds)
    settling(args.payments)
    paid_requests(max(args.rounds, 15))


if __name__ == "__main__":
    main()
