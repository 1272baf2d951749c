"""SVG snapshots of the chat's main screens, run against the local router like the other UI tests.

Regenerate the baselines after a deliberate change of look, and review them before committing:

    python -m pytest tests/test_snapshots.py --snapshot-update

What would differ between runs is pinned down: the payment nonce (and with it the transaction
hash under an answer) comes from a counter instead of `os.urandom`; no text cursor blinks; and
notifications, which expire on their own clock, are checked and then cleared before the picture.
A snapshot alone can pass on a wrong state, so each test also asserts what a user would notice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.ui_helpers import (
    CountingNonces,
    DemoChat,
    KeylessChat,
    demo_chat,
    keyless_chat,
    stop_blinking,
    visible_text,
    wait_for,
)
from xrouter_tui.api import ModelInfo, errors
from xrouter_tui.chat import MessageStatus
from xrouter_tui.config import load_settings
from xrouter_tui.devserver import DevServerConfig
from xrouter_tui.devserver.catalog import MODELS
from xrouter_tui.devserver.x402 import transaction_hash
from xrouter_tui.payments import BASE_SEPOLIA, format_usd, short_address, signing
from xrouter_tui.ui.screens.help import HelpScreen
from xrouter_tui.ui.screens.model_picker import ModelPicker
from xrouter_tui.ui.screens.payment import PaymentDialog
from xrouter_tui.ui.screens.wallet_setup import WalletSetup
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ErrorBlock
from xrouter_tui.ui.widgets.prompt import PromptInput
from xrouter_tui.ui.widgets.status_bar import ChatState, StatusBar

SIZE = (110, 34)
# The smallest terminal people commonly use: what gives way there, and what never does.
SMALL = (80, 24)
# A whole answer, from the question to the line of what it cost, without scrolling.
TALL = (110, 48)
REJECTING = DevServerConfig(network=BASE_SEPOLIA.v1_name, faults={"reject-payment"})


class Scene:
    """The steps before a snapshot (snap_compare's `run_before`), and what they saw.

    Runs inside the app's own loop, where a failed assertion or timeout would only end the app
    and surface as a bare "svg is None": the error is kept and raised by `check()` instead, and
    the facts a test asserts on are kept in `seen` for after the picture.
    """

    def __init__(
        self,
        chat: DemoChat | KeylessChat,
        steps: Callable[[Pilot, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.chat = chat
        self.steps = steps
        self.seen: dict[str, Any] = {}
        self.error: BaseException | None = None

    async def __call__(self, pilot: Pilot) -> None:
        app = self.chat.app
        await pilot.pause()
        self.seen["notices at start"] = [note.title for note in app._notifications]
        # Cleared now as well as at the end: a toast left on the chat screen stays drawn behind
        # a dialog, and clearing while the dialog is up no longer reaches it.
        app.clear_notifications()
        try:
            await self.steps(pilot, self.seen)
        except Exception as exc:  # re-raised by check(), in the test
            self.error = exc
        # The model list and the chain's first read (the wallet's balance) land in the status
        # bar when they land: wait for them, so that every run draws the same line.
        for _ in range(500):
            busy = [w for w in app.workers if w.group in ("models", "chain") and w.is_running]
            if not busy:
                break
            await pilot.pause(0.02)
        # After the steps, so a screen they opened is covered too.
        stop_blinking(app)
        app.clear_notifications()
        await pilot.pause()

    def check(self) -> dict[str, Any]:
        """What the steps saw; their error, if any, raised here in the test."""
        if self.error is not None:
            raise self.error
        return self.seen


class _MidnightClock:
    """Clock times in messages as 00:00:00: a refused payment's "until" is the same each run."""

    strftime = staticmethod(time.strftime)

    @staticmethod
    def localtime(_seconds: float | None = None) -> time.struct_time:
        return time.gmtime(0)


@pytest.fixture
def pinned_message_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "time", _MidnightClock)


@pytest.fixture
def counted_nonces(monkeypatch: pytest.MonkeyPatch) -> CountingNonces:
    """Payment nonces from a counter, so the transaction hash on screen is the same each run."""
    nonces = CountingNonces()
    monkeypatch.setattr(signing, "os", nonces)
    return nonces


