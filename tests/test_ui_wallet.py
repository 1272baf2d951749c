"""The wallet in the full-screen chat: the setup at a first start, and the palette's wallet
commands, driven by keyboard through Textual's Pilot against the local router.

Every test has a keyring of its own in memory (tests/conftest.py), which the app reads and
writes in threads as it does a real one. Assertions are on what the user sees (screenshots, the
status bar), on the messages the app posts, on what the keyring holds, and on who the router
says paid.
"""

from __future__ import annotations

import html
import re
import threading

import keyring
from eth_account import Account
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.keyring_backend import MemoryKeyring
from tests.ui_helpers import (
    TEST_KEY,
    Posted,
    demo_chat,
    keyless_chat,
    make_keyless_app,
    run_command,
    visible_text,
    wait_for,
)
from xrouter_tui.config import load_settings
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.payments import BASE_SEPOLIA, short_address
from xrouter_tui.ui import ChatApp, RouterSetup
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed, WalletChanged
from xrouter_tui.ui.screens.chat import ChatScreen
from xrouter_tui.ui.screens.confirm import ConfirmDialog
from xrouter_tui.ui.screens.wallet_setup import KeyInput, WalletSetup
from xrouter_tui.ui.widgets.prompt import PromptInput
from xrouter_tui.ui.widgets.status_bar import StatusBar
from xrouter_tui.wallet import ENV_KEY, KEYRING_ENTRY, KEYRING_SERVICE, load_account

SIZE = (110, 36)
ENTRY = (KEYRING_SERVICE, KEYRING_ENTRY)
TEST_ADDRESS = Account.from_key(TEST_KEY).address
# Another fixed test-only key, for a second wallet.
OTHER_KEY = "0x" + "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"


async def send(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


def status_text(app: ChatApp) -> str:
    return str(app.chat.query_one(StatusBar).render())


def stored_address(backend: MemoryKeyring) -> str | None:
    """The address of the key the keyring holds, or None."""
    secret = backend.secrets.get(ENTRY)
    return None if secret is None else Account.from_key(secret).address


def words_on_screen(app: ChatApp) -> str:
    """The words on screen, with box frames and line breaks taken out, so a sentence wrapped
    inside a dialog reads as one."""
    return " ".join(re.sub(r"[\u2500-\u259f]", " ", visible_text(app)).split())


def notices(app: ChatApp) -> str:
    return "\n".join(note.message for note in app._notifications)


async def setup_shown(pilot: Pilot) -> WalletSetup:
    """The setup screen, once it is drawn with its choices in focus."""
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, WalletSetup) and isinstance(app.focused, OptionList),
        "the wallet setup",
    )
    await pilot.pause()
    return app.screen  # type: ignore[return-value]


async def view_shown(pilot: Pilot, setup: WalletSetup, view: str) -> None:
    """Wait for the setup's step `view`, and for it to be drawn."""
    await wait_for(pilot, lambda: setup.view == view, view)
    await pilot.pause()


def assert_key_hidden(screenshot: str, key: str, step: str) -> None:
    """No run of 12 hex digits of `key` is in the screenshot: not whole, not in pieces, with or
    without 0x, in any case, in the picture's text or anywhere in the SVG around it."""
    bare = key.lower().removeprefix("0x")
    words = html.unescape(re.sub(r"<[^>]+>", "", screenshot))
    for text in (screenshot.lower(), re.sub(r"\s", "", words).lower()):
        for start in range(len(bare) - 11):
            assert bare[start : start + 12] not in text, f"part of the key on screen: {step}"


