"""Benchmark of `xrouter-tui proxy`; prints figures, asserts nothing about speed.

    python benchmarks/bench_proxy.py [--deltas 5000] [--rounds 7]

Time to the first byte of the answer and total time of one streamed, paid answer of `--deltas`
pieces: through the proxy (one POST with the token; the proxy pays), side by side with a client
paying the local router directly (402, sign, paid POST). Goal: the proxy adds <= 10 ms to the
first byte and <= 10% to the total. The router and the proxy each run in a process of their
own, as they would for real, so none shares the measuring client's event loop or GIL.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from local_router import local_router  # beside this file

from xrouter_tui.payments import BASE_SEPOLIA, SpendingPolicy, parse_challenge, sign_payment

MODEL = "openai/gpt-4o-mini"  # cheap: 5,000 tokens up front stay under the default caps
TOKEN = "bench-proxy-token"
POLICY = SpendingPolicy(networks=(BASE_SEPOLIA,))
PROGRAM = str(Path(sys.executable).with_name("xrouter-tui"))


@contextmanager
def proxy(router_url: str, key: str) -> Iterator[str]:
    """Run `xrouter-tui proxy` against the router, with a history of its own; yield its /v1."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder, "config")
        config.mkdir()
        (config / "config.toml").write_text('allowed_networks = ["base-sepolia"]\n')
        env = {
            **os.environ,
            "XROUTER_PRIVATE_KEY": key,
            "XROUTER_CONFIG_DIR": str(config),
            "XROUTER_DATA_DIR": str(Path(folder, "data")),
        }
        command = [PROGRAM, "proxy", "--base-url", router_url, "--port", "0", "--token", TOKEN]
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a line per request: not what is measured
            text=True,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.strip().startswith("OPENAI_BASE_URL="):
                    yield line.strip().split("=", 1)[1]
                    break
            else:
                sys.exit("the proxy did not start")
        finally:
            process.terminate()
            process.wait(timeout=10)


def body(deltas: int) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long answer."}],
        "max_tokens": deltas,
        "stream": True,
    }


def read_stream(response: httpx.Response, start: float) -> tuple[float, float, int]:
    """(seconds to the first byte, seconds to the end, content pieces) of a streamed answer."""
    if response.status_code != 200:
        response.read()
        sys.exit(f"HTTP {response.status_code}: {response.text[:300]}")
    first: float | None = None
    pieces = 0
    for line in response.iter_lines():
        if first is None:
            first = time.perf_counter() - start
        # Every content piece is one data line with '"content":' in its delta.
        if line.startswith("data: ") and '"content":' in line:
            pieces += 1
    assert first is not None
    return first, time.perf_counter() - start, pieces


def direct(http: httpx.Client, account: LocalAccount, deltas: int) -> tuple[float, float, int]:
    """A client paying the router itself: unpaid POST, 402, sign, paid streaming POST."""
    start = time.perf_counter()
    request = body(deltas)
    challenge = http.post("/v1/chat/completions", json=request)
    quote = POLICY.choose(parse_challenge(challenge.headers, challenge.content))
    signed = sign_payment(account, quote)
    headers = {signed.header_name: signed.header_value}
    with http.stream("POST", "/v1/chat/completions", json=request, headers=headers) as response:
        return read_stream(response, start)


def proxied(http: httpx.Client, deltas: int) -> tuple[float, float, int]:
    """The same answer through the proxy: one POST with the token."""
    start = time.perf_counter()
    with http.stream("POST", "/chat/completions", json=body(deltas)) as response:
        return read_stream(response, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")

    account = Account.create()
    router_options = ("--deltas", str(args.deltas), "--network", "base-sepolia")
    with (
        local_router(*router_options) as router_url,
        proxy(router_url, account.key.hex()) as proxy_url,
        httpx.Client(base_url=router_url, timeout=60) as to_router,
        httpx.Client(
            base_url=proxy_url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as to_proxy,
    ):
        for _ in range(2):  # warm up both paths (connections, imports, the router's caches)
            direct(to_router, account, args.deltas)
            proxied(to_proxy, args.deltas)
        rounds: dict[str, list[tuple[float, float]]] = {"direct": [], "proxy": []}
        for _ in range(args.rounds):  # interleaved: drift in the machine's load hits both
            for name, run in (
                ("direct", lambda: direct(to_router, account, args.deltas)),
                ("proxy", lambda: proxied(to_proxy, args.deltas)),
            ):
                first, total, pieces = run()
                if pieces != args.deltas:
                    sys.exit(f"{name}: {pieces} content pieces arrived, expected {args.deltas}")
                rounds[name].append((first * 1000, total * 1000))

    medians = {
        name: (statistics.median(f for f, _ in times), statistics.median(t for _, t in times))
        for name, times in rounds.items()
    }
    (direct_first, direct_total), (proxy_first, proxy_total) = medians["direct"], medians["proxy"]
    print(f"{args.deltas:,}-delta paid stream, median of {args.rounds} rounds:")
    print(f"  {'':8} {'first byte':>12} {'total':>12}")
    for name, (first, total) in medians.items():
        print(f"  {name:8} {first:9.2f} ms {total:9.1f} ms")
    print(
        f"  the proxy adds {proxy_first - direct_first:+.2f} ms to the first byte (goal <= 10 ms)"
        f" and {(proxy_total / direct_total - 1) * 100:+.1f}% to the total (goal <= 10%)"
    )
    for name, times in rounds.items():
        figures = ", ".join(f"{f:.1f}/{t:.0f}" for f, t in times)
        print(f"  rounds, {name} (first byte/total ms): {figures}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
