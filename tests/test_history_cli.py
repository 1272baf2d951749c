"""The history as a user meets it: the real `xrouter-tui` program against the local router."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from tests import test_cli
from tests.test_cli import PROGRAM, assert_clean, run
from xrouter_tui.commands.history_table import history_json, history_table
from xrouter_tui.history.export import export_json, export_markdown, nest_headings
from xrouter_tui.history.store import ConversationInfo

# test_cli's fixtures: a fresh wallet key, and the local router on Base (by name).
key = test_cli.key
router = test_cli.router


@pytest.fixture
def ask(router, key):
    """Run `xrouter-tui ask ARGS...` against the router with the key in the environment."""
    secret, _ = key

    def run_ask(*args: str):
        result = run(
            "ask", "--base-url", router.url, *args, env_extra={"XROUTER_PRIVATE_KEY": secret}
        )
        assert_clean(result, secret)
        return result

    return run_ask


def history(*args: str) -> list[dict]:
    result = run("history", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def exported(conversation_id: int) -> dict:
    result = run("export", str(conversation_id), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert_clean(result)
    return json.loads(result.stdout)


def database(isolated_environment: Path) -> Path:
    return isolated_environment / "data" / "history.sqlite3"


def test_ask_saves_the_question_the_answer_and_the_payment(ask, router, key):
    result = ask("What is x402?")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("· conversation 1")
    [listed] = history()
    assert {"id", "title", "model", "messages", "updated", "spent_usd"} <= set(listed)
    assert listed["id"] == 1 and listed["title"] == "What is x402?" and listed["messages"] == 2
    assert listed["model"] == "anthropic/claude-3.5-sonnet"
    accepted = router.state.payments[0]
    # Six decimals, as USDC counts: the JSON carries the text people read.
    assert listed["spent_usd"] == f"{accepted.amount // 10**6}.{accepted.amount % 10**6:06d}"

    document = exported(1)
    assert document["id"] == 1 and document["title"] == "What is x402?"
    question, answer = document["messages"]
    for message in (question, answer):
        assert {"role", "content", "status", "model", "prompt_tokens", "completion_tokens"} <= set(
            message
        )
    assert (question["role"], question["content"], question["status"]) == (
        "user",
        "What is x402?",
        "complete",
    )
    assert question["payment"] is None
    assert answer["role"] == "assistant" and answer["status"] == "complete"
    assert answer["content"] == result.stdout.rstrip("\n") or answer["content"] == result.stdout
    assert answer["prompt_tokens"] > 0 and answer["completion_tokens"] > 0
    payment = answer["payment"]
    assert payment["tx"] == accepted.transaction and payment["network"] == "base"
    assert payment["amount_usd"] == listed["spent_usd"]
    assert payment["status"] == "settled" and payment["payer"] == key[1]
    assert payment["nonce"] == accepted.nonce


def test_the_key_is_never_in_the_database(ask, key, isolated_environment):
    secret, _ = key
    assert ask("hi").returncode == 0
    raw = b"".join(path.read_bytes() for path in database(isolated_environment).parent.iterdir())
    assert secret.encode() not in raw.lower() and bytes.fromhex(secret) not in raw


def test_continue_sends_the_earlier_exchange_and_adds_to_the_conversation(ask, router):
    first = ask("-s", "be brief", "first question")
    assert first.returncode == 0, first.stderr
    second = ask("-c", "second question")
    assert second.returncode == 0, second.stderr
    assert second.stderr.strip().endswith("· conversation 1")
    earlier_answer = exported(1)["messages"][1]["content"]
    assert list(router.state.payments[1].messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": earlier_answer},
        {"role": "user", "content": "second question"},
    ]
    [listed] = history()
    assert listed["messages"] == 4 and listed["title"] == "first question"


def test_cid_continues_the_given_conversation(ask, router):
    assert ask("about cats").returncode == 0
    assert ask("about dogs").returncode == 0
    result = ask("--cid", "1", "more about them")
    assert result.returncode == 0, result.stderr
    sent = [m["content"] for m in router.state.payments[2].messages if m["role"] == "user"]
    assert sent == ["about cats", "more about them"]
    assert [c["id"] for c in history()] == [1, 2]  # the one just continued comes first
    assert len(exported(1)["messages"]) == 4 and len(exported(2)["messages"]) == 2


def test_an_unknown_cid_or_nothing_to_continue_is_a_usage_error_before_any_payment(ask, router):
    nothing = ask("-c", "hello")
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1
    assert "no conversation to continue" in nothing.stderr
    unknown = ask("--cid", "42", "hello")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "no conversation with id 42" in unknown.stderr
    assert router.state.unpaid_requests == 0 and router.state.paid_requests == 0
    assert history() == []


def test_no_history_saves_no_words_but_keeps_the_payment_in_the_ledger(ask, isolated_environment):
    result = ask("--no-history", "keep this off the record")
    assert result.returncode == 0, result.stderr
    assert "conversation" not in result.stderr
    assert history() == [] and history("--search", "record") == []
    folder = database(isolated_environment).parent
    for file in folder.iterdir():
        assert b"off the record" not in file.read_bytes(), file.name
    # The payment is kept without any message, so that budgets count it.
    with sqlite3.connect(database(isolated_environment)) as db:
        rows = db.execute("SELECT message_id, model, status FROM payments").fetchall()
    assert rows == [(None, "anthropic/claude-3.5-sonnet", "settled")]


def test_search_finds_words_in_titles_and_answers(ask):
    assert ask("Tell me about elephants").returncode == 0
    assert ask("Tell me about giraffes").returncode == 0
    assert [c["id"] for c in history("--search", "giraffes")] == [2]
    assert [c["id"] for c in history("--search", "ELEPHANTS")] == [1]
    # The dev server's answers share this sentence: the search looks in answers too.
    assert {c["id"] for c in history("--search", "local dev server")} == {1, 2}
    # Words by their stems and prefixes, each anywhere in the conversation.
    assert [c["id"] for c in history("--search", "giraffe")] == [2]
    assert [c["id"] for c in history("--search", "eleph server")] == [1]
    assert history("--search", "zebras") == []
    table = run("history", "--search", "giraffes")
    assert table.returncode == 0
    header, row = table.stdout.strip().splitlines()
    assert header.split() == ["ID", "UPDATED", "MODEL", "MSGS", "SPENT", "TITLE"]
    assert row.split()[0] == "2" and row.endswith("Tell me about giraffes")


def test_no_match_never_reads_as_an_empty_history(ask):
    for search in ([], ["--search", "zebras"]):
        empty = run("history", *search)
        assert (empty.returncode, empty.stdout) == (0, "No saved conversations yet.\n")
    assert ask("Tell me about elephants").returncode == 0
    missed = run("history", "--search", "zebras  elephants")
    assert (missed.returncode, missed.stdout) == (
        0,
        'No conversation matches "zebras elephants".\n',
    )
    assert history("--search", "zebras") == []
    # An empty search is no search: everything is listed.
    assert [c["id"] for c in history("--search", " ")] == [1]


def test_the_demo_keeps_its_conversations_apart():
    demo = run("ask", "--demo", "Tell me about ships")
    assert demo.returncode == 0, demo.stderr
    assert run("history").stdout == "No saved conversations yet.\n"
    # --demo after the command word, or before it, as for every command.
    for args in (["history", "--demo"], ["--demo", "history"]):
        result = run(*args, "--json")
        assert result.returncode == 0, result.stderr
        [listed] = json.loads(result.stdout)
        assert listed["title"] == "Tell me about ships" and listed["messages"] == 2
    table = run("history", "--demo", "--search", "ship")
    assert table.stdout.strip().splitlines()[1].endswith("Tell me about ships")
    exported_demo = run("export", "1", "--demo", "--format", "json")
    assert exported_demo.returncode == 0, exported_demo.stderr
    document = json.loads(exported_demo.stdout)
    assert document["messages"][1]["payment"]["network"] == "base-sepolia"
    missing = run("export", "1")
    assert missing.returncode == 2
    assert "no conversation with id 1 (`xrouter-tui history` lists them)." in missing.stderr
    assert run("history", "--demo", "--search", "zebra").stdout == (
        'No conversation matches "zebra".\n'
    )


def test_export_markdown_has_a_front_matter_and_every_message(ask, router):
    assert ask("first question").returncode == 0
    assert ask("-c", "second question").returncode == 0
    result = run("export", "1")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    front, body = text.split("\n---\n", 1)
    assert front.startswith("---\n")
    assert 'model: "anthropic/claude-3.5-sonnet"' in front
    assert "prompt_tokens: " in front and "completion_tokens: " in front
    total = sum(p.amount for p in router.state.payments)
    assert f'cost_usd: "{total // 10**6}.{total % 10**6:06d}"' in front
    for payment in router.state.payments:
        assert f'  - "{payment.transaction}"' in front
    assert body.index("first question") < body.index("second question")
    assert body.count("## You") == 2


def test_export_markdown_has_the_system_prompt_and_the_answers_headings_beneath(ask, router):
    assert ask("-s", "You are a harbour master.\n# Rules\nBe brief.", "ships").returncode == 0
    result = run("export", "1")
    assert result.returncode == 0, result.stderr
    _front, body = result.stdout.split("\n---\n", 1)
    answer = router.state.payments[0]  # the local router's answer opens with "## ships"
    assert "## ships" in exported(1)["messages"][1]["content"]
    # The document's outline: the title, then one section per part, the rest beneath them.
    outline = [line for line in body.splitlines() if re.match(r"#{1,2} ", line)]
    assert outline[:3] == ["# ships", "## System prompt", "## You"]
    assert outline[3].startswith("## Assistant (") and len(outline) == 4
    assert "You are a harbour master.\n### Rules\nBe brief." in body
    assert "\n### ships\n" in body
    assert answer.transaction in body


def test_nested_headings_leave_code_alone_and_keep_their_distances():
    answer = (
        "Intro\n\n# Title\n\nText\n\n## Part\n\n```python\n# a comment\n```\n\n"
        "~~~\n## not a heading\n~~~\n\nSetext\n======\n\n    # indented code\n"
        "\n#hashtag\n\n##### Deep\n###### Deepest"
    )
    assert nest_headings(answer, 2) == (
        "Intro\n\n### Title\n\nText\n\n#### Part\n\n```python\n# a comment\n```\n\n"
        "~~~\n## not a heading\n~~~\n\n### Setext\n\n    # indented code\n"
        "\n#hashtag\n\n###### Deep\n###### Deepest"
    )
    assert nest_headings("### Already beneath\n#### and more", 2) == (
        "### Already beneath\n#### and more"
    )


def test_export_of_an_unknown_id_is_one_line_and_exit_2():
    for fmt in ("md", "json"):
        result = run("export", "7", "--format", fmt)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "no conversation with id 7" in result.stderr


def test_a_failed_answer_is_kept_failed_with_its_error_and_partial_text(ask, router):
    router.config.faults = {"midstream-error"}
    result = ask("hello")
    assert result.returncode == 1
    answer = exported(1)["messages"][1]
    assert answer["status"] == "failed" and "error mid-answer" in answer["error"]
    assert answer["content"] and result.stdout.startswith(answer["content"])
    assert answer["payment"]["status"] == "settled"  # the router took it before failing
    # A failed exchange is not sent again when the conversation goes on.
    router.config.faults = set()
    assert ask("-c", "again").returncode == 0
    assert [m["content"] for m in router.state.payments[1].messages] == ["again"]


def test_a_refused_payment_is_kept_with_its_reason(ask, router):
    router.config.faults = {"reject-payment"}
    result = ask("hello")
    assert result.returncode == 1
    assert "could still be charged until" in result.stderr
    answer = exported(1)["messages"][1]
    assert answer["status"] == "failed" and answer["content"] == ""
    # Of unknown outcome, not spent: it may be charged until its authorization expires.
    assert answer["payment"]["status"] == "unknown"
    assert answer["payment"]["reason"] == router.config.reject_reason
    assert history()[0]["spent_usd"] == "0.000000"


def start_slow_answer(router, key, *args: str) -> subprocess.Popen:
    secret, _ = key
    router.config.reply_deltas = 3000
    router.config.delta_delay = 0.02
    return subprocess.Popen(
        [PROGRAM, "ask", "--base-url", router.url, *args, "tell me a long story"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "XROUTER_PRIVATE_KEY": secret},
    )


def test_ctrl_c_keeps_the_partial_answer_marked_stopped(router, key):
    process = start_slow_answer(router, key)
    first = process.stdout.read(10)
    process.send_signal(signal.SIGINT)
    rest, _err = process.communicate(timeout=30)
    assert process.returncode == 130
    printed = (first + rest).decode()
    answer = exported(1)["messages"][1]
    assert answer["status"] == "stopped"
    assert answer["content"] and printed.startswith(answer["content"])
    assert answer["content"].strip() == printed.strip()  # everything printed was saved


def test_a_hard_kill_mid_answer_loses_at_most_the_last_second(router, key, isolated_environment):
    process = start_slow_answer(router, key)
    stdout = process.stdout.fileno()
    received = b""
    seen: list[tuple[float, int]] = []  # (when, bytes read by then)
    deadline = time.monotonic() + 60  # a safety net only
    while time.monotonic() < deadline:
        chunk = os.read(stdout, 65536)
        assert chunk, process.stderr.read().decode()
        received += chunk
        now = time.monotonic()
        seen.append((now, len(received)))
        if now - seen[0][0] >= 4.0:  # four seconds of answer: several saves behind us
            break
    killed_at = time.monotonic()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)  # reaped, so the next start sees its pid gone
    while chunk := os.read(stdout, 65536):
        received += chunk
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    printed = received.decode(errors="replace")

    with sqlite3.connect(database(isolated_environment)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    document = exported(1)  # the next start: the answer left streaming is now interrupted
    question, answer = document["messages"]
    assert (question["role"], question["content"]) == ("user", "tell me a long story")
    assert answer["status"] == "interrupted"
    assert answer["content"] and printed.startswith(answer["content"])
    # All but about the last second of what had been printed was saved (with a margin).
    printed_earlier = max((n for when, n in seen if when <= killed_at - 2.0), default=0)
    assert printed_earlier > 0
    assert len(answer["content"].encode()) >= printed_earlier
    assert answer["payment"]["status"] == "settled"
    markdown = run("export", "1")
    assert "interrupted" in markdown.stdout and answer["content"][:200] in markdown.stdout


def test_the_journal_saves_a_growing_answer_by_time_not_per_piece(tmp_path, monkeypatch):
    from xrouter_tui.history import journal as journal_module
    from xrouter_tui.history.store import Store

    clock = [100.0]
    monkeypatch.setattr(journal_module.time, "monotonic", lambda: clock[0])
    with Store.open(tmp_path / "history.sqlite3") as store:
        journal = journal_module.TurnJournal(
            store, conversation_id=None, model="m", system_prompt=""
        )
        conversation = journal.begin("question")

        def saved() -> str:
            return store.messages(conversation)[1].content

        for piece in ("a", "b", "c"):
            journal.delta(piece)
        assert saved() == ""  # within the first second: nothing written yet
        clock[0] += 1.0
        journal.delta("d")
        assert saved() == "abcd"
        journal.delta("e")
        clock[0] += 0.5
        journal.delta("f")
        assert saved() == "abcd"
        journal.finish("complete")
        assert saved() == "abcdef" and store.messages(conversation)[1].status == "complete"


def test_one_amount_reads_the_same_in_the_table_the_json_and_the_export():
    info = ConversationInfo(
        id=7,
        title="a question",
        model="m",
        system_prompt="",
        created="2026-03-14T15:09:26Z",
        updated="2026-03-14T15:09:26Z",
        messages=2,
        spent_usd=Decimal("0.0135"),
    )
    assert json.loads(history_json([info]))[0]["spent_usd"] == "0.013500"
    assert "  $0.013500  " in history_table([info])
    assert json.loads(export_json(info, []))["spent_usd"] == "0.013500"
    assert 'cost_usd: "0.013500"' in export_markdown(info, [])
    # Positional as before; the conversation's own settings come last, with defaults.
    assert (info.temperature, info.max_tokens, info.forked_from) == (None, None, None)
    tuned = replace(info, temperature=0.5, max_tokens=200, forked_from=3)
    assert {"temperature: 0.5", "max_tokens: 200", "forked_from: 3"} <= set(
        export_markdown(tuned, []).splitlines()
    )
    assert json.loads(export_json(tuned, []))["temperature"] == 0.5
    nothing = replace(info, spent_usd=Decimal(0))
    assert json.loads(history_json([nothing]))[0]["spent_usd"] == "0.000000"
    assert "  $0.000000  " in history_table([nothing])