async def test_a_first_start_walks_to_a_funded_address_by_keyboard_alone(memory_keyring):
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            setup = await setup_shown(pilot)
            on_screen = words_on_screen(app)
            assert "paid for when you ask, in USDC" in on_screen
            assert "kept in your OS keyring" in on_screen
            assert "no wallet" in status_text(app)

            await pilot.press("down", "enter")  # the second choice: a new key
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the new wallet")
            await view_shown(pilot, setup, "setup-ready")
            address = stored_address(memory_keyring)
            assert address is not None, "the new key is in the keyring"
            assert [m.address for m in posted.of(WalletChanged)] == [address]
            await wait_for(pilot, lambda: address in words_on_screen(app), "the address shown")
            on_screen = words_on_screen(app)
            assert "send USDC on Base" in on_screen and "No ETH is needed" in on_screen
            assert "xrouter-tui key export" in on_screen, "it says how to keep a copy"
            assert short_address(address) in status_text(app)
            assert_key_hidden(app.export_screenshot(), memory_keyring.secrets[ENTRY], "ready")

            await pilot.press("c")
            await wait_for(pilot, lambda: app.clipboard == address, "the address copied")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat")
            assert isinstance(app.focused, PromptInput), "typing goes straight into the prompt"
            await send(pilot, "hello")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
    payments = chat.router.state.payments
    assert [payment.payer.lower() for payment in payments] == [address.lower()]


