"""The chat's history: every turn saved as it goes, the conversations screen (open, new, rename,
delete, search), export, and a damaged history file that must not stop the chat.

Driven by keyboard through Pilot against the local router; assertions are on what the user
sees and on the database itself (opened the way `xrouter-tui history` opens it). The chat runs as
a user runs it against a router (not `--demo`, whose conversations are kept apart), except where
the demo is the subject.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Label, OptionList

from tests.test_store import PAYMENT
from tests.ui_helpers import DemoChat, Posted, demo_chat, run_command, wait_for
from xrouter_tui.config import load_settings
from xrouter_tui.devserver import DevServerConfig
from xrouter_tui.history.export import export_markdown
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import PaymentRecord, Store
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.ui.history import open_history, shown_messages
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed, ResponseStopped
from xrouter_tui.ui.screens.confirm import ConfirmDialog
from xrouter_tui.ui.screens.conversations import ConversationsScreen, TitleDialog
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ChatLog, ErrorBlock, UserMessage
from xrouter_tui.ui.widgets.status_bar import StatusBar

SIZE = (120, 36)
SLOW = DevServerConfig(network=BASE_SEPOLIA.v1_name, delta_delay=0.05, reply_deltas=400)


@contextmanager
def user_chat(config: DevServerConfig | None = None) -> Iterator[DemoChat]:
    """The chat paying the local router as it would pay the user's, not in demo mode."""
    with demo_chat(config, demo=False) as chat:
        yield chat


@contextmanager
def history() -> Iterator[Store]:
    """The history file the chat writes, opened as another reader would."""
    with Store.open(history_path()) as store:
        yield store


async def send(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def turn(pilot: Pilot, posted: Posted, text: str) -> None:
    """Ask `text` and wait for its answer to complete."""
    done = len(posted.of(ResponseComplete))
    await send(pilot, text)
    await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) > done, f"the answer to {text}")


def notifications(pilot: Pilot) -> str:
    return "\n".join(note.message for note in pilot.app._notifications)


async def open_conversations(pilot: Pilot) -> ConversationsScreen:
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConversationsScreen), "the list")
    return pilot.app.screen  # type: ignore[return-value]


def shown_text(screen: ConversationsScreen) -> str:
    """What the screen says in place of an empty list ("" when the list is shown)."""
    label = screen.query_one("#conversations-empty", Label)
    return str(label.render()) if label.display else ""


def rows(screen: ConversationsScreen) -> list[str]:
    options = screen.query_one(OptionList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_a_turn_is_saved_with_its_payment_and_status():
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "Show me a table")
            answer = posted.of(ResponseComplete)[0].answer
            conversation_id = pilot.app.chat.conversation_id

    paid = chat.router.state.payments[0]
    with history() as store:
        [info] = store.conversations()
        assert info.id == conversation_id and info.title == "Show me a table"
        assert info.model == chat.app.model and info.messages == 2
        assert info.spent_usd == Decimal(paid.amount).scaleb(-6) > 0
        question, reply = store.messages(info.id)
    assert (question.role, question.content) == ("user", "Show me a table")
    assert (reply.role, reply.status, reply.content) == ("assistant", "complete", answer.content)
    assert reply.prompt_tokens == answer.usage.prompt_tokens
    assert reply.completion_tokens == answer.usage.completion_tokens
    assert reply.payment is not None
    assert (reply.payment.status, reply.payment.tx) == ("settled", paid.transaction)
    assert reply.payment.payer == chat.account.address


async def test_a_stopped_answer_is_saved_stopped_with_its_partial_text():
    posted = Posted()
    with user_chat(SLOW) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "a long answer please")
            view = pilot.app.chat.query_one(AnswerMessage)
            await wait_for(pilot, lambda: len(view.body.source) > 40, "some text on screen")
            await pilot.press("escape")
            await wait_for(pilot, lambda: posted.of(ResponseStopped), "the stop")
            stopped = posted.of(ResponseStopped)[0].answer

    with history() as store:
        [info] = store.conversations()
        _question, reply = store.messages(info.id)
    assert reply.status == "stopped"
    assert reply.content == stopped.content and len(reply.content) > 40
    assert reply.payment is not None and reply.payment.status == "settled"
    assert chat.router.state.completed_streams == 0


async def test_a_failed_turn_is_saved_failed_with_its_error():
    posted = Posted()
    config = DevServerConfig(network=BASE_SEPOLIA.v1_name, faults={"reject-payment"})
    with user_chat(config) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "will this be paid?")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the failure")
            shown_error = str(pilot.app.chat.query_one(ErrorBlock).render())

    with history() as store:
        [info] = store.conversations()
        question, reply = store.messages(info.id)
        assert store.history_messages(info.id) == [], "a failed question is not sent again"
    assert question.content == "will this be paid?"
    assert reply.status == "failed" and reply.error == shown_error
    assert (
        reply.payment is not None and reply.payment.status == "unknown"
    )  # it may still be charged
    assert info.spent_usd == 0


async def test_conversations_are_listed_newest_first_and_one_resumes_with_its_history():
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "first topic")
            first_answer = posted.of(ResponseComplete)[0].answer.content
            await pilot.press("ctrl+n")
            await pilot.pause()
            with history() as store:
                assert len(store.conversations()) == 1, "a new chat is saved with its question"
            await turn(pilot, posted, "second topic")

            screen = await open_conversations(pilot)
            listed = rows(screen)
            assert len(listed) == 2
            assert listed[0].lstrip("✓ ").startswith("second topic"), "the newest first"
            assert listed[0].startswith("✓"), "the open one is marked"
            assert listed[1].strip().startswith("first topic")
            assert "2 msgs" in listed[1] and "$0." in listed[1]

            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: pilot.app.screen is pilot.app.chat, "the chat")
            log = pilot.app.chat.query_one(ChatLog)
            await wait_for(pilot, lambda: log.query(UserMessage), "the resumed conversation")
            assert [str(m.render()) for m in log.query(UserMessage)] == ["first topic"]
            [answer] = log.query(AnswerMessage)
            assert answer.body.source.strip() == first_answer.strip()
            footer = str(answer.footer.render())
            assert "charged $" in footer and chat.router.state.payments[0].transaction in footer
            first_paid = Decimal(chat.router.state.payments[0].amount).scaleb(-6)
            second_paid = Decimal(chat.router.state.payments[1].amount).scaleb(-6)
            # The status bar counts the session, whichever conversation it paid for.
            assert pilot.app.chat.query_one(StatusBar).session_spend == first_paid + second_paid

            await turn(pilot, posted, "follow up")
            spend = pilot.app.chat.query_one(StatusBar).session_spend

    sent = chat.router.state.payments[2].messages
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "first topic"),
        ("assistant", first_answer),
        ("user", "follow up"),
    ]
    assert spend == first_paid + second_paid + Decimal(chat.router.state.payments[2].amount).scaleb(
        -6
    )
    with history() as store:
        newest, older = store.conversations()
        assert newest.title == "first topic" and newest.messages == 4
        assert older.title == "second topic"


async def test_an_interrupted_answer_resumes_marked_interrupted_and_is_not_sent_again():
    # What a crash mid-answer leaves: an answer still `streaming`, its payment only signed.
    with history() as store:
        model = load_settings().model
        conversation_id = store.new_conversation(model, title="before the crash")
        store.add_message(conversation_id, "user", "will it survive?")
        reply_id = store.add_message(conversation_id, "assistant", "", status="streaming")
        store.update_message_text(reply_id, "half an ans")
        # Signed moments before the crash: its authorization is still valid, so it may settle.
        valid_before = int(time.time()) + 600
        store.record_payment(
            reply_id,
            PaymentRecord(
                "base-sepolia", "0xasset", 1234, 6, "0xto", "0xpayer", "0x01", valid_before
            ),
        )
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            screen = await open_conversations(pilot)
            assert rows(screen)[0].strip().startswith("before the crash")
            await pilot.press("enter")
            log = pilot.app.chat.query_one(ChatLog)
            await wait_for(pilot, lambda: log.query(AnswerMessage), "the resumed conversation")
            answer = log.query_one(AnswerMessage)
            assert answer.body.source.strip() == "half an ans"
            footer = str(answer.footer.render())
            assert footer.startswith("interrupted") and "$0.001234" in footer
            assert "unknown" in footer
            await turn(pilot, posted, "again")
    sent = chat.router.state.payments[0].messages
    assert [m["content"] for m in sent] == ["again"]


