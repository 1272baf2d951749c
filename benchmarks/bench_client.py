"""Benchmarks of the paying client; prints figures, asserts nothing.

    python benchmarks/bench_client.py [--deltas 20000] [--rounds 5]

1. Median time to sign and encode one payment (goal: <= 1 ms).
2. Events per second of `RouterClient.stream_chat` over loopback for one long stream, side by
   side with a bare httpx + httpx-sse loop doing the same payment and reading the same stream
   (goal: >= 0.8x). The local router runs in its own process so it does not share our GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
from eth_account import Account
from httpx_sse import EventSource
from local_router import local_router  # beside this file

from xrouter_tui.api import Delta, RouterClient
from xrouter_tui.payments import (
    BASE,
    BASE_SEPOLIA,
    SpendingPolicy,
    parse_challenge,
    sign_payment,
)

POLICY = SpendingPolicy(networks=(BASE, BASE_SEPOLIA))
MESSAGES = [{"role": "user", "content": "Write a long answer with tables and code."}]
MODEL = "openai/gpt-4o-mini"


def bench_signing(samples: int = 2000) -> tuple[float, float]:
    """Median and 95th percentile, in ms, of signing + encoding one v1 payment."""
    body = {
        "x402Version": 1,
        "accepts": [
            {
                "scheme": "exact",
                "network": "base",
                "maxAmountRequired": "135168",
                "resource": "https://api.x-router.ai/v1/chat/completions",
                "payTo": "0xeb4da07be74b26b2966b3cd07842cade70e47d53",
                "maxTimeoutSeconds": 120,
                "asset": BASE.usdc.address,
                "extra": {"name": "USD Coin", "version": "2"},
            }
        ],
    }
    quote = POLICY.choose(parse_challenge({}, json.dumps(body)))
    account = Account.create()
    for _ in range(50):
        sign_payment(account, quote)
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        sign_payment(account, quote)
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000


async def client_turn(url: str, account, max_tokens: int) -> tuple[int, float]:
    """One whole paid turn through `stream_chat`: (deltas, seconds)."""
    start = time.perf_counter()
    deltas = 0
    async with RouterClient(url, account=account, policy=POLICY) as client:
        async for event in client.stream_chat(MESSAGES, model=MODEL, max_tokens=max_tokens):
            if type(event) is Delta:
                deltas += 1
    return deltas, time.perf_counter() - start


async def bare_turn(url: str, account, max_tokens: int) -> tuple[int, float]:
    """The same turn by hand: 402, sign, paid request, httpx-sse, json.loads per event."""
    start = time.perf_counter()
    deltas = 0
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        challenge = await http.post("/v1/chat/completions", json=body)
        signed = sign_payment(
            account, POLICY.choose(parse_challenge(challenge.headers, challenge.content))
        )
        headers = {signed.header_name: signed.header_value}
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
            async for sse in EventSource(resp).aiter_sse():
                if sse.data == "[DONE]":
                    break
                chunk = json.loads(sse.data)
                choices = chunk.get("choices")
                if choices and choices[0]["delta"].get("content"):
                    deltas += 1
    return deltas, time.perf_counter() - start


async def bench_streams(url: str, deltas: int, rounds: int) -> None:
    account = Account.create()
    await client_turn(url, account, deltas)  # warm up both paths and the router
    await bare_turn(url, account, deltas)
    ours, bare = [], []
    for _ in range(rounds):  # interleaved so drift in the machine's load hits both alike
        count, seconds = await client_turn(url, account, deltas)
        assert count == deltas, f"stream_chat saw {count} deltas, expected {deltas}"
        ours.append(count / seconds)
        count, seconds = await bare_turn(url, account, deltas)
        assert count == deltas, f"the bare loop saw {count} deltas, expected {deltas}"
        bare.append(count / seconds)
    ours_median, bare_median = statistics.median(ours), statistics.median(bare)
    print(f"stream_chat, {deltas:,} deltas over loopback: {ours_median:,.0f} events/s (median)")
    print(f"bare httpx + httpx-sse loop, same stream:      {bare_median:,.0f} events/s (median)")
    print(f"ratio stream_chat / bare: {ours_median / bare_median:.2f}x (goal >= 0.8x)")
    print("  rounds, stream_chat:", ", ".join(f"{x:,.0f}" for x in ours))
    print("  rounds, bare loop:  ", ", ".join(f"{x:,.0f}" for x in bare))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    median, p95 = bench_signing()
    print(f"sign + encode one payment: median {median:.3f} ms, p95 {p95:.3f} ms (goal <= 1 ms)")

    with local_router("--deltas", str(args.deltas), "--network", "base-sepolia") as url:
        asyncio.run(bench_streams(url, args.deltas, args.rounds))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
