"""Benchmark: opening a long conversation in the chat, and reading it up; prints figures,
asserts nothing.

    python benchmarks/bench_history.py [--sizes 200 2000 20000] [--chars 430] [--batches 5]

For each size, a history file is filled with a conversation of that many messages of about
`--chars` characters (Markdown: a paragraph, a list, inline code, a link), questions and answers
in turn. Then, in a fresh process per size (so that its memory is its own), the real `ChatApp`
starts headless at 120x40 in demo mode on that history file (the demo's own), lets its start-up
work end (the model list), and these are timed:
- opening the conversation as the conversations screen does (read from the file, shown in the
  log, its history kept for the next turn) to the first frame that shows it;
- a key press to its repaint, to show the screen answers;
- a scroll to the top (at once, as the wheel and the keys scroll), right after that key, to
  the last frame drawn before the app is idle again with the next older batch mounted above
  (goal: <= 50 ms);
- the same for `--batches` more batches, each scrolled to once the app is idle: median, max;
- with up to 2,000 messages, the jump to the first message (ctrl+Home: every batch mounted) to
  its frame.
The process's peak RSS is read at the end (goal: <= 1 s and <= 300 MB at 2,000 messages, and
about the same as at 200). The clocks lean on Textual 8.2.8's insides
(`Screen._compositor_refresh`, the driver's `process_message`): a benchmark may, the product
must not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Runs from a checkout too, without the package installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# First: importing the app's package sets Textual's frame rate, as it does for the program.
from xrouter_tui.ui import ChatApp, RouterSetup  # noqa: I001

from eth_account import Account
from textual import events
from textual.screen import Screen

from xrouter_tui.config import Settings
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.history.store import Store
from xrouter_tui.history.journal import history_path
from xrouter_tui.ui.widgets.chat_log import ChatLog
from xrouter_tui.ui.widgets.prompt import PromptInput

MODEL = "anthropic/claude-3.5-sonnet"
SIZE = (120, 40)


def message_text(index: int, chars: int) -> str:
    """About `chars` characters of Markdown, different for each message."""
    parts = [
        f"Answer {index}: here is **what matters** about `item_{index}`, in short.\n",
        f"- the first point, with a [reference](https://example.org/{index})\n"
        "- the second point, a little longer than the first one\n",
    ]
    filler = "Some more words explain the point in plain terms, one sentence after another. "
    text = "\n".join(parts) + "\n"
    while len(text) < chars:
        text += filler
    return text[:chars]


def fill(path: Path, count: int, chars: int) -> int:
    """A conversation of `count` messages in the history file at `path`; its id."""
    store = Store.open(path)
    try:
        with store.transaction():
            conversation = store.new_conversation(MODEL, title="A long conversation")
            for index in range(count):
                role = "user" if index % 2 == 0 else "assistant"
                text = message_text(index, chars)
                store.add_message(conversation, role, text, model=MODEL, status="complete")
        return conversation
    finally:
        store.close()


async def open_and_measure(conversation: int, batches: int) -> dict[str, Any]:
    """In this process: start the chat, open the conversation as the conversations screen
    does (`ChatScreen.open_conversation`), and time it to its first frame."""
    frames: list[float] = []
    original = Screen._compositor_refresh

    def timed(screen: Screen) -> None:
        original(screen)
        frames.append(time.perf_counter())

    Screen._compositor_refresh = timed  # type: ignore[method-assign]
    account = Account.create()
    setup = RouterSetup("http://127.0.0.1:9", account, (BASE_SEPOLIA,), demo=True)
    app = ChatApp(Settings(model=MODEL), setup, env=os.environ, model=MODEL)
    async with app.run_test(size=SIZE) as pilot:
        # The start-up work (the model list, the wallet), begun after the first frame, is not
        # what is timed here.
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        await pilot.pause()
        prompt = app.screen.query_one(PromptInput)
        prompt.cursor_blink = False
        log = app.screen.query_one(ChatLog)
        start = time.perf_counter()
        if not await app.chat.open_conversation(conversation):
            raise RuntimeError(f"conversation {conversation} did not open")
        drawn = len(frames)
        while len(frames) == drawn:
            await asyncio.sleep(0.001)
        opened = frames[-1] - start
        shown = len(log.children) + log.unshown
        # Interactive: a key typed now is on screen at the next frame.
        pressed = time.perf_counter()
        # As the terminal's input thread does it (Pilot's press waits for more than the frame).
        assert app._driver is not None
        app._driver.process_message(events.Key("x", "x"))
        while prompt.text != "x" or frames[-1] < pressed:
            await asyncio.sleep(0.001)
        key = frames[-1] - pressed
        mounted = len(log.children)

        async def older() -> tuple[float, int]:
            """Scroll to the top: the time to the last frame once the next batch is mounted
            above, and how many messages it brought."""
            unshown = log.unshown
            scrolled = time.perf_counter()
            # At once, as the wheel and the keys scroll (not after the next frame).
            log.scroll_to(y=0, animate=False, immediate=True)
            while log.unshown == unshown or frames[-1] < scrolled:
                await asyncio.sleep(0.001)
            await pilot.pause()
            return (frames[-1] - scrolled) * 1000, unshown - log.unshown

        # Scrolling up to the top mounts the next older batch above what is read.
        first_older, batch = await older()
        more: list[float] = []
        for _ in range(batches):
            if not log.unshown:
                break
            await pilot.pause(0.3)  # the reader reads a little before paging up again
            more.append((await older())[0])
        to_first = None
        if hasattr(log, "to_first") and log.unshown + len(log.children) <= 2_500:
            await pilot.pause(0.3)
            jumped = time.perf_counter()
            await log.to_first()
            await pilot.pause()
            to_first = frames[-1] - jumped
    return {
        "messages": shown,
        "open_s": opened,
        "key_ms": key * 1000,
        "mounted": mounted,
        "batch": batch,
        "older_ms": first_older,
        "more_median_ms": statistics.median(more) if more else None,
        "more_max_ms": max(more) if more else None,
        "to_first_s": to_first,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 20000])
    parser.add_argument("--chars", type=int, default=430)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--child", type=int, metavar="ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        result = asyncio.run(open_and_measure(args.child, args.batches))
        print(json.dumps(result))
        return
    print(
        f"Opening a conversation in the chat ({SIZE[0]}x{SIZE[1]}, headless), as the "
        "conversations screen does: from reading it out of the history file to the first frame "
        "that shows it; one key to its repaint; a scroll to the top to the last frame with the "
        "next older batch mounted, right after the key and then once idle."
    )
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            # The history file the app opens: the demo's own, in a scratch data folder per size.
            home = Path(folder) / str(size)
            env = {**os.environ, "XROUTER_DATA_DIR": str(home), "XROUTER_CONFIG_DIR": str(home)}
            conversation = fill(history_path(env, demo=True), size, args.chars)
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(conversation),
                    "--batches",
                    str(args.batches),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            more = (
                f", then {result['more_median_ms']:.0f} ms (median; max "
                f"{result['more_max_ms']:.0f})"
                if result["more_median_ms"] is not None
                else ""
            )
            first = (
                f", ctrl+Home to the first message {result['to_first_s']:.2f} s"
                if result["to_first_s"] is not None
                else ""
            )
            print(
                f"  {result['messages']:>6,} messages: open {result['open_s']:.2f} s, "
                f"key {result['key_ms']:.0f} ms, {result['mounted']} messages mounted; the next "
                f"older batch ({result['batch']} messages) on scrolling up "
                f"{result['older_ms']:.0f} ms{more}{first}; peak RSS {result['rss_mb']:.0f} MB"
            )
    print(
        "Goals: open <= 1 s and <= 300 MB at 2,000 messages, about the same as at 200; "
        "<= 50 ms a batch."
    )


if __name__ == "__main__":
    main()