async def send(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def turn_over(pilot: Pilot, chat: DemoChat) -> None:
    """Wait until the turn has ended and the screen says so (the footer drops Stop)."""
    messages = chat.app.chat.conversation.messages
    await wait_for(
        pilot,
        lambda: messages[-1].status is not MessageStatus.STREAMING and not chat.app.chat.streaming,
        "the turn to end",
    )


def status_line(chat: DemoChat) -> str:
    return str(chat.app.chat.query_one(StatusBar).render())


def test_the_empty_chat_at_start(snap_compare):
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            seen["focused"] = chat.app.focused
            # The address is worked out just after the first frame.
            address = short_address(chat.account.address)
            await wait_for(pilot, lambda: address in status_line(chat), "the wallet's address")
            seen["status"] = status_line(chat)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    assert isinstance(seen["focused"], PromptInput), "typing goes straight into the prompt"
    assert "Demo mode" in seen["notices at start"]
    assert "DEMO" in seen["status"] and "idle" in seen["status"]
    assert short_address(chat.account.address) in seen["status"]
    assert matches


def test_a_completed_answer_with_what_it_cost(snap_compare, counted_nonces):
    # What the first payment's counted nonce makes the local router report as the transaction.
    nonce = "0x" + CountingNonces().urandom(32).hex()
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await send(pilot, "Show me a table and some Python")
            await turn_over(pilot, chat)
            seen["footer"] = str(chat.app.chat.query_one(AnswerMessage).footer.render())
            seen["status"] = status_line(chat)
            seen["state"] = chat.app.chat.query_one(StatusBar).state
            seen["on screen"] = visible_text(chat.app)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=TALL)
    seen = scene.check()
    payments = chat.router.state.payments
    assert counted_nonces.calls == 1, "the payment's nonce came from the counter"
    assert len(payments) == 1 and payments[0].nonce.lower() == nonce
    assert f"tx {transaction_hash(nonce)}" in seen["footer"]
    assert "charged $" in seen["footer"] and " in / " in seen["footer"]
    assert seen["state"] is ChatState.IDLE
    assert "out tok" in seen["status"] and "tok/s" not in seen["status"], "no rate once it ends"
    assert "In short: begin small, check, then grow." in seen["on screen"]
    assert matches


def test_the_message_cursor_on_a_question(snap_compare, counted_nonces):
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await send(pilot, "Show me a table and some Python")
            await turn_over(pilot, chat)
            await pilot.press("alt+up", "alt+up")  # the answer, then its question
            seen["selected"] = [str(w.render()) for w in chat.app.chat.query(".-selected")]
            seen["on screen"] = visible_text(chat.app)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    assert seen["selected"] == ["Show me a table and some Python"]
    # The footer says what the selected question's keys do.
    assert "Edit" in seen["on screen"] and "Copy" in seen["on screen"]
    assert matches


def test_the_model_picker_filtered(snap_compare):
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            # The count in the picker's title comes from the live list, fetched in the background.
            await wait_for(pilot, lambda: len(chat.app.models) == len(MODELS), "the model list")
            await pilot.press("f2", *"gpt")
            options = chat.app.screen.query_one(OptionList)
            seen["screen"] = chat.app.screen
            seen["shown"] = [options.get_option_at_index(i).id for i in range(options.option_count)]
            seen["highlighted"] = options.highlighted

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    assert isinstance(seen["screen"], ModelPicker)
    assert seen["shown"] == ["openai/gpt-4o", "openai/gpt-4o-mini"], seen["shown"]
    assert seen["highlighted"] == 0, "Enter would pick the best match"
    assert matches


def test_the_help_screen(snap_compare):
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await pilot.press("f1")
            seen["screen"] = chat.app.screen
            seen["on screen"] = visible_text(chat.app)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    assert isinstance(seen["screen"], HelpScreen)
    # The descriptions, not only the keys, must fit on screen.
    for description in ("Send the prompt", "Stop the answer being streamed", "Start a new"):
        assert description in seen["on screen"], description
    assert matches


def test_a_failed_turn_with_its_error(snap_compare, pinned_message_clock):
    with demo_chat(REJECTING) as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await send(pilot, "Will this be paid?")
            await wait_for(pilot, lambda: bool(chat.app.chat.query(ErrorBlock)), "the error")
            await turn_over(pilot, chat)
            seen["error"] = str(chat.app.chat.query_one(ErrorBlock).render())
            seen["notices"] = [note.message for note in chat.app._notifications]
            seen["prompt"] = chat.app.chat.query_one(PromptInput).text
            # The question back in the box has its price in the status bar, after a pause.
            status = chat.app.chat.query_one(StatusBar)
            await wait_for(pilot, lambda: status.estimate is not None, "the question's price")
            seen["state"] = chat.app.chat.query_one(StatusBar).state
            seen["spent"] = chat.app.chat.query_one(StatusBar).session_spend

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    wallet = short_address(chat.account.address)
    assert f"Not enough USDC in {wallet} on Base Sepolia" in seen["error"], seen["error"]
    # Handed over, then refused: it may still be charged until it expires, and counts till then.
    assert "could still be charged until 00:00:00" in seen["error"]
    assert "nothing was charged" not in seen["error"].lower()
    assert any("refused the payment" in note for note in seen["notices"]), "also a notification"
    assert seen["prompt"] == "Will this be paid?", "the question goes back into the box"
    assert seen["state"] is ChatState.ERROR and seen["spent"] == 0  # not spent: not known
    assert chat.router.state.payments == [] and chat.router.state.rejections
    assert matches