async def test_a_bad_key_is_refused_in_plain_words_and_nothing_is_stored(memory_keyring):
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE) as pilot:
            setup = await setup_shown(pilot)
            await pilot.press("enter")  # the first choice: import
            await view_shown(pilot, setup, "setup-import")
            key_input = setup.query_one(KeyInput)
            assert key_input.password and app.focused is key_input

            await send(pilot, "not a key")
            error = "That is not a private key: expected 64 hex digits"
            await wait_for(pilot, lambda: error in words_on_screen(app), "the error")
            assert "Nothing was stored." in words_on_screen(app)
            assert key_input.value == "", "what was typed is gone from the box"
            assert app.focused is key_input, "ready for another try"

            # Hex of the right length, but no key: zero is not on the curve.
            await send(pilot, "0" * 64)
            invalid = "That is not a valid secp256k1 private key."
            await wait_for(pilot, lambda: invalid in words_on_screen(app), "the second error")
            assert memory_keyring.secrets == {}
            assert setup.view == "setup-import" and app.router.account is None

            # Esc goes back to the choices, and Esc again to the chat, without a wallet.
            await pilot.press("escape")
            await view_shown(pilot, setup, "setup-choose")
            assert error not in words_on_screen(app) and invalid not in words_on_screen(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat")
            assert "no wallet" in status_text(app)


async def test_an_imported_key_is_stored_and_never_shown(memory_keyring):
    account = Account.create()
    bare = bytes(account.key).hex()
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            shots = {"the setup": app.export_screenshot()}
            setup = await setup_shown(pilot)
            shots["the choices"] = app.export_screenshot()
            await pilot.press("i")
            await view_shown(pilot, setup, "setup-import")
            shots["the empty box"] = app.export_screenshot()
            # Upper case with 0x: the keyring gets the key all the same.
            typed = "0x" + bare.upper()
            for start in range(0, len(typed), 11):
                await pilot.press(*typed[start : start + 11])
                shots[f"{start + 11} characters typed"] = app.export_screenshot()
            assert "•" * len(typed) in words_on_screen(app), "every character is masked"
            await pilot.press("enter")
            shots["just after Enter"] = app.export_screenshot()
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the wallet")
            await view_shown(pilot, setup, "setup-ready")
            shots["the funded address"] = app.export_screenshot()
            await wait_for(pilot, lambda: account.address in words_on_screen(app), "the address")
            await pilot.press("c")
            await wait_for(pilot, lambda: app.clipboard == account.address, "the address copied")
            shots["the address copied"] = app.export_screenshot()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat")
            shots["the chat"] = app.export_screenshot()
            said = notices(app)

    assert stored_address(memory_keyring) == account.address
    assert memory_keyring.secrets[ENTRY] == "0x" + bare, "kept in one spelling"
    assert posted.of(WalletChanged)[0].address == account.address
    for step, shot in shots.items():
        assert_key_hidden(shot, bare, step)
    assert_key_hidden(said, bare, "the notifications")
    assert_key_hidden(app.clipboard, bare, "the clipboard")


async def test_a_locked_keyring_says_how_to_fix_it_and_esc_still_reaches_the_chat(
    memory_keyring,
):
    memory_keyring.locked = True
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            await setup_shown(pilot)
            on_screen = words_on_screen(app)
            assert "it is locked" in on_screen
            assert "gnome-keyring-daemon --unlock" in on_screen
            assert ENV_KEY in on_screen
            assert "chat without a wallet" in on_screen

            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat")
            assert isinstance(app.focused, PromptInput)
            assert "no wallet" in status_text(app)
            await send(pilot, "hello")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the failure")
            assert "no wallet key is set up" in posted.of(ResponseFailed)[0].error
            assert app.chat.query_one(PromptInput).text == "hello", "the prompt comes back"

            # Unlocked, the palette leads back to the setup, and a key is made.
            memory_keyring.locked = False
            await run_command(pilot, "set up wallet")
            setup = await setup_shown(pilot)
            await pilot.press("g")
            await view_shown(pilot, setup, "setup-ready")
            assert app.router.address == stored_address(memory_keyring)
    assert chat.router.state.paid_requests == 0


async def test_a_key_in_the_keyring_goes_straight_to_the_chat(memory_keyring):
    memory_keyring.secrets[ENTRY] = TEST_KEY
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the wallet")
            await pilot.pause()
            assert [m.address for m in posted.of(WalletChanged)] == [TEST_ADDRESS]
            assert not any(isinstance(screen, WalletSetup) for screen in app.screen_stack)
            assert short_address(TEST_ADDRESS) in status_text(app)
            await send(pilot, "hello")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
    assert [p.payer.lower() for p in chat.router.state.payments] == [TEST_ADDRESS.lower()]


class GatedKeyring(MemoryKeyring):
    """A keyring that answers only once the test lets it, as a Secret Service waiting to be
    unlocked does."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def get_password(self, service: str, username: str) -> str | None:
        self.gate.wait(timeout=30)  # a deadline, so a broken test cannot hang the run
        return super().get_password(service, username)


async def test_the_keyring_is_read_in_a_thread_while_the_chat_takes_keys():
    gated = GatedKeyring()
    gated.secrets[ENTRY] = TEST_KEY
    keyring.set_keyring(gated)  # the memory_keyring fixture puts the keyring back after
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            try:
                await wait_for(
                    pilot, lambda: "opening keyring" in status_text(app), "the keyring's note"
                )
                await pilot.press(*"typed meanwhile")
                assert app.chat.query_one(PromptInput).text == "typed meanwhile"
            finally:
                gated.gate.set()
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the wallet")
            await wait_for(pilot, lambda: short_address(TEST_ADDRESS) in status_text(app), "it")
            assert "opening keyring" not in status_text(app)


async def test_the_palette_shows_and_copies_the_wallet_address(memory_keyring):
    memory_keyring.secrets[ENTRY] = TEST_KEY
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the wallet")
            await run_command(pilot, "show wallet address")
            await wait_for(pilot, lambda: TEST_ADDRESS in notices(app), "the address")
            assert app.clipboard == TEST_ADDRESS


async def test_forgetting_the_key_asks_first(memory_keyring):
    memory_keyring.secrets[ENTRY] = TEST_KEY
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the wallet")

            # No has the focus: Enter keeps the key.
            await run_command(pilot, "forget key")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
            on_screen = words_on_screen(app)
            assert TEST_ADDRESS in on_screen and "only a copy of the key can spend it" in on_screen
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat")
            assert stored_address(memory_keyring) == TEST_ADDRESS
            assert short_address(TEST_ADDRESS) in status_text(app)

            # Right to Yes, Enter: gone from the keyring, and from the chat.
            await run_command(pilot, "forget key")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
            await pilot.press("right", "enter")
            await wait_for(pilot, lambda: len(posted.of(WalletChanged)) == 2, "no wallet")
            assert posted.of(WalletChanged)[-1].address == ""
            assert memory_keyring.secrets == {}
            assert app.router.account is None and app.client.account is None
            assert "no wallet" in status_text(app)
            assert f"The key of {TEST_ADDRESS} is gone from the keyring" in notices(app)


async def test_replacing_the_key_warns_that_the_old_wallet_is_lost(memory_keyring):
    memory_keyring.secrets[ENTRY] = TEST_KEY
    posted = Posted()
    with keyless_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: posted.of(WalletChanged), "the wallet")

            await run_command(pilot, "replace key")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the warning")
            on_screen = words_on_screen(app)
            assert TEST_ADDRESS in on_screen
            assert "loses that wallet" in on_screen and "copy of its key" in on_screen
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat")
            assert stored_address(memory_keyring) == TEST_ADDRESS

            await run_command(pilot, "replace key")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the warning")
            await pilot.press("y")
            setup = await setup_shown(pilot)
            assert setup.replacing == TEST_ADDRESS
            await pilot.press("i")
            await view_shown(pilot, setup, "setup-import")
            await send(pilot, OTHER_KEY)
            await view_shown(pilot, setup, "setup-ready")
            other = Account.from_key(OTHER_KEY).address
            assert stored_address(memory_keyring) == other
            assert posted.of(WalletChanged)[-1].address == other
            assert short_address(other) in status_text(app)


async def test_a_key_from_the_environment_overrides_the_keyring(memory_keyring):
    memory_keyring.secrets[ENTRY] = OTHER_KEY
    env = {ENV_KEY: TEST_KEY}
    with start_dev_server(DevServerConfig(network=BASE_SEPOLIA.v1_name)) as router:
        # As `xrouter-tui` starts it with the key in the environment.
        account = load_account(env, use_keyring=False)
        app = ChatApp(load_settings(), RouterSetup(router.url, account, (BASE_SEPOLIA,)), env=env)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert not any(isinstance(screen, WalletSetup) for screen in app.screen_stack)
            await run_command(pilot, "show wallet address")
            await wait_for(pilot, lambda: TEST_ADDRESS in notices(app), "the address")
            assert f"{ENV_KEY}, which overrides the keyring" in notices(app)
            app.clear_notifications()
            for command in ("forget key", "replace key"):
                await run_command(pilot, command)
                await wait_for(pilot, lambda: "overrides the keyring" in notices(app), command)
                assert isinstance(app.screen, ChatScreen), "nothing to confirm"
                app.clear_notifications()
    assert memory_keyring.secrets[ENTRY] == OTHER_KEY, "the keyring is left alone"


async def test_the_demo_keeps_its_throwaway_wallet_and_out_of_the_keyring(memory_keyring):
    memory_keyring.secrets[ENTRY] = OTHER_KEY
    with demo_chat() as chat:
        app = chat.app
        async with app.run_test(size=SIZE) as pilot:
            for command in ("show wallet address", "forget key", "replace key"):
                await run_command(pilot, command)
                await wait_for(pilot, lambda: "throwaway wallet" in notices(app), command)
                assert isinstance(app.screen, ChatScreen), command
                app.clear_notifications()
            assert app.router.account == chat.account
    assert memory_keyring.secrets[ENTRY] == OTHER_KEY


async def test_the_new_address_shows_its_balance_until_it_is_funded(memory_keyring, monkeypatch):
    config = DevServerConfig(network=BASE_SEPOLIA.v1_name, chain=True)
    with start_dev_server(config) as router:
        monkeypatch.setenv("XROUTER_RPC_URL", f"{router.url}/rpc")  # the local chain
        app = make_keyless_app(router.url)
        async with app.run_test(size=SIZE) as pilot:
            setup = await setup_shown(pilot)
            await pilot.press("down", "enter")  # a new key
            await view_shown(pilot, setup, "setup-ready")
            address = stored_address(memory_keyring)
            assert address is not None
            waiting = "Balance: $0.000000 on Base Sepolia (test network); waiting for USDC"
            await wait_for(pilot, lambda: waiting in words_on_screen(app), "no USDC yet", 60)
            router.chain.mint(address, 2_500_000)  # someone sends $2.50
            funded = "Balance: $2.500000 USDC on Base Sepolia (test network). Ready to pay."
            await wait_for(pilot, lambda: funded in words_on_screen(app), "the funds", 60)
