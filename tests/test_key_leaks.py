"""The wallet key goes nowhere but the keyring: not into a file, an output, a log or a screen.

One test uses the program the way a user does, with every folder it may write to (home,
config, data, cache, state, temp) inside the test's own, and then reads every byte it wrote and
printed, looking for the key in any spelling.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account
from textual.message import Message

from tests.keyring_backend import FILE_VARIABLE
from tests.ui_helpers import make_app, stop_blinking, wait_for
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.ui.messages import ResponseComplete
from xrouter_tui.ui.widgets.prompt import PromptInput
from xrouter_tui.wallet import store_key, stored_account

PROGRAM = str(Path(sys.executable).with_name("xrouter-tui"))


def spellings(secret: bytes) -> list[bytes]:
    """The key as text in the ways it could leak: hex in either case, and the raw bytes."""
    hex_key = secret.hex()
    return [hex_key.encode(), hex_key.upper().encode(), secret]


def leaks(data: bytes, secret: bytes) -> bool:
    return any(spelling in data for spelling in spellings(secret))


async def test_the_key_is_in_no_file_output_or_screen_but_the_keyring(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name, folder in {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local/share",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_STATE_HOME": home / ".local/state",
        "TMPDIR": tmp_path / "tmp",
    }.items():
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(folder))
    account = Account.create()
    secret = bytes(account.key)
    printed: list[bytes] = []

    def program(*args: str, stdin: str | None = None, **env: str) -> int:
        result = subprocess.run(
            [PROGRAM, *args],
            input=(stdin or "").encode(),
            capture_output=True,
            env={**os.environ, **env},
            timeout=60,
        )
        printed.extend((result.stdout, result.stderr))
        return result.returncode

    with start_dev_server(DevServerConfig(network="base", reply_deltas=20)) as router:
        url = router.url
        assert program("key", "import", stdin="0x" + secret.hex()) == 0
        assert program("key", "show") == 0
        assert program("models", "--base-url", url) == 0
        assert program("ask", "--base-url", url, "hello") == 0
        # Failures, with the debugging output on: tracebacks must not carry it either.
        router.config.faults = {"reject-payment"}
        assert program("ask", "--base-url", url, "again", XROUTER_DEBUG="1") != 0
        assert program("ask", "--base-url", "http://127.0.0.1:9", "x", XROUTER_DEBUG="1") != 0
        assert [payment.payer for payment in router.state.payments] == [account.address]

    # The full-screen chat, in this process, paying with the key from its keyring.
    store_key("0x" + secret.hex())
    screens: list[str] = []
    messages: list[Message] = []
    with start_dev_server(DevServerConfig(network=BASE_SEPOLIA.v1_name)) as router:
        app = make_app(router.url, stored_account(), demo=False)
        async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
            stop_blinking(app)
            app.chat.query_one(PromptInput).load_text("What does it cost?")
            await pilot.press("enter")
            await wait_for(
                pilot,
                lambda: any(isinstance(message, ResponseComplete) for message in messages),
                "the answer",
            )
            screens.append(app.export_screenshot())
            app.theme = "nord"  # remembered in config.toml: one more file to search
            await pilot.pause()
        assert [payment.payer for payment in router.state.payments] == [account.address]

    assert not any(leaks(data, secret) for data in printed), "the key was printed"
    assert not any(leaks(screen.encode(), secret) for screen in screens), "the key was shown"
    keyring_file = Path(os.environ[FILE_VARIABLE])
    written = [
        path
        for path in tmp_path.rglob("*")
        if path.is_file() and path != keyring_file and not path.is_symlink()
    ]
    assert written, "the program wrote no file: the search below would prove nothing"
    assert [path for path in written if leaks(path.read_bytes(), secret)] == []
    # The keyring, and nothing else, holds it: the search above can find it where it is.
    assert leaks(keyring_file.read_bytes(), secret)
