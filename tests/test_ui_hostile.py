"""The full-screen chat against a hostile router: nothing it sends reaches the terminal as a
control code, or is read as markup, and its readable words are still shown.

Every test drives the real app through Pilot against the local router with one of its hostile
faults (escape sequences in the answer, the model list, error bodies, the 402, a mid-stream
error, the receipt), or over a history that holds them, and looks at what a terminal would be
sent: every line of every screen in the stack as the compositor draws it, and every widget's
own lines (an answer scrolled out of view included), encoded as Textual encodes them for a
terminal. Colours and styles (SGR) are the only escape sequences allowed there. The last test
runs the installed program in tmux and asks tmux whether its window title was changed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.app import App
from textual.geometry import Region
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets import DataTable, OptionList

from tests.test_e2e_tmux import (  # noqa: F401 (`tmux` is a fixture)
    DEADLINE,
    POLL,
    PROGRAM,
    REPLY_END,
    Tmux,
    tmux,
    words,
)
from tests.test_e2e_tmux import wait_for as wait_for_screen
from tests.ui_helpers import TEST_KEY, Posted, demo_chat, run_command, wait_for
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.hostile import (
    HOSTILE_DELTAS,
    HOSTILE_MODEL_ID,
    HOSTILE_TEXT,
    SAFE_WORD,
    markers_in,
)
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import PaymentRecord, Store
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.safe_text import MALFORMED
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed
from xrouter_tui.ui.screens.conversations import ConversationsScreen
from xrouter_tui.ui.screens.ledger import LedgerScreen
from xrouter_tui.ui.screens.model_picker import ModelPicker
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ChatLog, ErrorBlock
from xrouter_tui.ui.widgets.status_bar import StatusBar

SIZE = (110, 40)
WIDE = (170, 40)
# Colours and text styles: what every frame is drawn with, and all a terminal may be sent.
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
# What the hostile sequences would show if they got through: the window title they set, the
# clipboard they write (base64 of `rm -rf ~`), the link they hide.
PAYLOADS = ("pwned", "cm0gLXJmIH4", "evil.example")
# Markup a router could put in a model's id: drawn as markup it would be bold red, and a
# click on it would quit the app. It must be shown as the characters it is.
MARKUP_MODEL = "[bold red]hostile[@click=app.quit]-model"
# The hostile text's readable words, as shown: an OSC 8 link's text stays, without its link;
# on one line (an error, a title) the spaces between them are one.
WORDS = f"{SAFE_WORD} click  words  {SAFE_WORD}"
LINE_WORDS = " ".join(WORDS.split())
# The sequence cut across two deltas sets the window title to this.
SPLIT_TITLE = "split"


def hostile(*faults: str, **options: object) -> DevServerConfig:
    return DevServerConfig(network=BASE_SEPOLIA.v1_name, faults=set(faults), **options)


# -- what the terminal would be sent --------------------------------------------------------


def drawn_strips(app: App) -> list[Strip]:
    """Every line the app would draw now: each screen in the stack as composed (toasts and
    dialogs included), and each widget's own lines, also those scrolled out of view."""
    strips: list[Strip] = []
    for screen in app.screen_stack:
        strips += screen._compositor.render_strips()
        for widget in screen.query("*"):
            if widget.display and widget.size.area:
                strips += widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return strips


def shown(app: App) -> str:
    """The text of every line the app would draw now."""
    return "\n".join(strip.text for strip in drawn_strips(app))


async def assert_harmless(pilot: Pilot, *readable: str) -> str:
    """No control character in what the app draws, nor any escape sequence but colours in what
    it would send a terminal for it; the `readable` words are shown. Returns the text shown."""
    await pilot.pause()
    strips = drawn_strips(pilot.app)
    text = "\n".join(strip.text for strip in strips)
    sent = "".join(strip.render(pilot.app.console) for strip in strips)
    assert markers_in(text) == [], "a control character is drawn"
    assert markers_in(_SGR.sub("", sent)) == [], "an escape sequence would reach the terminal"
    for payload in PAYLOADS:
        assert payload not in text, f"{payload!r}, a hostile sequence's payload, is shown"
    for word in readable:
        assert word in text, f"{word!r} is not shown"
    return text


def notifications(app: App) -> list[str]:
    return [f"{note.title} {note.message}" for note in app._notifications]


async def ask(pilot: Pilot, posted: Posted, text: str = "Say something") -> None:
    """Send `text` and wait until its turn ends, whichever way."""
    await pilot.press(*text)
    await pilot.press("enter")
    await wait_for(
        pilot, lambda: posted.of(ResponseComplete) or posted.of(ResponseFailed), "the turn to end"
    )
    await pilot.pause()


async def open_picker(pilot: Pilot) -> ModelPicker:
    await pilot.press("f2")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ModelPicker), "the model picker")
    await pilot.pause()
    return pilot.app.screen  # type: ignore[return-value]


async def open_ledger(pilot: Pilot) -> LedgerScreen:
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LedgerScreen), "the ledger")
    screen: LedgerScreen = pilot.app.screen  # type: ignore[assignment]
    await wait_for(pilot, lambda: screen.spending is not None, "the ledger to read the history")
    await pilot.pause()
    return screen


async def close(pilot: Pilot, screen_type: type) -> None:
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, screen_type), "it to close")


async def scroll_log_home(pilot: Pilot) -> None:
    pilot.app.chat.query_one(ChatLog).scroll_home(animate=False, immediate=True)
    await pilot.pause()


async def check_picker_and_ledger(pilot: Pilot) -> None:
    """F2 and F3 draw nothing harmful either, whatever the turn left behind."""
    await open_picker(pilot)
    await assert_harmless(pilot, "Type to filter")
    await close(pilot, ModelPicker)
    await open_ledger(pilot)
    await assert_harmless(pilot, "Spending")
    await close(pilot, LedgerScreen)


# -- the tests ------------------------------------------------------------------------------


async def test_an_answer_with_escapes_shows_its_words_and_nothing_else():
    posted = Posted()
    with demo_chat(hostile("escape-answer")) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await ask(pilot, posted)
            assert posted.of(ResponseComplete), "the hostile answer is still an answer"
            answer = pilot.app.chat.query_one(AnswerMessage)
            source = answer.body.source
            assert markers_in(source) == []
            # Nothing between the words: a sequence cut across two deltas is dropped whole.
            assert source.startswith(WORDS + "\n\n")
            assert "In short" in source, "the rest of the answer follows"
            text = await assert_harmless(pilot, "In short")
            await scroll_log_home(pilot)
            text = await assert_harmless(pilot, WORDS)
            # The reasoning got the same deltas, and the same treatment.
            assert text.count(WORDS) >= 2, "answer and reasoning"

            # The history is a record: it keeps what the router sent.
            store = pilot.app.store
            assert store is not None and pilot.app.chat.conversation_id is not None
            _question, reply = store.messages(pilot.app.chat.conversation_id)
            assert reply.content.startswith(HOSTILE_TEXT)

            # What is copied is what is shown: pasted into a terminal, it runs nothing.
            await run_command(pilot, "Copy last answer")
            await wait_for(pilot, lambda: pilot.app.clipboard, "the answer copied")
            assert markers_in(pilot.app.clipboard) == []
            assert pilot.app.clipboard.startswith(WORDS)

            await check_picker_and_ledger(pilot)


async def test_a_model_list_with_escapes_is_shown_and_picked_without_them():
    posted = Posted()
    with demo_chat(hostile("escape-models")) as chat:
        # Wide enough for the names, which the escapes come after, to show in full.
        async with chat.app.run_test(size=WIDE, message_hook=posted) as pilot:
            app = pilot.app
            await wait_for(
                pilot,
                lambda: any(model.id == HOSTILE_MODEL_ID for model in app.models),
                "the router's model list",
            )
            picker = await open_picker(pilot)
            options = picker.query_one(OptionList)
            prompts = [
                str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
            ]
            assert len(prompts) == len(app.models)
            assert all(markers_in(prompt) == [] for prompt in prompts), "every row, shown or not"
            # Names and descriptions carry the escapes: the names' words are still there.
            await assert_harmless(pilot, LINE_WORDS)

            # The model whose id holds escapes is found by the id as shown, and picked.
            await pilot.press(*"hostile/safe")
            await wait_for(pilot, lambda: options.option_count == 1, "the list filtered")
            await assert_harmless(pilot, f"hostile/{SAFE_WORD}-model")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.model == HOSTILE_MODEL_ID, "the model picked")
            text = await assert_harmless(pilot, f"hostile/{SAFE_WORD}-model")
            status = app.chat.query_one(StatusBar)
            bar = str(status.render())
            assert f"hostile/{SAFE_WORD}-model  idle" in bar and markers_in(bar) == []
            assert any(f"Model: hostile/{SAFE_WORD}-model" in note for note in notifications(app))
            assert f"now hostile/{SAFE_WORD}-model" not in text  # the picker is closed

            # The local router knows no such model: its error quotes the id, escapes and all.
            await ask(pilot, posted)
            assert posted.of(ResponseFailed)
            error = str(app.chat.query_one(ErrorBlock).render())
            assert f"hostile/{SAFE_WORD}-model" in error and markers_in(error) == []
            await assert_harmless(pilot, f"hostile/{SAFE_WORD}-model")
            await check_picker_and_ledger(pilot)


