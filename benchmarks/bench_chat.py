"""Benchmarks of the chat's rendering and key latency; prints figures, asserts nothing.

    python benchmarks/bench_chat.py [--rounds 5] [--deltas 5000] [--bytes 27000] [--key-turns 10]

The real `ChatApp` runs headless (`run_test`, Pilot) against the local router, which runs in
its own process (so it does not take the app's event loop or GIL) and streams a ~27 KB Markdown
reply (headings, lists, code, tables) in 5,000 deltas; every turn is a real paid turn.

1. Full speed: time from pressing Enter in the prompt to the answer fully rendered, side by side
   with the same paid stream written delta by delta into a Textual `Log` in a minimal app,
   measured the same way; medians of interleaved rounds (goal: chat <= 2x the Log's time).
2. Paced at ~200 deltas/s: for every delta, the delay from its arrival in the app (the chat's
   sink receives it) to the first frame drawn after the Markdown widget took it in (goal: p99
   <= 50 ms).
3. Key latency while a full-speed stream renders: a thread presses a key into the prompt every
   ~50 ms through the driver's own path (as the terminal input thread does); the latency is
   press to the first frame drawn after the prompt's text changed (goal: p99 <= 50 ms).

A "frame" is one compositor update of the screen: laid out, every changed line rendered, and
encoded to terminal bytes as in a terminal (headless Textual skips that encoding; it is done here
so that its cost counts), then written nowhere.

The clocks lean on Textual 8.2.8's insides (`App._display`, the driver's `process_message`): a
benchmark may, the product must not.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import itertools
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

# Runs from a checkout too, without the package installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# First: importing the app's package sets Textual's frame rate, as it does for the real program,
# and Textual reads it when it is first imported. The Log app below runs at the same rate.
from xrouter_tui.ui import ChatApp, RouterSetup  # noqa: I001

from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import RenderableType
from textual import constants, events, work
from textual._compositor import CompositorUpdate
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Log

from local_router import local_router  # beside this file

from xrouter_tui.api import Delta, RouterClient
from xrouter_tui.config import Settings
from xrouter_tui.devserver.reply import make_reply
from xrouter_tui.payments import BASE_SEPOLIA, SpendingPolicy
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed, ResponseStopped
from xrouter_tui.ui.screens import chat as chat_screen
from xrouter_tui.ui.widgets.answer_markdown import AnswerMarkdown
from xrouter_tui.ui.widgets.chat_log import AnswerMessage
from xrouter_tui.ui.widgets.prompt import PromptInput

PROMPT = "Write a long answer with headings, lists, code and tables."
MODEL = "openai/gpt-4o-mini"  # cheap: the up-front price of ~6,000 tokens stays under the limit
SIZE = (120, 40)
# Quiet time after which the screen is taken as settled (the prompt's cursor does not blink).
QUIET_SECONDS = 0.1
# A fast typist: a key every 50 ms, give or take 30%.
KEY_INTERVAL = 0.05


# -- the local router, in its own process ------------------------------------------------


def router(deltas: int, reply_bytes: int, delay: float) -> AbstractContextManager[str]:
    """The local router streaming a `reply_bytes` reply in `deltas` pieces, `delay` s apart."""
    return local_router(
        "--network",
        "base-sepolia",
        "--deltas",
        str(deltas),
        "--reply-bytes",
        str(reply_bytes),
        "--delay",
        str(delay),
    )


# -- frames --------------------------------------------------------------------------------


class FrameClock:
    """Mixed into an App: notes the time of every frame, after encoding it for a terminal."""

    frames: list[float]
    frame_watchers: list[Callable[[float], None]]

    def _display(self, screen: Screen, renderable: RenderableType | None) -> None:
        super()._display(screen, renderable)  # type: ignore[misc]
        if renderable is None or self._batch_count:  # type: ignore[attr-defined]
            return
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(self.console)  # type: ignore[attr-defined]
        now = time.perf_counter()
        self.frames.append(now)
        for watcher in self.frame_watchers:
            watcher(now)


class TimedChatApp(FrameClock, ChatApp):
    # A relative CSS_PATH is read beside the class that sets it, so name the app's own.
    CSS_PATH = str(Path(sys.modules[ChatApp.__module__].__file__ or "").with_name("app.tcss"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames = []
        self.frame_watchers = []


class TimedAnswerMarkdown(AnswerMarkdown):
    """Notes when each delta arrives and when each piece of text is drawn into lines."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[int, float]] = []  # (characters so far, time)
        self.appended: list[tuple[int, float]] = []  # (characters drawn, time)
        self._fed = 0

    def feed(self, text: str) -> None:
        self._fed += len(text)
        self.arrivals.append((self._fed, time.perf_counter()))
        super().feed(text)

    def _commit(self, *args: Any) -> None:
        super()._commit(*args)
        self.appended.append((len(self.source) - len("".join(self._pending)), time.perf_counter()))