def test_the_question_before_a_payment_above_the_threshold(snap_compare):
    # 20,000 max_tokens of Claude 3.5 Sonnet ask about $0.30: above confirm_above_usd ($0.10).
    settings = replace(load_settings(), max_tokens=20_000)
    with demo_chat(settings=settings) as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await send(pilot, "Write me a long story")
            await wait_for(pilot, lambda: isinstance(chat.app.screen, PaymentDialog), "the ask")
            seen["on screen"] = visible_text(chat.app)
            seen["focused"] = chat.app.focused

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    assert "$0.300" in seen["on screen"] and "Base Sepolia" in seen["on screen"]
    assert "anthropic/claude-3.5-sonnet" in seen["on screen"]
    assert seen["focused"].id == "payment-cancel", "a stray Enter pays nothing"
    assert chat.router.state.paid_requests == 0
    assert matches


def test_the_wallet_setup_at_a_first_start(snap_compare, memory_keyring):
    with keyless_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            app = chat.app
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, WalletSetup) and isinstance(app.focused, OptionList),
                "the wallet setup, its choices in focus",
            )
            seen["screen"] = app.screen
            seen["on screen"] = visible_text(app)
            seen["status"] = status_line(chat)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    seen = scene.check()
    assert isinstance(seen["screen"], WalletSetup)
    assert "Import a key I have" in seen["on screen"] and "Generate a new key" in seen["on screen"]
    assert "no wallet" in seen["status"] and "DEMO" not in seen["status"]
    assert seen["notices at start"] == [], "the setup replaces the old no-wallet notice"
    assert memory_keyring.secrets == {}, "nothing stored before the user chooses"
    assert matches


def test_the_chat_at_80x24_after_a_paid_answer(snap_compare, counted_nonces):
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await send(pilot, "Show me a table and some Python")
            await turn_over(pilot, chat)
            seen["spent"] = chat.app.chat.query_one(StatusBar).session_spend
            seen["status"] = status_line(chat)
            seen["on screen"] = visible_text(chat.app)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SMALL)
    seen = scene.check()
    spent = format_usd(seen["spent"])
    assert seen["spent"] > 0
    # The session total and the last charge, in words, on the 80-column line.
    assert f"last {spent}  session {spent}" in seen["status"], seen["status"]
    assert f"session {spent}" in seen["on screen"]
    assert matches


# An id as long as a real router's, next to the demo's: it gives way, the prices never do.
LONG_ID = ModelInfo(
    "nousresearch/hermes-3-llama-3.1-405b:extended",
    "Nous: Hermes 3 405B Instruct (extended)",
    context_length=128_000,
    input_per_1m_usd=Decimal("4.5"),
    output_per_1m_usd=Decimal("4.5"),
)


def test_the_model_picker_at_80x24_with_its_prices(snap_compare):
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            await wait_for(pilot, lambda: len(chat.app.models) == len(MODELS), "the model list")
            chat.app.models.append(LONG_ID)
            await pilot.press("f2", "3")
            options = chat.app.screen.query_one(OptionList)
            await wait_for(pilot, lambda: options.option_count < len(MODELS) + 1, "a filter")
            seen["rows"] = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]
            seen["on screen"] = visible_text(chat.app)

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SMALL)
    seen = scene.check()
    shown = len(seen["rows"])
    assert f"Model · {shown} of {len(MODELS) + 1} models" in seen["on screen"]
    # Every row in view, its prices whole (words compared one space apart).
    assert 1 < shown <= 9, seen["rows"]
    on_screen = " ".join(seen["on screen"].split())
    for row in seen["rows"]:
        prices = re.search(r"\$[0-9.,]+ /\s*\$[0-9.,]+", row)
        assert prices is not None and " ".join(prices.group(0).split()) in on_screen, row
    # The long id gave up its provider part for them.
    assert "hermes-3-llama-3.1-405b:extended" in seen["on screen"]
    assert matches
