"""Start-up figures of the real program, each next to its reference; prints, asserts nothing.

    python benchmarks/bench_start.py [--rounds 7]

1. `xrouter-tui --version` and `--help`, as processes, against a bare `python -c pass`
   (goal: <= 10x).
2. A whole paid `ask` (402, sign, pay, a short streamed answer) against the local router, against
   the official x402 SDK's client (`x402Client` + `x402AsyncTransport` in httpx) paying the same
   router for the same request in a process of its own (goal: <= 0.6x).
3. The chat's first frame in a real terminal (tmux, 120x40): from starting the process to the
   screen showing the prompt box and the key hints, against a bare Textual app (an input and a
   footer) measured the same way (goal: <= 1.5x). The screen is polled every 5 ms.

Every figure is the median of interleaved rounds, so that a busy moment of the machine weighs
on both sides alike. The local router runs in a process of its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from local_router import local_router  # beside this file

PROGRAM = str(Path(sys.executable).with_name("xrouter-tui"))
PYTHON = sys.executable
WIDTH, HEIGHT = 120, 40
POLL = 0.005
GIVE_UP = 30.0
PROMPT = "Say hello."
MAX_TOKENS = 64

# A bare Textual app: an input and a footer with one key, as small as a chat can be.
BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Input

class Bare(App):
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def compose(self):
        yield Input(placeholder="Ask anything")
        yield Footer()

Bare().run()
"""

# The official SDK's client paying the router once, as its README shows it; the answer streamed.
SDK_CLIENT = """
import asyncio, sys
import httpx
from eth_account import Account
from x402 import x402Client
from x402.http.clients.httpx import x402AsyncTransport
from x402.mechanisms.evm.exact import register_exact_evm_client
from x402.mechanisms.evm.signers import EthAccountSigner

async def main(url, key, prompt, max_tokens):
    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(Account.from_key(key)))
    transport = x402AsyncTransport(client, httpx.AsyncHTTPTransport())
    body = {"model": "openai/gpt-4o-mini", "stream": True, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}]}
    async with httpx.AsyncClient(transport=transport, base_url=url, timeout=30) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                pass
    assert response.status_code == 200, response.status_code

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def environment(folder: str, key: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "XROUTER_CONFIG_DIR": os.path.join(folder, "config"),
        "XROUTER_DATA_DIR": os.path.join(folder, "data"),
    }
    env.pop("XROUTER_BASE_URL", None)
    env.pop("XROUTER_PRIVATE_KEY", None)
    if key is not None:
        env["XROUTER_PRIVATE_KEY"] = key  # a throwaway: the local router settles nothing
    return env


def interleaved(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The median of each case, the cases taking turns round after round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            times[name].append(case())
    return {name: statistics.median(values) for name, values in times.items()}


def line(name: str, value: float, reference: str, ref_value: float, goal: str) -> None:
    ratio = value / ref_value
    print(
        f"{name:<34} {value * 1000:8.0f} ms   {reference:<26} {ref_value * 1000:7.0f} ms"
        f"   {ratio:5.2f}x   goal {goal}"
    )


def bench_command_line(rounds: int, folder: str) -> None:
    env = environment(folder)
    times = interleaved(
        rounds,
        {
            "python": lambda: seconds([PYTHON, "-c", "pass"], env),
            "version": lambda: seconds([PROGRAM, "--version"], env),
            "help": lambda: seconds([PROGRAM, "--help"], env),
        },
    )
    line("xrouter-tui --version", times["version"], "python -c pass", times["python"], "<= 10x")
    line("xrouter-tui --help", times["help"], "python -c pass", times["python"], "<= 10x")


def bench_paid_ask(rounds: int, folder: str) -> None:
    key = "0x" + secrets.token_hex(32)
    env = environment(folder, key)
    with local_router("--network", "base") as url:
        ask = [PROGRAM, "ask", "--base-url", url, "--max-tokens", str(MAX_TOKENS), "-y", PROMPT]
        sdk = [PYTHON, "-c", SDK_CLIENT, url, key, PROMPT, str(MAX_TOKENS)]
        times = interleaved(
            rounds, {"ask": lambda: seconds(ask, env), "sdk": lambda: seconds(sdk, env)}
        )
    line("a whole paid ask", times["ask"], "x402 SDK client, same job", times["sdk"], "<= 0.6x")


class Terminal:
    """A private tmux server (its own socket, no config file) with one window of 120x40."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.socket = f"bench-start-{uuid.uuid4().hex[:8]}"

    def tmux(self, *args: str) -> str:
        command = [self.binary, "-L", self.socket, "-f", "/dev/null", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout

    def first_frame(self, command: list[str], env: dict[str, str], ready: Callable[[str], bool]):
        """Seconds from starting `command` in a fresh window to a screen that `ready` accepts."""
        shell = " ".join(f"'{part}'" for part in command)
        exports = " ".join(
            f"{name}='{env[name]}'"
            for name in ("XROUTER_CONFIG_DIR", "XROUTER_DATA_DIR", "XROUTER_PRIVATE_KEY")
            if name in env
        )
        self.tmux("kill-server")
        started = time.perf_counter()
        self.tmux(
            *("new-session", "-d", "-s", "bench", "-x", str(WIDTH), "-y", str(HEIGHT)),
            f"env TERM=xterm-256color {exports} {shell}",
        )
        while time.perf_counter() - started < GIVE_UP:
            if ready(self.tmux("capture-pane", "-p", "-t", "bench")):
                elapsed = time.perf_counter() - started
                self.tmux("kill-server")
                return elapsed
            time.sleep(POLL)
        self.tmux("kill-server")
        raise RuntimeError(f"no first frame within {GIVE_UP:g} s: {command}")


def bench_first_frame(rounds: int, folder: str) -> None:
    binary = shutil.which("tmux")
    if binary is None:
        print("the chat's first frame: skipped (no tmux)")
        return
    terminal = Terminal(binary)
    env = environment(folder, "0x" + secrets.token_hex(32))
    with local_router("--network", "base") as url:
        chat = [PROGRAM, "--base-url", url]
        bare = [PYTHON, "-c", BARE_APP]
        # Both are on screen once the key hints of the footer are: Textual draws a screen whole.
        times = interleaved(
            rounds,
            {
                "bare": lambda: terminal.first_frame(bare, env, lambda s: "Quit" in s),
                "chat": lambda: terminal.first_frame(chat, env, lambda s: "Quit" in s),
            },
        )
    line(
        "the chat's first frame (tmux)",
        times["chat"],
        "a bare Textual app",
        times["bare"],
        "<= 1.5x",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as folder:
        bench_command_line(args.rounds, folder)
        bench_paid_ask(args.rounds, folder)
        bench_first_frame(args.rounds, folder)


if __name__ == "__main__":
    main()