class TimedAnswerMessage(AnswerMessage):
    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.body = TimedAnswerMarkdown()


@contextmanager
def timed_answers() -> Iterator[None]:
    """The chat screen builds its answers from the timed classes while this is open."""
    chat_screen.AnswerMessage = TimedAnswerMessage  # type: ignore[misc]
    try:
        yield
    finally:
        chat_screen.AnswerMessage = AnswerMessage  # type: ignore[misc]


# -- driving an app ------------------------------------------------------------------------


def press(app: App, key: str, character: str | None = None) -> None:
    """A key press by the driver's own path: what its input thread does for a real key."""
    assert app._driver is not None
    app._driver.process_message(events.Key(key, character))


async def settle(app: FrameClock, pilot: Pilot[Any]) -> float:
    """Wait until the app has drawn its last frame; return that frame's time."""
    await pilot.pause()
    while True:
        count = len(app.frames)
        await asyncio.sleep(QUIET_SECONDS)
        if len(app.frames) == count:
            return app.frames[-1] if app.frames else time.perf_counter()


@dataclass
class Turn:
    """What one chat turn measured."""

    seconds: float
    text: str
    arrivals: list[tuple[int, float]] = field(default_factory=list)
    appended: list[tuple[int, float]] = field(default_factory=list)
    frames: list[float] = field(default_factory=list)
    keys: list[float] = field(default_factory=list)  # press-to-frame latencies


def fresh_heap() -> None:
    """Collect the last turn's garbage now, untimed, so that no turn pays for an earlier one."""
    gc.collect()


def make_chat(url: str, account: LocalAccount, home: str, max_tokens: int) -> TimedChatApp:
    settings = Settings(model=MODEL, max_tokens=max_tokens, allowed_networks=("base-sepolia",))
    setup = RouterSetup(url, account, (BASE_SEPOLIA,), demo=True)
    # Config and data in a scratch folder: the developer's own files are neither read nor written.
    env = {**os.environ, "XROUTER_CONFIG_DIR": home, "XROUTER_DATA_DIR": home}
    return TimedChatApp(settings, setup, env=env, model=MODEL, max_tokens=max_tokens)


async def chat_turn(
    url: str,
    account: LocalAccount,
    home: str,
    max_tokens: int,
    *,
    keys: bool = False,
) -> Turn:
    """One paid turn in a fresh chat: Enter in the prompt to the answer fully rendered."""
    fresh_heap()
    app = make_chat(url, account, home, max_tokens)
    ended = asyncio.Event()
    outcome: list[Message] = []

    def hook(message: Message) -> None:
        if isinstance(message, ResponseComplete | ResponseFailed | ResponseStopped):
            outcome.append(message)
            ended.set()

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        prompt = app.chat.query_one(PromptInput)
        # A blinking cursor redraws twice a second forever: no quiet moment to call the end.
        prompt.cursor_blink = False
        prompt.load_text(PROMPT)
        await settle(app, pilot)
        start = time.perf_counter()
        press(app, "enter")
        presser = None
        if keys:
            while prompt.text:  # sending empties the prompt; the typing starts after that
                await asyncio.sleep(0.001)
            presser = KeyPresser(app, prompt)
            presser.start()
        await ended.wait()
        if presser is not None:
            presser.stop()
        end = await settle(app, pilot)
        message = outcome[0]  # it bubbles: the screen, then the app
        if not isinstance(message, ResponseComplete):
            raise RuntimeError(f"the turn did not complete: {message!r}")
        body = app.chat.query(AnswerMessage).last().body
        turn = Turn(end - start, body.source, frames=list(app.frames))
        if isinstance(body, TimedAnswerMarkdown):
            turn.arrivals, turn.appended = body.arrivals, body.appended
        if presser is not None:
            turn.keys = presser.latencies(turn.arrivals[0][1] if turn.arrivals else start)
    return turn