async def test_rename_a_conversation():
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "old name")
            screen = await open_conversations(pilot)
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, TitleDialog), "the dialog")
            await pilot.press(*["backspace"] * len("old name"), *"Giraffes", "enter")
            await wait_for(pilot, lambda: pilot.app.screen is screen, "the list again")
            assert rows(screen)[0].lstrip("✓ ").startswith("Giraffes")
    with history() as store:
        assert [info.title for info in store.conversations()] == ["Giraffes"]


async def test_delete_asks_first():
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "keep me")
            await pilot.press("ctrl+n")
            await turn(pilot, posted, "delete me")
            screen = await open_conversations(pilot)

            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "asks")
            warning = str(pilot.app.screen.query_one("#confirm-warning").render())
            assert "delete me" in warning
            # The messages go; what was paid stays where the budgets count it.
            assert "stays in the ledger" in warning
            await pilot.press("n")
            await wait_for(pilot, lambda: pilot.app.screen is screen, "the list again")
            assert len(rows(screen)) == 2, "no deletes nothing"

            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "asks")
            await pilot.press("y")
            await wait_for(pilot, lambda: len(rows(screen)) == 1, "one conversation left")
            assert rows(screen)[0].strip().startswith("keep me")
            assert pilot.app.chat.conversation_id is None, "the next question starts anew"
    with history() as store:
        assert [info.title for info in store.conversations()] == ["keep me"]
        assert len(store.payments()) == 2, "the deleted conversation's payment is still there"


async def test_slash_searches_every_message_and_shows_the_matches():
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "tell me about zebras")
            await pilot.press("ctrl+n")
            await turn(pilot, posted, "and now about owls")
            screen = await open_conversations(pilot)
            # A word being typed finds the longer ones it starts: "zeb" finds "zebras".
            await pilot.press("slash", *"zeb")
            await wait_for(pilot, lambda: len(rows(screen)) == 1, "one match")
            [match] = rows(screen)
            assert match.strip().startswith("tell me about zebras")
            assert "about zebras" in match.split("\n")[1], "where it matched"
            assert "1 matching" in str(screen.query_one("#conversations-title").render())
            # Every word must occur; none does here: that is said, not an empty history.
            await pilot.press(*"ra quetzal")
            await wait_for(pilot, lambda: len(rows(screen)) == 0, "no match")
            assert shown_text(screen) == (
                "No conversation matches “zebra quetzal”. Esc shows them all."
            )
            await pilot.press(*["backspace"] * len(" quetzal"))
            await wait_for(pilot, lambda: len(rows(screen)) == 1, "one match again")
            assert not screen.query_one("#conversations-empty").display

            await pilot.press("escape")  # leaves the search first
            await wait_for(pilot, lambda: len(rows(screen)) == 2, "every conversation")
            # Letters that are keys on the list (n, r, d) are words in the search box.
            await pilot.press("slash", *"and owls")
            await wait_for(pilot, lambda: len(rows(screen)) == 1, "the other match")
            assert rows(screen)[0].lstrip("✓ ").startswith("and now about owls")
            assert pilot.app.screen is screen
            await pilot.press("escape")
            await wait_for(pilot, lambda: len(rows(screen)) == 2, "every conversation")
            await pilot.press("escape")
            await wait_for(pilot, lambda: pilot.app.screen is pilot.app.chat, "closed")


async def test_the_list_opens_on_the_conversation_open_in_the_chat():
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            for topic in ("oldest topic", "middle topic", "newest topic"):
                await pilot.press("ctrl+n")
                await turn(pilot, posted, topic)
            screen = await open_conversations(pilot)
            await pilot.press("down", "down", "enter")  # the oldest
            await wait_for(pilot, lambda: pilot.app.screen is pilot.app.chat, "the chat")
            await wait_for(pilot, lambda: pilot.app.chat.query(UserMessage), "it, opened")

            screen = await open_conversations(pilot)
            options = screen.query_one(OptionList)
            assert options.highlighted == 2, "the cursor on the open one, not the newest"
            assert rows(screen)[2].startswith("✓ oldest topic")
            await pilot.press("up", "enter")
            await wait_for(
                pilot,
                lambda: (
                    [str(m.render()) for m in pilot.app.chat.query(UserMessage)] == ["middle topic"]
                ),
                "the one above it",
            )


async def test_an_empty_history_says_so_and_a_search_in_it_finds_nothing():
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            screen = await open_conversations(pilot)
            assert rows(screen) == []
            nothing = "No saved conversations yet: each chat is kept here from its first question."
            assert shown_text(screen) == nothing
            assert not screen.query_one(OptionList).display
            # No search can find what was never saved: it does not pretend the words missed.
            await pilot.press("slash", *"anything")
            await pilot.pause()
            assert shown_text(screen) == nothing