@pytest.mark.parametrize(
    ("fault", "outcome", "readable"),
    [
        # The unpaid request is answered with an error whose message carries the escapes.
        ("escape-error", ResponseFailed, f"Upstream failed: {LINE_WORDS}"),
        # The 402's error and descriptions carry them; it is still paid, and answered.
        ("escape-challenge", ResponseComplete, REPLY_END),
        # The stream ends with an error whose message carries them.
        ("escape-midstream-error", ResponseFailed, LINE_WORDS),
    ],
)
async def test_errors_and_challenges_with_escapes_are_plain_lines(fault, outcome, readable):
    posted = Posted()
    with demo_chat(hostile(fault)) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await ask(pilot, posted)
            assert posted.of(outcome), posted.messages[-5:]
            await assert_harmless(pilot, readable)
            if outcome is ResponseFailed:
                error = str(pilot.app.chat.query_one(ErrorBlock).render())
                assert readable in error and markers_in(error) == []
                toasts = notifications(pilot.app)
                assert any("The answer failed" in note for note in toasts), toasts
                assert all(markers_in(note) == [] for note in toasts)
            await check_picker_and_ledger(pilot)


@pytest.mark.parametrize("fault", ["escape-receipt", "formula-receipt"])
async def test_a_receipt_that_is_no_hash_is_shown_as_malformed_and_never_copied(fault):
    posted = Posted()
    with demo_chat(hostile(fault)) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            app = pilot.app
            await ask(pilot, posted)
            assert posted.of(ResponseComplete)
            footer = str(app.chat.query_one(AnswerMessage).footer.render())
            assert f"tx {MALFORMED}" in footer and "charged $" in footer
            await assert_harmless(pilot, f"tx {MALFORMED}")

            await run_command(pilot, "Copy last transaction")
            await wait_for(
                pilot, lambda: any(MALFORMED in note for note in notifications(app)), "a notice"
            )
            assert app.clipboard == "", "what the router sent for a hash is not copied"

            screen = await open_ledger(pilot)
            table = screen.query_one(DataTable)
            [row] = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
            assert MALFORMED in row
            await assert_harmless(pilot, MALFORMED)
            app.clear_notifications()
            await pilot.press("c")
            await wait_for(pilot, lambda: notifications(app), "the ledger's notice")
            assert MALFORMED in notifications(app)[0] and app.clipboard == ""
            await assert_harmless(pilot, MALFORMED)


async def test_markup_in_router_words_is_shown_as_typed():
    posted = Posted()
    with demo_chat(model=MARKUP_MODEL) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            app = pilot.app
            await assert_harmless(pilot, MARKUP_MODEL)  # the status bar
            await open_picker(pilot)
            await assert_harmless(pilot, f"now {MARKUP_MODEL}")
            await close(pilot, ModelPicker)

            # The local router does not know the model, and says so, quoting it.
            question = "[b]bold?[/b] [@click=app.quit]click me[/]"
            await ask(pilot, posted, question)
            assert posted.of(ResponseFailed) and app.is_running
            assert app.chat.query_one(AnswerMessage).border_title is not None
            text = await assert_harmless(pilot, MARKUP_MODEL, f"Unknown model: {MARKUP_MODEL}")
            assert question in text, "the question as typed (it is back in the prompt, too)"
            assert any(MARKUP_MODEL in note for note in notifications(app))

            # The conversation's title is the question, markup and all.
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, ConversationsScreen), "the list")
            await assert_harmless(pilot, question[:30], MARKUP_MODEL)
            await pilot.press("d")
            await wait_for(pilot, lambda: "Delete this conversation?" in shown(app), "the question")
            await assert_harmless(pilot, f"“{question}”")
            await pilot.press("n")
            assert app.is_running


@contextmanager
def hostile_history() -> Iterator[int]:
    """A conversation saved with escapes everywhere the router's words go: its title, model,
    answer, error and payment (model, reason, transaction); yields its id."""
    with Store.open(history_path()) as store:
        conversation_id = store.new_conversation(
            HOSTILE_MODEL_ID, title=f"{HOSTILE_TEXT} [bold red]title"
        )
        store.add_message(conversation_id, "user", f"A question {HOSTILE_TEXT}")
        reply_id = store.add_message(
            conversation_id, "assistant", "", model=HOSTILE_MODEL_ID, status="streaming"
        )
        payment_id = store.record_payment(
            reply_id,
            # A network the ledger counts, so that the payment is listed there.
            PaymentRecord(BASE_SEPOLIA.v1_name, "0xasset", 1234, 6, "0xto", "0xpayer", "0x01", 1),
            model=HOSTILE_MODEL_ID,
        )
        store.update_payment(
            payment_id, "settled", tx=f"0x{'ab' * 32}{HOSTILE_TEXT}", reason=HOSTILE_TEXT
        )
        store.finish_message(
            reply_id, "failed", text=f"{HOSTILE_TEXT}the answer", error=f"Broke {HOSTILE_TEXT}"
        )
        yield conversation_id