def screenshot(app: App) -> str:
    # The SVG's ids are numbered per export; what is drawn is the rest.
    return re.sub(r"terminal-\d+", "terminal", app.export_screenshot())


class KeyPresser:
    """Presses "x" into the prompt every ~50 ms from a thread, as a typist in a terminal would,
    and notes press-to-frame times: the frame is the first one drawn after the text grew."""

    def __init__(self, app: TimedChatApp, prompt: PromptInput) -> None:
        self.app = app
        self.prompt = prompt
        self.base = len(prompt.text)
        self.pressed: list[float] = []
        self.shown: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        app.frame_watchers.append(self._on_frame)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        jitter = random.Random(402)  # not in step with the frames, the same in every run
        while not self._stop.wait(KEY_INTERVAL * (0.7 + 0.6 * jitter.random())):
            self.pressed.append(time.perf_counter())
            press(self.app, "x", "x")

    def _on_frame(self, now: float) -> None:
        typed = len(self.prompt.text) - self.base
        for index in range(len(self.shown), min(typed, len(self.pressed))):
            self.shown[index] = now

    def latencies(self, streaming_since: float) -> list[float]:
        """Press to frame for the presses made while the answer streamed."""
        return [
            self.shown[index] - pressed
            for index, pressed in enumerate(self.pressed)
            if pressed >= streaming_since and index in self.shown
        ]


# -- the Log side ------------------------------------------------------------------------


class LogChat(FrameClock, App[None]):
    """The same paid stream as plain text: Enter sends, each delta is one `Log.write`."""

    BINDINGS: ClassVar = [Binding("enter", "send", "Send")]

    class Ended(Message):
        pass

    def __init__(self, url: str, account: LocalAccount, max_tokens: int) -> None:
        super().__init__()
        self.frames = []
        self.frame_watchers = []
        self.client = RouterClient(
            url, account=account, policy=SpendingPolicy(networks=(BASE_SEPOLIA,))
        )
        self.max_tokens = max_tokens

    def compose(self) -> ComposeResult:
        yield Log()

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def action_send(self) -> None:
        self._stream()

    @work(exclusive=True)
    async def _stream(self) -> None:
        log = self.query_one(Log)
        async for event in self.client.stream_chat(
            [{"role": "user", "content": PROMPT}], model=MODEL, max_tokens=self.max_tokens
        ):
            if type(event) is Delta:
                log.write(event.text)
        self.post_message(self.Ended())


async def log_turn(url: str, account: LocalAccount, max_tokens: int) -> Turn:
    fresh_heap()
    app = LogChat(url, account, max_tokens)
    ended = asyncio.Event()

    def hook(message: Message) -> None:
        if isinstance(message, LogChat.Ended):
            ended.set()

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await settle(app, pilot)
        start = time.perf_counter()
        press(app, "enter")
        await ended.wait()
        end = await settle(app, pilot)
        text = "\n".join(app.query_one(Log).lines)
    return Turn(end - start, text)


# -- figures -------------------------------------------------------------------------------


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    return (
        f"p50 {at(0.50):.1f} ms, p95 {at(0.95):.1f} ms, p99 {at(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered):,})"
    )


def render_delays(turn: Turn) -> list[float]:
    """For each delta: its arrival to the first frame after the answer drew all of it."""
    marks = [upto for upto, _ in turn.appended]
    delays = []
    for upto, arrived in turn.arrivals:
        mark = bisect.bisect_left(marks, upto)
        drawn = turn.appended[mark][1]
        frame = turn.frames[bisect.bisect_left(turn.frames, drawn)]
        delays.append(frame - arrived)
    return delays


def check(turn: Turn, expected: str, what: str) -> None:
    if turn.text != expected:
        raise RuntimeError(f"{what}: {len(turn.text):,} characters shown, {len(expected):,} sent")


async def run(args: argparse.Namespace) -> None:
    account = Account.create()
    max_tokens = args.deltas + 1000
    reply = make_reply(PROMPT, MODEL, args.deltas, args.bytes)
    text = reply.text
    body = text.encode()
    headings = sum(1 for line in text.splitlines() if line.startswith("#"))
    print(
        f"A {len(reply.content):,}-delta reply of {len(body):,} bytes of Markdown ({headings} "
        f"headings, {text.count(chr(10) + '- ')} list items, {text.count('```') // 2} code "
        f"blocks, {text.count(chr(10) + '|---')} tables); terminal {SIZE[0]}x{SIZE[1]}, headless, "
        f"at most {constants.MAX_FPS} frames/s; "
        "one paid request per turn; a fresh app per turn, after a full garbage collection."
    )
    print(
        "Fully rendered = the answer's whole text is drawn into its lines (checked) and the "
        f"app has drawn its last frame after it (no frame for {QUIET_SECONDS * 1000:.0f} ms "
        "after that one); the time runs from the Enter key to that frame. A frame is composed "
        "and encoded to terminal bytes, written nowhere."
    )
    with (
        tempfile.TemporaryDirectory() as home,
        router(args.deltas, args.bytes, 0.0) as url,
        router(args.deltas, args.bytes, args.paced_delay) as paced_url,
    ):
        print(f"\n1. Full speed, {args.rounds} interleaved rounds after one warm-up each")
        check(await chat_turn(url, account, home, max_tokens), text, "chat (warm-up)")
        check(await log_turn(url, account, max_tokens), text, "Log (warm-up)")
        chat_times, log_times = [], []
        for _ in range(args.rounds):  # interleaved so drift in the machine's load hits both alike
            turn = await chat_turn(url, account, home, max_tokens)
            check(turn, text, "chat")
            chat_times.append(turn.seconds)
            turn = await log_turn(url, account, max_tokens)
            check(turn, text, "Log")
            log_times.append(turn.seconds)
        chat_median, log_median = statistics.median(chat_times), statistics.median(log_times)
        deltas = len(reply.content)
        print(
            f"   Markdown chat: {chat_median:.2f} s, {deltas / chat_median:,.0f} deltas/s "
            f"(median); rounds: {', '.join(f'{t:.2f}' for t in chat_times)} s"
        )
        print(
            f"   Log (plain):   {log_median:.2f} s, {deltas / log_median:,.0f} deltas/s "
            f"(median); rounds: {', '.join(f'{t:.2f}' for t in log_times)} s"
        )
        print(f"   ratio chat / Log: {chat_median / log_median:.2f}x (goal <= 2x)")

        with timed_answers():
            turn = await chat_turn(paced_url, account, home, max_tokens)
            check(turn, text, "chat (paced)")
            first, last = turn.arrivals[0][1], turn.arrivals[-1][1]
            rate = (len(turn.arrivals) - 1) / (last - first)
            print(
                f"\n2. Paced: the router sleeps {args.paced_delay * 1000:g} ms between deltas; "
                f"{len(turn.arrivals):,} deltas arrived at {rate:,.0f}/s, "
                f"{len(turn.appended):,} writes into the answer, {len(turn.frames):,} frames"
            )
            print(
                f"   arrival -> on screen: {percentiles(render_delays(turn))} (goal p99 <= 50 ms)"
            )
            gap = max(b - a for (_, a), (_, b) in itertools.pairwise(turn.arrivals))
            print(
                f"   longest gap between two arrivals: {gap * 1000:.0f} ms (a delta that waited "
                "in the socket while the app's loop was busy is timed from when the app took it)"
            )

            print(f"\n3. Key latency while a full-speed stream renders ({args.key_turns} turns)")
            latencies: list[float] = []
            for _ in range(args.key_turns):
                turn = await chat_turn(url, account, home, max_tokens, keys=True)
                check(turn, text, "chat (keys)")
                latencies.extend(turn.keys)
            print(f"   press -> prompt repainted: {percentiles(latencies)} (goal p99 <= 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deltas", type=int, default=5000)
    parser.add_argument("--bytes", type=int, default=27_000, help="the reply's least size")
    parser.add_argument("--key-turns", type=int, default=10)
    parser.add_argument("--paced-delay", type=float, default=0.005)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