def test_the_demo_opens_a_history_of_its_own():
    with open_history(os.environ, demo=True) as demo, history() as mine:
        assert demo.path == history_path(demo=True) != mine.path
        assert demo.path.name == "demo-history.sqlite3"
        demo.new_conversation("m", "", "a demo question")
        assert mine.conversations() == []
    with open_history(os.environ) as store:
        assert store.path == history_path() and store.conversations() == []


def test_a_forks_copied_answer_never_reads_as_not_charged():
    with history() as store:
        original = store.new_conversation("m/one", "", "paid question")
        store.add_message(original, "user", "paid question")
        reply = store.add_message(original, "assistant", "", model="m/one", status="streaming")
        payment = store.record_payment(reply, PAYMENT)
        store.update_payment(payment, "settled", tx="0x" + "cd" * 32)
        store.finish_message(reply, "complete", text="a paid answer")
        fork = store.fork(original, reply)
        paid_footer = shown_messages(store.messages(original))[1].footer
        copied_footer = shown_messages(store.messages(fork))[1].footer
        document = export_markdown(store.conversation(fork), store.messages(fork))
    assert "charged $0.013500" in paid_footer
    assert copied_footer == "copied from the original conversation: its cost is counted there"
    assert "not charged" not in copied_footer
    assert "## Assistant (m/one · copied from the original conversation" in document


async def test_export_writes_markdown_and_never_overwrites(tmp_path, monkeypatch):
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "export me")
            conversation_id = pilot.app.chat.conversation_id
            await run_command(pilot, "Export conversation")
            first = folder / f"conversation-{conversation_id}.md"
            await wait_for(pilot, first.exists, "the file")
            assert str(first) in notifications(pilot)
            await run_command(pilot, "Export conversation")
            second = folder / f"conversation-{conversation_id}-2.md"
            await wait_for(pilot, second.exists, "a second file")
            assert str(second) in notifications(pilot)

    with history() as store:
        expected = export_markdown(
            store.conversation(conversation_id), store.messages(conversation_id)
        )
    assert first.read_text() == second.read_text() == expected
    assert "## You\n\nexport me" in expected


async def test_a_damaged_history_file_is_said_once_and_the_chat_still_works():
    path: Path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    damage = b"this is not a database" * 100
    path.write_bytes(damage)
    posted = Posted()
    with user_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: "cannot be opened" in notifications(pilot), "notice")
            await turn(pilot, posted, "still there?")
            assert posted.of(ResponseComplete)[0].answer.content
            await pilot.press("ctrl+o")
            await pilot.pause()
            assert not isinstance(pilot.app.screen, ConversationsScreen)
            said = notifications(pilot)
            history_notes = [n for n in pilot.app._notifications if n.title == "History"]
    assert len(history_notes) == 1, "said once, not at every turn"
    assert "move it aside" in history_notes[0].message
    assert "Traceback" not in said
    assert path.read_bytes() == damage, "the damaged file is left for the user to look at"
    assert chat.router.state.paid_requests == 1


async def test_the_help_lists_the_conversations_key():
    with user_chat() as chat:
        rows = dict(chat.app.key_rows())
        assert "ctrl+o" in rows and "conversations" in rows["ctrl+o"].lower()


async def test_quitting_mid_answer_keeps_it_stopped_with_its_text():
    posted = Posted()
    with user_chat(SLOW) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "a long answer please")
            view = pilot.app.chat.query_one(AnswerMessage)
            await wait_for(pilot, lambda: len(view.body.source) > 40, "some text on screen")
            await pilot.press("ctrl+q")
    with history() as store:
        [info] = store.conversations()
        _question, reply = store.messages(info.id)
    assert reply.status == "stopped" and len(reply.content) > 40


async def test_the_demo_keeps_its_conversations_in_a_history_of_its_own():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "a demo question")
            screen = await open_conversations(pilot)
            assert len(rows(screen)) == 1
    with Store.open(history_path(demo=True)) as store:
        [info] = store.conversations()
        assert info.title == "a demo question"
        [payment] = store.payments()
        assert payment.network == BASE_SEPOLIA.v1_name
    with history() as store:  # the user's own history has none of it
        assert store.conversations() == [] and store.payments() == []
