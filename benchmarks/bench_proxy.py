"""Benchmark of `xrouter-tui proxy`; prints figures, asserts nothing about speed.

    python benchmarks/bench_proxy.py [--deltas 5000] [--rounds 7] [--pause 0.25]

Time to the first byte of the answer and total time of one streamed, paid answer of `--deltas`
content pieces, through the proxy (one POST with the token; the proxy pays the router), side by
side with a client paying the local router directly (unpaid POST, 402, sign, paid POST; the
clock starts before the unpaid POST, as a client paying on its own would see it).
Goal: the proxy adds <= 10 ms to the first byte and <= 10% to the total.

The router and the proxy each run in a process of their own, as they would for real, so none
shares the measuring client's event loop or GIL. The client is plain sync httpx, one client per
path reused across rounds, so both paths pay for connection setup alike (only while warming).
Each timed request starts after `--pause` seconds of quiet, so work one process does after an
answer (the proxy saving it to its history) is not billed to the next request. Every answer is
checked whole (`--deltas` content pieces and [DONE]) after its clock stopped. "body reads" is how
many pieces of body the client got: the router writes one per delta, the proxy passes on in one
write what arrived together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from local_router import local_router  # beside this file

from xrouter_tui.payments import BASE_SEPOLIA, SpendingPolicy, parse_challenge, sign_payment

MODEL = "openai/gpt-4o-mini"  # cheap: 5,000 tokens paid up front stay under the default caps
TOKEN = "bench-proxy-token"
POLICY = SpendingPolicy(networks=(BASE_SEPOLIA,))
WARM_UP_ROUNDS = 2
# How long the proxy may take to print its address (imports, the wallet, the model list).
START_SECONDS = 30


class BenchFailed(Exception):
    """A path did not deliver the whole paid answer: no figure about it would mean anything."""


@dataclass(frozen=True, slots=True)
class Timing:
    """One streamed answer as the client saw it."""

    first_byte: float  # seconds from the first request sent to the first byte of the body
    total: float  # seconds from the first request sent to the end of the body
    reads: int  # pieces of body the client read: fewer, larger ones cost it less
    body: bytes

    def content_deltas(self) -> int:
        """Content pieces in the SSE body; counted after the clock stopped, so that parsing
        JSON in the client weighs on neither path's figures."""
        deltas = 0
        done = False
        for line in self.body.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                continue
            chunk: Any = json.loads(data)
            if "error" in chunk:
                raise BenchFailed(f"the stream carried an error: {data[:300]!r}")
            for choice in chunk.get("choices") or ():
                if isinstance(choice.get("delta", {}).get("content"), str):
                    deltas += 1
        if not done:
            raise BenchFailed(f"the stream ended without [DONE] after {deltas} content pieces")
        return deltas


@contextmanager
def proxy(router_url: str, key: str) -> Iterator[str]:
    """Run `xrouter-tui proxy` against the router with a config and history of its own; yield
    its OPENAI_BASE_URL. Stopped on the way out, errors included."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder, "config")
        config.mkdir()
        # The local router asks for base-sepolia, which the default config does not allow.
        (config / "config.toml").write_text('allowed_networks = ["base-sepolia"]\n')
        env = {
            **os.environ,
            "XROUTER_PRIVATE_KEY": key,  # no keyring needed
            "XROUTER_CONFIG_DIR": str(config),
            "XROUTER_DATA_DIR": str(Path(folder, "data")),
        }
        env.pop("XROUTER_DEBUG", None)  # debug logging would be measured too
        command = [sys.executable, "-m", "xrouter_tui", "proxy", "--base-url", router_url]
        command += ["--port", "0", "--token", TOKEN]
        # Its log (a line per request) goes to a file: shown if it fails, never a full pipe.
        log_path = Path(folder, "proxy.log")
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        try:
            yield _proxy_address(process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _proxy_address(process: subprocess.Popen[bytes], log_path: Path) -> str:
    """The OPENAI_BASE_URL the proxy prints once it listens."""
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    # readline blocks: a thread reads, so that a proxy that hangs without a word still ends
    # in an error here after START_SECONDS. It ends itself when the pipe closes.
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    deadline = time.monotonic() + START_SECONDS
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(left, 0.5)).decode("utf-8", "replace")
        except queue.Empty:
            if process.poll() is not None and lines.empty():
                break
            continue
        seen.append(line.rstrip())
        word = line.strip()
        if word.startswith("OPENAI_BASE_URL="):
            return word.split("=", 1)[1]
    process.poll()
    raise BenchFailed(
        f"the proxy did not print its address (exit status {process.returncode}).\n"
        "Its output:\n  " + "\n  ".join(seen) + "\nIts log:\n" + log_path.read_text()[-2000:]
    )


def body(deltas: int) -> dict[str, Any]:
    # max_tokens = deltas: the router cuts the answer at max_tokens (one piece, one token).
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long answer."}],
        "max_tokens": deltas,
        "stream": True,
    }


def read_stream(response: httpx.Response, start: float, path: str) -> Timing:
    """Read a streamed answer as it comes, timing its first byte and its end."""
    if response.status_code != 200:
        response.read()
        raise BenchFailed(f"{path}: HTTP {response.status_code}: {response.text[:500]}")
    first: float | None = None
    reads = 0
    pieces = []
    # iter_raw: the bytes as read, nothing decoded or split into lines in the timed loop.
    for piece in response.iter_raw():
        if first is None:
            first = time.perf_counter() - start
        reads += 1
        pieces.append(piece)
    total = time.perf_counter() - start
    if first is None:
        raise BenchFailed(f"{path}: HTTP 200 with an empty body")
    return Timing(first, total, reads, b"".join(pieces))


def direct(http: httpx.Client, account: LocalAccount, deltas: int) -> Timing:
    """A client paying the router itself: unpaid POST, 402, sign, paid streaming POST."""
    request = body(deltas)
    start = time.perf_counter()
    challenge = http.post("/v1/chat/completions", json=request)
    if challenge.status_code != 402:
        raise BenchFailed(
            f"direct: the unpaid request got HTTP {challenge.status_code}, not 402: "
            f"{challenge.text[:500]}"
        )
    signed = sign_payment(
        account, POLICY.choose(parse_challenge(challenge.headers, challenge.content))
    )
    headers = {signed.header_name: signed.header_value}
    with http.stream("POST", "/v1/chat/completions", json=request, headers=headers) as response:
        return read_stream(response, start, "direct")


def proxied(http: httpx.Client, deltas: int) -> Timing:
    """The same answer through the proxy: one POST with the token."""
    request = body(deltas)
    start = time.perf_counter()
    with http.stream("POST", "/chat/completions", json=request) as response:
        timing = read_stream(response, start, "proxy")
        if "x-xrouter-charged-usd" not in response.headers:
            raise BenchFailed("proxy: the answer came without X-Xrouter-Charged-Usd: not paid?")
        return timing


def checked(run: Callable[[], Timing], path: str, deltas: int) -> Timing:
    """`run` once; the whole stream must have come through, every content piece of it."""
    timing = run()
    count = timing.content_deltas()
    if count != deltas:
        raise BenchFailed(f"{path}: {count:,} content pieces arrived, expected {deltas:,}")
    return timing


def measure(
    router_url: str, proxy_url: str, account: LocalAccount, args: argparse.Namespace
) -> dict[str, list[Timing]]:
    """Warm both paths up, then time them in interleaved rounds: {path: [Timing, ...]}."""
    with (
        httpx.Client(base_url=router_url, timeout=60) as to_router,
        httpx.Client(
            base_url=proxy_url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as to_proxy,
    ):
        paths: dict[str, Callable[[], Timing]] = {
            "direct": lambda: direct(to_router, account, args.deltas),
            "proxy": lambda: proxied(to_proxy, args.deltas),
        }
        # The first of these is the check that each path answers at all (HTTP 200, every
        # piece); all of them open the connections and warm the imports and caches of all
        # three processes.
        for _ in range(WARM_UP_ROUNDS):
            for name, run in paths.items():
                checked(run, name, args.deltas)
        rounds: dict[str, list[Timing]] = {name: [] for name in paths}
        for _ in range(args.rounds):  # interleaved: drift in the machine's load hits both
            for name, run in paths.items():
                # The proxy saves each answer to its history after the last byte went out;
                # without a pause that work would take CPU from the next request, whichever
                # path it is on. Each figure is of one request on an otherwise quiet machine.
                time.sleep(args.pause)
                rounds[name].append(checked(run, name, args.deltas))
    return rounds


def report(rounds: dict[str, list[Timing]], deltas: int) -> None:
    ms = 1000

    def figures(name: str, of: Callable[[Timing], float]) -> tuple[float, float]:
        values = [of(t) for t in rounds[name]]
        return statistics.median(values), min(values)

    first = {name: figures(name, lambda t: t.first_byte * ms) for name in rounds}
    total = {name: figures(name, lambda t: t.total * ms) for name in rounds}
    reads = {name: figures(name, lambda t: t.reads)[0] for name in rounds}
    print(f"{deltas:,}-delta paid stream, {len(rounds['direct'])} rounds, median (best):")
    print(f"  {'':8} {'first byte ms':>17} {'total ms':>17} {'body reads':>11}")
    for name in rounds:
        print(
            f"  {name:8} {first[name][0]:8.2f} ({first[name][1]:6.2f}) "
            f"{total[name][0]:8.1f} ({total[name][1]:6.1f}) {reads[name]:11,.0f}"
        )
    added_first = first["proxy"][0] - first["direct"][0]
    added_total = (total["proxy"][0] / total["direct"][0] - 1) * 100
    # The best rounds too: on a busy machine the medians wander, the best less so.
    best_first = first["proxy"][1] - first["direct"][1]
    best_total = (total["proxy"][1] / total["direct"][1] - 1) * 100
    print(
        f"  the proxy adds {added_first:+.2f} ms to the first byte, median (best "
        f"{best_first:+.2f} ms); goal <= 10 ms: {'met' if added_first <= 10 else 'NOT met'}"
    )
    print(
        f"  the proxy adds {added_total:+.1f}% to the total, median (best {best_total:+.1f}%); "
        f"goal <= 10%: {'met' if added_total <= 10 else 'NOT met'}"
    )
    print("  rounds (first byte ms / total ms):")
    for name, timings in rounds.items():
        figures_text = ", ".join(f"{t.first_byte * ms:.1f}/{t.total * ms:.0f}" for t in timings)
        print(f"    {name:8} {figures_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=5_000, help="content pieces per answer")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per path")
    parser.add_argument(
        "--pause", type=float, default=0.25, help="seconds of quiet before each timed request"
    )
    args = parser.parse_args()
    if args.deltas < 1 or args.rounds < 1 or args.pause < 0:
        parser.error("--deltas and --rounds must be at least 1, --pause at least 0")
    # Router, proxy and client all run here: on few CPUs they take turns, which shows.
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}; router, proxy "
        "and client each in a process of their own"
    )

    account = Account.create()
    router_options = ("--deltas", str(args.deltas), "--network", "base-sepolia")
    try:
        with (
            local_router(*router_options) as router_url,
            proxy(router_url, account.key.hex()) as proxy_url,
        ):
            rounds = measure(router_url, proxy_url, account, args)
    except BenchFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except httpx.HTTPError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    report(rounds, args.deltas)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