async def test_a_saved_conversation_with_escapes_is_listed_searched_and_opened_without_them():
    with hostile_history() as conversation_id:
        posted = Posted()
        with demo_chat(demo=False) as chat:  # the user's own history
            async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
                app = pilot.app
                await pilot.press("ctrl+o")
                await wait_for(pilot, lambda: isinstance(app.screen, ConversationsScreen), "list")
                await assert_harmless(pilot, f"{LINE_WORDS} [bold red]title")
                await pilot.press("slash", *SAFE_WORD)
                await wait_for(pilot, lambda: "1 matching" in shown(app), "the search")
                await assert_harmless(pilot, f"A question {LINE_WORDS}")
                await pilot.press("enter")
                log = app.chat.query_one(ChatLog)
                await wait_for(pilot, lambda: log.query(ErrorBlock), "the conversation shown")
                await assert_harmless(
                    pilot,
                    WORDS,
                    "the answer",
                    f"Broke {WORDS}",
                    f"tx {MALFORMED}",
                )
                screen = await open_ledger(pilot)
                table = screen.query_one(DataTable)
                row = [str(cell) for cell in table.get_row_at(0)]
                assert MALFORMED in row and f"hostile/{SAFE_WORD}-model" in row
                await assert_harmless(pilot, f"hostile/{SAFE_WORD}-model", MALFORMED)
        # Shown, searched and opened: the record is as it was written.
        with Store.open(history_path()) as store:
            question, reply = store.messages(conversation_id)
            assert question.content == f"A question {HOSTILE_TEXT}"
            assert reply.content == f"{HOSTILE_TEXT}the answer"


# -- in a real terminal ---------------------------------------------------------------------


def chat_command(home: Path, key_file: Path, url: str) -> list[str]:
    """`xrouter-tui --base-url URL` with a minimal environment (as `program_command`), paying
    with the test key, which is read from a file so that it is in no command line."""
    assignments = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "XROUTER_CONFIG_DIR": os.environ["XROUTER_CONFIG_DIR"],
        "XROUTER_DATA_DIR": os.environ["XROUTER_DATA_DIR"],
    }
    script = 'XROUTER_PRIVATE_KEY=$(cat "$1") exec "$2" --base-url "$3"'
    return [
        "env",
        "-i",
        *(f"{name}={value}" for name, value in assignments.items()),
        *("sh", "-c", script, "sh", str(key_file), str(PROGRAM), url),
    ]


def test_a_hostile_answer_in_a_real_terminal_leaves_its_title_and_clipboard_alone(
    tmux: Tmux,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    assert PROGRAM.is_file(), f"{PROGRAM} is missing: pip install -e '.[test]'"
    config = Path(os.environ["XROUTER_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text('allowed_networks = ["base-sepolia"]\n', encoding="utf-8")
    key_file = tmp_path / "key"
    key_file.write_text(TEST_KEY, encoding="ascii")
    key_file.chmod(0o600)
    # The hostile answer's deltas, then an error that carries them too: all of it, its words
    # shown at the top and at the bottom of the turn, fits on one screen.
    faults = hostile("escape-answer", "escape-midstream-error", fault_after=len(HOSTILE_DELTAS))
    with start_dev_server(faults) as router:
        tmux.start(chat_command(tmp_path / "home", key_file, router.url))
        wait_for_screen(tmux, lambda screen: "Ask anything" in screen, "the chat to start")
        # tmux takes OSC 52 from the program into a paste buffer: a write would be seen there.
        tmux.run("set-option", "-g", "set-clipboard", "on")
        title = tmux.run("display-message", "-p", "-t", "e2e", "#{pane_title}")

        tmux.type("Say something")
        tmux.press("Enter")
        screen = wait_for_screen(
            tmux,
            lambda screen: words(screen).count(LINE_WORDS) >= 3 and "Say something" in screen,
            "the answer, its reasoning and its error, each with the safe words",
        )
        assert tmux.run("display-message", "-p", "-t", "e2e", "#{pane_title}") == title
        assert "pwned" not in title and SPLIT_TITLE not in title
        assert tmux.run("list-buffers") == "", "nothing was written to the clipboard"
        for payload in PAYLOADS:
            assert payload not in screen, screen

        tmux.press("C-q")
        deadline = time.monotonic() + DEADLINE
        while (status := tmux.exit_status()) is None and time.monotonic() < deadline:
            time.sleep(POLL)
        assert status == 0, f"exit status {status}; the screen:\n{tmux.screen()}"
