"""Going on where you left off: `xrouter-tui -c` opens the latest conversation, `--cid ID` a given
one; and the demo never writes the user's config.toml."""

from __future__ import annotations

import pytest

from tests.test_ui import SIZE
from tests.ui_helpers import demo_chat, make_app, wait_for
from xrouter_tui.cli import build_parser
from xrouter_tui.config import config_dir
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.ui.widgets.chat_log import UserMessage
from xrouter_tui.ui.widgets.prompt import PromptInput


def saved_conversations() -> tuple[int, int]:
    with Store.open(history_path()) as store:
        older = store.new_conversation("openai/gpt-4o", "", "older")
        store.add_message(older, "user", "the older question")
        newer = store.new_conversation("openai/gpt-4o", "", "newer")
        store.add_message(newer, "user", "the newer question")
    return older, newer


def test_the_command_line_names_the_conversation_to_open():
    parser = build_parser()
    assert parser.parse_args(["-c"]).open_latest
    assert parser.parse_args(["--cid", "7"]).open_cid == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["-c", "--cid", "7"])


@pytest.mark.parametrize(
    ("which", "shown"), [("latest", "the newer question"), (1, "the older question")]
)
async def test_the_chat_opens_on_the_conversation_asked_for(which, shown):
    older, newer = saved_conversations()
    with start_dev_server(DevServerConfig(network=BASE_SEPOLIA.v1_name)) as router:
        app = make_app(router.url, demo=False)
        app._open_at = which if which == "latest" else older
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: pilot.app.chat.conversation_id is not None, "it")
            assert pilot.app.chat.conversation_id == (newer if which == "latest" else older)
            [question] = pilot.app.chat.query(UserMessage)
            assert str(question.render()) == shown


async def test_a_conversation_that_is_not_there_is_said_and_the_chat_starts_new():
    with start_dev_server(DevServerConfig(network=BASE_SEPOLIA.v1_name)) as router:
        app = make_app(router.url, demo=False)
        app._open_at = 42
        async with app.run_test(size=SIZE) as pilot:

            def said() -> bool:
                notices = [n.message for n in pilot.app._notifications]
                return any("No conversation with id 42" in text for text in notices)

            await wait_for(pilot, said, "the notice")
            assert pilot.app.chat.conversation_id is None


async def test_the_demo_never_writes_the_users_config():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            pilot.app._use_model("openai/gpt-4o")
            pilot.app.theme = "nord"
            await pilot.pause()
            assert pilot.app.model == "openai/gpt-4o"
    assert not (config_dir() / "config.toml").exists()


async def test_up_in_an_empty_prompt_recalls_questions_of_earlier_runs():
    saved_conversations()
    with start_dev_server(DevServerConfig(network=BASE_SEPOLIA.v1_name)) as router:
        app = make_app(router.url, demo=False)
        async with app.run_test(size=SIZE) as pilot:
            box = pilot.app.chat.query_one(PromptInput)
            await wait_for(pilot, lambda: box._sent, "the earlier questions")
            await pilot.press("up")
            assert box.text == "the newer question"
            await pilot.press("up")
            assert box.text == "the older question"
