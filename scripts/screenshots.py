"""Remakes the README's SVG screenshots in `screenshots/` from real runs of the chat in demo mode.

Each one is the real `ChatApp`, headless, against the local router, paying with real signed
x402 payments on the test network; nothing on screen is faked. Run from anywhere:

    python scripts/screenshots.py

It prints each file it writes. The wallet is the tests' fixed key, so the address on screen is
the same every time; if any screenshot shows a private key, none is written.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a file, Python puts scripts/ on the path, not the project: the helpers live in tests/.
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tests.ui_helpers import TEST_KEY, DemoChat, demo_chat, stop_blinking, wait_for  # noqa: E402
from xrouter_tui.chat import MessageStatus  # noqa: E402
from xrouter_tui.config import load_settings  # noqa: E402
from xrouter_tui.devserver import DevServerConfig  # noqa: E402
from xrouter_tui.payments import BASE_SEPOLIA  # noqa: E402
from xrouter_tui.ui.screens.help import HelpScreen  # noqa: E402
from xrouter_tui.ui.screens.ledger import LedgerScreen  # noqa: E402
from xrouter_tui.ui.screens.model_picker import ModelPicker  # noqa: E402
from xrouter_tui.ui.screens.payment import PaymentDialog  # noqa: E402
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ErrorBlock  # noqa: E402
from xrouter_tui.ui.widgets.status_bar import ChatState, StatusBar  # noqa: E402

OUT = ROOT / "screenshots"
# Tall enough for a question and the answer down to its table without scrolling the top away.
SIZE = (110, 40)
PROMPT = "Show me a table and some Python"
# Slower than the demo's own pace, so the stream is surely caught halfway, at a believable rate.
STREAMING = DevServerConfig(network=BASE_SEPOLIA.v1_name, delta_delay=0.03)
INSTANT = DevServerConfig(network=BASE_SEPOLIA.v1_name)

Scene = Callable[[Pilot, DemoChat], Awaitable[None]]


async def settle(pilot: Pilot) -> None:
    """Let scrolling and layout finish, for a screen that is not changing any more."""
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def send(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def answered(pilot: Pilot, chat: DemoChat, text: str) -> None:
    """Ask `text` and wait for the whole answer."""
    await send(pilot, text)
    last = chat.app.chat.conversation.messages
    await wait_for(pilot, lambda: last[-1].status is MessageStatus.COMPLETE, "the answer")


async def streaming(pilot: Pilot, chat: DemoChat) -> None:
    """Halfway through an answer: the code block in, the table coming, the rate live."""
    await send(pilot, PROMPT)
    await wait_for(pilot, lambda: bool(chat.app.screen.query(AnswerMessage)), "the answer")
    body = chat.app.screen.query_one(AnswerMessage).body
    # The table's first row is in, its second not yet: the code block shows whole above it.
    await wait_for(pilot, lambda: "| 1 min |" in body.source, "the table's first row")
    # One frame to draw it. Not `pause()` without a delay, nor a wait for animations: both wait
    # for an idle that a streaming answer does not give, and the moment would pass.
    await pilot.pause(1 / 30)
    bar = chat.app.screen.query_one(StatusBar)
    assert bar.state is ChatState.STREAMING, bar.state
    assert "tok/s" in bar.tokens, f"no live rate in the status bar: {bar.tokens!r}"
    assert "| 2 |" not in body.source, "the moment passed: the table is complete"


async def model_picker(pilot: Pilot, chat: DemoChat) -> None:
    """F2 over a finished turn, filtered to one family of models."""
    await answered(pilot, chat, PROMPT)
    await wait_for(pilot, lambda: len(chat.app.models) > 5, "the router's model list")
    await pilot.press("f2", *"claude")
    assert isinstance(chat.app.screen, ModelPicker), chat.app.screen
    stop_blinking(chat.app)
    await settle(pilot)


async def error(pilot: Pilot, chat: DemoChat) -> None:
    """A paid turn, then one whose payment the router refuses: the block under it and the
    notification."""
    await answered(pilot, chat, "What is x402?")
    chat.router.config.faults = {"reject-payment"}
    await send(pilot, "And how much did that cost?")
    await wait_for(pilot, lambda: bool(chat.app.screen.query(ErrorBlock)), "the error block")
    assert chat.app._notifications, "the failure is also a notification"
    await settle(pilot)


async def help_screen(pilot: Pilot, chat: DemoChat) -> None:
    """F1 over the empty chat."""
    await pilot.press("f1")
    assert isinstance(chat.app.screen, HelpScreen), chat.app.screen
    await settle(pilot)


async def payment_question(pilot: Pilot, chat: DemoChat) -> None:
    """A long answer asked for: the question before paying above confirm_above_usd."""
    await send(pilot, "Write me a long story about a lighthouse")
    await wait_for(pilot, lambda: isinstance(chat.app.screen, PaymentDialog), "the question")
    stop_blinking(chat.app)
    await settle(pilot)


async def ledger(pilot: Pilot, chat: DemoChat) -> None:
    """Three paid turns on two models, then F3."""
    await answered(pilot, chat, "What is x402?")
    await answered(pilot, chat, PROMPT)
    chat.app.model = "openai/gpt-4o-mini"
    await answered(pilot, chat, "And in one line?")
    await pilot.press("f3")
    screen = chat.app.screen
    assert isinstance(screen, LedgerScreen), screen
    await wait_for(pilot, lambda: screen.spending is not None, "the ledger")
    await settle(pilot)


# Settings for a scene whose app needs them: 20,000 max_tokens ask about $0.30.
DEAR = {"max_tokens": 20_000}

# file name, router settings, app settings, what to do before the picture
SCENES: tuple[tuple[str, DevServerConfig, dict, Scene], ...] = (
    ("chat-streaming.svg", STREAMING, {}, streaming),
    ("model-picker.svg", INSTANT, {}, model_picker),
    ("error.svg", INSTANT, {}, error),
    ("help.svg", INSTANT, {}, help_screen),
    ("payment-confirm.svg", INSTANT, DEAR, payment_question),
    ("ledger.svg", INSTANT, {}, ledger),
)


async def take(config: DevServerConfig, changes: dict, scene: Scene) -> str:
    """Run the chat against a fresh local router, play `scene`, and return the SVG."""
    # A copy: a scene may switch faults on, and the next scene must not inherit them.
    config = copy.deepcopy(config)
    with demo_chat(config, settings=replace(load_settings(), **changes)) as chat:
        # notifications=True: the test default hides them, and the error's belongs in the picture.
        async with chat.app.run_test(size=SIZE, notifications=True) as pilot:
            stop_blinking(chat.app)
            await pilot.pause()
            # The demo notice would cover the answer; it says nothing the DEMO badge does not.
            chat.app.clear_notifications()
            await scene(pilot, chat)
            return chat.app.export_screenshot(title="xrouter-tui --demo")


def shows_key(svg: str, keys: list[str]) -> bool:
    """Whether any of `keys` (hex private keys) is in the SVG, in any case, with or without 0x.

    Whitespace is dropped first: a long line of text may be split across SVG elements.
    """
    flat = re.sub(r"\s+", "", svg).lower()
    hex_keys = (key.strip().lower().removeprefix("0x") for key in keys)
    return any(len(hex_key) >= 32 and hex_key in flat for hex_key in hex_keys)


def main() -> int:
    # Only the fixed test key pays; the developer's own key must not reach the app at all.
    developer_key = os.environ.pop("XROUTER_PRIVATE_KEY", "")
    with tempfile.TemporaryDirectory(prefix="xrouter-screenshots-") as home:
        # The app saves the theme and remembers models: keep that out of the developer's config.
        os.environ["XROUTER_CONFIG_DIR"] = str(Path(home) / "config")
        os.environ["XROUTER_DATA_DIR"] = str(Path(home) / "data")
        os.environ.pop("XROUTER_BASE_URL", None)
        shots = {
            name: asyncio.run(take(config, changes, scene))
            for name, config, changes, scene in SCENES
        }
    for name, svg in shots.items():
        if shows_key(svg, [TEST_KEY, developer_key]):
            print(f"nothing written: {name} shows a private key", file=sys.stderr)
            return 1
    OUT.mkdir(exist_ok=True)
    for name, svg in shots.items():
        path = OUT / name
        path.write_text(svg, encoding="utf-8")
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
