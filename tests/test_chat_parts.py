"""The chat's plain parts: what a conversation sends, the model catalog on disk, remembered
settings, and what is copied."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from decimal import Decimal

import pytest

from xrouter_tui.api import ModelInfo
from xrouter_tui.chat import ChatMessage, Conversation, MessageStatus
from xrouter_tui.config import ConfigError, config_dir, load_settings, save_setting
from xrouter_tui.model_catalog import ModelCatalog, picker_order
from xrouter_tui.ui.clipboard import clipboard_command, copy_with_system_tool, last_code_block


def exchange(conversation: Conversation, question: str, answer: str, status: MessageStatus):
    conversation.add(ChatMessage("user", question))
    conversation.add(ChatMessage("assistant", answer, status=status))


def test_history_sends_answered_and_stopped_exchanges_and_the_new_question():
    conversation = Conversation(system_prompt="Be brief.")
    exchange(conversation, "q1", "a1", MessageStatus.COMPLETE)
    exchange(conversation, "q2", "half an ans", MessageStatus.STOPPED)
    conversation.add(ChatMessage("user", "q3", status=MessageStatus.FAILED))
    conversation.add(ChatMessage("assistant", "", status=MessageStatus.FAILED, error="boom"))
    exchange(conversation, "q4", "", MessageStatus.STOPPED)  # stopped before any text
    conversation.add(ChatMessage("user", "q5"))
    conversation.add(ChatMessage("assistant", "", status=MessageStatus.STREAMING))

    assert conversation.history() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "half an ans"},
        {"role": "user", "content": "q5"},
    ]


def test_the_last_answer_is_the_newest_with_text():
    conversation = Conversation()
    assert conversation.last_answer() is None
    exchange(conversation, "q1", "a1", MessageStatus.COMPLETE)
    exchange(conversation, "q2", "", MessageStatus.FAILED)
    assert conversation.last_answer().content == "a1"
    assert conversation.spent_usd == Decimal(0)


def test_the_catalog_keeps_each_routers_list_and_recent_choices(tmp_path):
    catalog = ModelCatalog(tmp_path / "data")
    models = [
        ModelInfo("b/cheap", "Cheap", "", 8000, Decimal("0.15"), Decimal("0.6")),
        ModelInfo("a/dear", "Dear", "x", 200_000, Decimal(3), Decimal(15)),
        ModelInfo("c/unpriced", "Unpriced"),
    ]
    assert catalog.cached("http://127.0.0.1:1") is None
    catalog.store("http://127.0.0.1:1", models)
    assert catalog.cached("http://127.0.0.1:1") == sorted(models, key=lambda m: m.id)
    assert catalog.cached("http://127.0.0.1:2") is None
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700

    for model_id in ("a/dear", "c/unpriced", "a/dear"):
        catalog.remember(model_id)
    assert catalog.recent() == ["a/dear", "c/unpriced"]
    ordered = [m.id for m in picker_order(models, catalog.recent())]
    assert ordered == ["a/dear", "c/unpriced", "b/cheap"]


def test_a_damaged_catalog_counts_as_empty(tmp_path):
    catalog = ModelCatalog(tmp_path)
    catalog.path.write_text("{not json")
    assert catalog.cached("http://x") is None and catalog.recent() == []
    catalog.path.write_text(json.dumps({"routers": {"http://x": "nope"}, "recent": [1, "m"]}))
    assert catalog.cached("http://x") is None and catalog.recent() == ["m"]
    catalog.remember("n")  # and it is mended on the next write
    assert catalog.recent() == ["n", "m"]


def test_saving_a_setting_keeps_the_users_file_and_comments():
    folder = config_dir()
    folder.mkdir(parents=True)
    path = folder / "config.toml"
    path.write_text("# my router\nmax_tokens = 500  # short answers\n")
    save_setting("model", "openai/gpt-4o-mini")
    save_setting("theme", "nord")
    save_setting("model", "openai/gpt-4o")
    text = path.read_text()
    assert "# my router" in text and "# short answers" in text
    settings = load_settings()
    assert (settings.model, settings.theme, settings.max_tokens) == ("openai/gpt-4o", "nord", 500)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_saving_refuses_bad_values_and_leaves_a_broken_file_alone():
    with pytest.raises(ConfigError, match="model must be a non-empty string"):
        save_setting("model", "  ")
    folder = config_dir()
    folder.mkdir(parents=True)
    path = folder / "config.toml"
    path.write_text("model = [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*model was not saved"):
        save_setting("model", "openai/gpt-4o")
    assert path.read_text() == "model = [unclosed\n"
    assert [p.name for p in folder.iterdir()] == ["config.toml"], "no temporary file is left"


def test_the_last_code_block_is_found_in_any_fence():
    text = "Intro\n\n```python\nprint(1)\n```\n\nthen\n\n~~~\nsecond\nblock\n~~~\n\nend"
    assert last_code_block(text) == "second\nblock\n"
    assert last_code_block("no code here, only `inline`") is None


def test_a_system_clipboard_tool_is_used_only_where_one_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert clipboard_command({"DISPLAY": ":0"}) is None
    tool = tmp_path / "xclip"
    tool.write_text("#!/bin/sh\ncat > /dev/null\n")
    tool.chmod(0o755)
    assert clipboard_command({"DISPLAY": ":0"}) == ["xclip", "-selection", "clipboard"]
    assert clipboard_command({}) is None, "no X display: xclip would fail"


async def test_the_system_tool_receives_the_text(tmp_path):
    received = tmp_path / "clipboard"
    tool = tmp_path / "fake-copy"
    tool.write_text(f"#!/bin/sh\ncat > {received}\n")
    tool.chmod(0o755)
    assert await copy_with_system_tool("naïve café ✓", [str(tool)])
    assert received.read_text(encoding="utf-8") == "naïve café ✓"
    assert not await copy_with_system_tool("x", [str(tmp_path / "missing")])
    assert not await copy_with_system_tool("x", None)


FRAME_RATE = "import xrouter_tui.cli, xrouter_tui.ui, textual.constants as c; print(c.MAX_FPS)"


@pytest.mark.parametrize(("preset", "expected"), [(None, "120"), ("30", "30")])
def test_the_program_draws_up_to_120_frames_a_second_unless_told_otherwise(preset, expected):
    # Textual reads the rate once, when first imported; the real program's import order must
    # leave the chat's setting in place, and a user's own TEXTUAL_FPS wins.
    env = {key: value for key, value in os.environ.items() if key != "TEXTUAL_FPS"}
    if preset is not None:
        env["TEXTUAL_FPS"] = preset
    result = subprocess.run(
        [sys.executable, "-c", FRAME_RATE], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected
