"""The chat's full-speed stream in a real terminal, against a Textual `Log` showing the same paid
stream in the same terminal; prints figures, asserts nothing.

    python benchmarks/bench_terminal.py [--rounds 5] [--deltas 5000] [--bytes 27000]

Both programs run in tmux (120x40) against the local router, which runs in a process of its own
and streams a ~27 KB Markdown reply in 5,000 deltas at full speed; every turn is a real paid turn.
The chat is the real `xrouter-tui`; the `Log` app pays with the same `RouterClient` and writes
every delta into a `Log` as it arrives. The time is from the Enter key sent to the screen
showing the reply's last line (and, for the chat, the line of what was paid under it), polled
every 5 ms. Medians of interleaved rounds (goal: chat <= 1.3x the Log).
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

from local_router import local_router  # beside this file

from xrouter_tui.devserver.reply import make_reply

PROGRAM = os.path.join(os.path.dirname(sys.executable), "xrouter-tui")
MODEL = "anthropic/claude-3.5-sonnet"
PROMPT = "Write a long answer."
WIDTH, HEIGHT = 120, 40
POLL = 0.005
GIVE_UP = 60.0

# A minimal chat: an input, a Log, the same paying client; Enter streams the answer into the Log.
LOG_APP = """
import sys
from decimal import Decimal
from textual import work
from textual.app import App
from textual.widgets import Input, Log
from xrouter_tui.api import Delta, RouterClient
from xrouter_tui.payments import BASE, SpendingPolicy, WalletKey

class LogChat(App):
    AUTO_FOCUS = "Input"

    def __init__(self, url, key, max_tokens):
        super().__init__()
        policy = SpendingPolicy(networks=(BASE,), max_per_request_usd=Decimal(10))
        self.client = RouterClient(url, account=WalletKey.from_hex(key), policy=policy)
        self.max_tokens = max_tokens

    def compose(self):
        yield Log()
        yield Input(placeholder="Ask anything")

    async def on_input_submitted(self, event):
        self.stream(event.value)

    @work(exclusive=True)
    async def stream(self, prompt):
        log = self.query_one(Log)
        async for event in self.client.stream_chat(
            [{"role": "user", "content": prompt}], model=sys.argv[4], max_tokens=self.max_tokens
        ):
            if type(event) is Delta:
                log.write(event.text)

LogChat(sys.argv[1], sys.argv[2], int(sys.argv[3])).run()
"""


class Terminal:
    """A private tmux server (its own socket, no config file), one window of 120x40."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.socket = f"bench-terminal-{uuid.uuid4().hex[:8]}"

    def tmux(self, *args: str) -> str:
        command = [self.binary, "-L", self.socket, "-f", "/dev/null", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def wait(self, ready: Callable[[str], bool], what: str) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < GIVE_UP:
            if ready(self.screen()):
                return time.perf_counter()
            time.sleep(POLL)
        raise RuntimeError(f"not on screen within {GIVE_UP:g} s: {what}")

    def turn(self, command: list[str], env: dict[str, str], done: Callable[[str], bool]) -> float:
        """Start `command`, wait for its prompt box, send the prompt; seconds from Enter to a
        screen that `done` accepts."""
        self.tmux("kill-server")
        exports = " ".join(f"{name}='{value}'" for name, value in env.items())
        shell = " ".join(f"'{part}'" for part in command)
        self.tmux(
            *("new-session", "-d", "-s", "bench", "-x", str(WIDTH), "-y", str(HEIGHT)),
            f"env TERM=xterm-256color {exports} {shell}",
        )
        try:
            self.wait(lambda screen: "Ask" in screen or "Quit" in screen, "the prompt box")
            time.sleep(1.0)  # what loads after the first frame (the model list) is done
            self.tmux("send-keys", "-t", "bench", "-l", PROMPT)
            time.sleep(0.2)
            sent = time.perf_counter()
            self.tmux("send-keys", "-t", "bench", "Enter")
            return self.wait(done, "the end of the answer") - sent
        finally:
            self.tmux("kill-server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deltas", type=int, default=5000)
    parser.add_argument("--bytes", type=int, default=27000)
    args = parser.parse_args()
    binary = shutil.which("tmux")
    if binary is None:
        sys.exit("tmux is needed: apt-get install tmux")
    reply = make_reply(PROMPT, MODEL, args.deltas, args.bytes)
    last_line = reply.text.rstrip().splitlines()[-1]
    # The reply's last words as both draw them (the chat wraps and styles, the Log does not).
    marker = last_line[:24]
    max_tokens = args.deltas + 1000
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f}; {len(reply.text.encode()):,} bytes in {args.deltas:,} "
        f"deltas; done when {marker!r} shows"
    )
    terminal = Terminal(binary)
    key = "0x" + secrets.token_hex(32)  # a throwaway: the local router settles nothing
    with (
        tempfile.TemporaryDirectory() as folder,
        local_router("--deltas", str(args.deltas), "--reply-bytes", str(args.bytes)) as url,
    ):
        env = {
            "XROUTER_CONFIG_DIR": os.path.join(folder, "config"),
            "XROUTER_DATA_DIR": os.path.join(folder, "data"),
            "XROUTER_PRIVATE_KEY": key,
        }
        # Paid without a question: a long answer's upfront price is above the defaults.
        os.makedirs(env["XROUTER_CONFIG_DIR"])
        with open(os.path.join(env["XROUTER_CONFIG_DIR"], "config.toml"), "w") as config:
            config.write("max_per_request_usd = 10\nconfirm_above_usd = 10\n")
        chat = [PROGRAM, "--base-url", url, "-m", MODEL, "--max-tokens", str(max_tokens)]
        log = [sys.executable, "-c", LOG_APP, url, key, str(max_tokens), MODEL]
        times: dict[str, list[float]] = {"chat": [], "log": []}
        for _ in range(args.rounds):
            times["chat"].append(
                terminal.turn(chat, env, lambda s: marker in s and "charged $" in s)
            )
            times["log"].append(terminal.turn(log, env, lambda s: marker in s))
    chat_time = statistics.median(times["chat"])
    log_time = statistics.median(times["log"])
    print(
        f"full speed, Enter to the whole answer on screen: chat {chat_time:.2f} s, "
        f"Textual Log {log_time:.2f} s, ratio {chat_time / log_time:.2f}x (goal <= 1.3x)"
    )
    print("  chat rounds: " + ", ".join(f"{t:.2f}" for t in times["chat"]))
    print("  Log rounds:  " + ", ".join(f"{t:.2f}" for t in times["log"]))


if __name__ == "__main__":
    main()
