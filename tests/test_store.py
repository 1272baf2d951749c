"""The history store on a real SQLite file, including real processes writing at once."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest

from xrouter_tui.history import store as store_module
from xrouter_tui.history.store import (
    SCHEMA_VERSION,
    PaymentRecord,
    Store,
    StoreError,
    make_title,
)

PAYMENT = PaymentRecord(
    network="base",
    asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    amount=13_500,
    decimals=6,
    pay_to="0x402D3F5E7A1B9c8D6e4F20314253647586970a1B",
    payer="0x1111111111111111111111111111111111111111",
    nonce="0x" + "ab" * 32,
    valid_before=1_900_000_000,
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "history.sqlite3"


@pytest.fixture
def store(path):
    with Store.open(path) as opened:
        yield opened


def one_turn(store: Store, question: str, answer: str, *, conversation: int | None = None):
    """A conversation (new unless given) with one paid, complete exchange."""
    if conversation is None:
        conversation = store.new_conversation("m/one", "be brief", make_title(question))
    store.add_message(conversation, "user", question)
    reply = store.add_message(conversation, "assistant", "", model="m/one", status="streaming")
    payment = store.record_payment(reply, PAYMENT)
    store.update_payment(payment, "settled", tx="0x" + "cd" * 32)
    store.update_message_text(reply, answer[:3])
    store.finish_message(reply, "complete", text=answer, prompt_tokens=7, completion_tokens=11)
    return conversation, reply


def integrity(path) -> list[str]:
    with sqlite3.connect(path) as db:
        checks = [row[0] for row in db.execute("PRAGMA integrity_check")]
        db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        db.execute("INSERT INTO conversations_fts (conversations_fts) VALUES ('integrity-check')")
    return checks


def test_a_turn_is_kept_with_its_payment_and_tokens(store):
    conversation, reply = one_turn(store, "What is x402?", "A payment protocol.")
    [info] = store.conversations()
    assert (info.id, info.title, info.model, info.messages) == (
        conversation,
        "What is x402?",
        "m/one",
        2,
    )
    assert info.spent_usd == Decimal("0.0135")
    question, answer = store.messages(conversation)
    assert (question.role, question.content, question.status) == (
        "user",
        "What is x402?",
        "complete",
    )
    assert question.payment is None
    assert (answer.id, answer.content, answer.status) == (reply, "A payment protocol.", "complete")
    assert (answer.prompt_tokens, answer.completion_tokens) == (7, 11)
    assert answer.payment.status == "settled" and answer.payment.tx == "0x" + "cd" * 32
    assert answer.payment.amount == 13_500 and answer.payment.amount_usd == Decimal("0.0135")
    assert answer.payment.payer == PAYMENT.payer and answer.payment.nonce == PAYMENT.nonce


def test_only_payments_the_router_took_count_as_spent(store):
    conversation = store.new_conversation("m", "", "t")
    for status in ("signed", "sent", "settled", "rejected", "unknown"):
        reply = store.add_message(conversation, "assistant", "x", status="complete")
        store.update_payment(store.record_payment(reply, PAYMENT), status)
    assert store.conversation(conversation).spent_usd == Decimal("0.027")


def test_a_new_file_is_migrated_from_empty_and_private(path):
    path.parent.mkdir(parents=True)
    path.touch(mode=0o644)  # an empty file is a database at version 0
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        one_turn(store, "q", "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for sibling in path.parent.iterdir():  # the WAL files too
        assert stat.S_IMODE(sibling.stat().st_mode) == 0o600, sibling
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Opening again migrates nothing and keeps everything.
    with Store.open(path) as store:
        assert len(store.conversations()) == 1
    assert integrity(path) == ["ok"]


def test_a_file_from_a_newer_version_is_refused_in_one_line(path):
    with Store.open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer xrouter-tui"):
        Store.open(path)


def test_a_file_that_is_not_a_database_gives_one_line(path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        Store.open(path)


def test_an_answer_left_streaming_by_a_dead_process_is_interrupted(path):
    with Store.open(path):
        pass
    # A real process writes a question, a streaming answer and a signed payment, then dies.
    script = textwrap.dedent(
        f"""
        import os
        from xrouter_tui.history.store import Store
        from tests.test_store import PAYMENT
        store = Store.open({str(path)!r})
        c = store.new_conversation("m", "", "crash")
        store.add_message(c, "user", "q")
        reply = store.add_message(c, "assistant", "", status="streaming")
        store.record_payment(reply, PAYMENT)
        store.update_message_text(reply, "half an ans")
        os._exit(9)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    with Store.open(path) as store:
        [info] = store.conversations()
        question, answer = store.messages(info.id)
        assert question.status == "complete"
        assert (answer.status, answer.content) == ("interrupted", "half an ans")
        assert answer.payment.status == "unknown"


def test_a_closed_stores_streaming_answer_is_interrupted_but_a_live_one_is_not(path):
    first = Store.open(path)
    conversation = first.new_conversation("m", "", "t")
    streaming = first.add_message(conversation, "assistant", "so far", status="streaming")
    with Store.open(path) as second:  # the first is still streaming: hands off
        assert [m.status for m in second.messages(conversation)] == ["streaming"]
    first.close()
    with Store.open(path) as third:
        assert [m.status for m in third.messages(conversation)] == ["interrupted"]
        third.finish_message(streaming, "stopped")
        assert [m.status for m in third.messages(conversation)] == ["stopped"]


def test_search_is_full_text_over_titles_and_messages(store):
    first, _ = one_turn(store, "Explain the Café protocol", "It uses EIP-3009 signatures.")
    second, _ = one_turn(store, "Write a haiku", "Autumn moonlight, a worm digs silently")
    assert [c.id for c in store.conversations(search="cafe")] == [first]  # accents ignored
    assert [c.id for c in store.conversations(search="SIGNATURES")] == [first]
    assert [c.id for c in store.conversations(search="worm moonlight")] == [second]
    assert store.conversations(search="worm signatures") == []  # every word must occur
    # The user's text is never FTS5 syntax.
    for odd in ('"', "NOT", "a OR", "-x", "title:haiku", "(", "*", "   "):
        store.conversations(search=odd)
    store.rename(second, "Poems about autumn")
    assert [c.id for c in store.conversations(search="poems")] == [second]
    assert store.conversations(search="haiku") == [store.conversation(second)]  # in the text


def test_a_conversation_matches_when_every_word_occurs_anywhere_in_it(store):
    pirate = store.new_conversation("m", "You answer as a pirate would", "Cargo questions")
    store.add_message(pirate, "user", "How many ships sail today?")
    store.add_message(pirate, "assistant", "Shipping is slow this week.")
    other = store.new_conversation("m", "", "Animals")
    store.add_message(other, "user", "Tell me about elephants and one ship")
    # Stems and prefixes: "ship" finds "ships" and "Shipping", "eleph" finds "elephants".
    assert {c.id for c in store.conversations(search="ship")} == {pirate, other}
    assert [c.id for c in store.conversations(search="shipping")] == [other, pirate]
    assert [c.id for c in store.conversations(search="eleph")] == [other]
    # The words may be in different messages, the title or the system prompt.
    assert [c.id for c in store.conversations(search="cargo sail slow")] == [pirate]
    assert [c.id for c in store.conversations(search="PIRATES week")] == [pirate]
    assert store.conversations(search="pirate elephants") == []
    # A word said twice, or with punctuation around it, is still that word.
    assert [c.id for c in store.conversations(search="pirate, pirate!")] == [pirate]
    # A changed system prompt is what is found.
    store.set_settings(pirate, system_prompt="Answer as a poet", temperature=None, max_tokens=None)
    assert store.conversations(search="pirate") == []
    assert [c.id for c in store.conversations(search="poet")] == [pirate]
    for nothing in ("", "   ", "*", '"', "- ( )"):
        assert store.conversations(search=nothing) == []


def test_search_text_is_never_fts5_syntax(store):
    plain = store.new_conversation("m", "", "plain")
    store.add_message(plain, "user", "NOT a OR b NEAR c AND title:plain x-402 ^d")
    other = store.new_conversation("m", "", "other")
    store.add_message(other, "user", "something else entirely")
    # Each is taken as the words it holds, never as an operator, a column or a group.
    odd = ('"NOT"', "NOT", "a OR", "b NEAR", "AND", "title:plain", 'x"402', "(c)", "^d", "NOT OR")
    for search in odd:
        assert [c.id for c in store.conversations(search=search)] == [plain], search


def test_an_earlier_history_is_migrated_and_its_words_found_by_stem(path):
    """A file written by the version before (schema 3) keeps everything and is searched the new
    way: its rows are indexed again."""
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path, isolation_level=None) as db:
        for statements in store_module._MIGRATIONS[:3]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 3")
        db.execute(
            "INSERT INTO conversations (title, model, system_prompt, seq) "
            "VALUES ('Old chat', 'm/one', 'You are a harbour master', 1)"
        )
        db.execute(
            "INSERT INTO messages (conversation_id, role, content, status) "
            "VALUES (1, 'user', 'Which ships arrive?', 'complete'), "
            "(1, 'assistant', 'Two cargo vessels.', 'complete')"
        )
        db.execute(
            "INSERT INTO payments (message_id, network, asset, amount, decimals, pay_to, payer, "
            "nonce, valid_before, status) VALUES (2, 'base', 'usdc', 13500, 6, 'to', 'from', "
            "'n', 1, 'settled')"
        )
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        [info] = store.conversations()
        assert (info.title, info.system_prompt, info.messages) == (
            "Old chat",
            "You are a harbour master",
            2,
        )
        assert (info.temperature, info.max_tokens, info.forked_from) == (None, None, None)
        assert info.spent_usd == Decimal("0.0135")
        for search in ("ship", "harbours", "vessel cargo", "old"):
            assert [c.id for c in store.conversations(search=search)] == [1], search
    assert integrity(path) == ["ok"]


def test_a_conversation_keeps_its_own_settings(store):
    conversation = store.new_conversation("m", "be brief", "t")
    store.set_settings(conversation, system_prompt="be kind", temperature=0.2, max_tokens=300)
    info = store.conversation(conversation)
    assert (info.system_prompt, info.temperature, info.max_tokens) == ("be kind", 0.2, 300)
    assert store.history_messages(conversation) == [{"role": "system", "content": "be kind"}]
    store.set_settings(conversation, system_prompt="", temperature=None, max_tokens=None)
    info = store.conversation(conversation)
    assert (info.system_prompt, info.temperature, info.max_tokens) == ("", None, None)


def test_a_fork_copies_the_history_up_to_a_message_and_leaves_the_original(store, path):
    original, _ = one_turn(store, "What is x402?", "A payment protocol.")
    _, second_reply = one_turn(store, "And EIP-3009?", "Signed transfers.", conversation=original)
    one_turn(store, "Third?", "Third answer.", conversation=original)
    store.set_settings(original, system_prompt="be brief", temperature=0.7, max_tokens=256)
    before = (store.conversation(original), store.messages(original), store.payments())

    fork = store.fork(original, second_reply)
    info = store.conversation(fork)
    assert (info.title, info.forked_from, info.model) == ("What is x402? (fork)", original, "m/one")
    assert (info.system_prompt, info.temperature, info.max_tokens) == ("be brief", 0.7, 256)
    copied = store.messages(fork)
    kept = before[1][:4]
    assert [(m.role, m.content, m.model, m.status) for m in copied] == [
        (m.role, m.content, m.model, m.status) for m in kept
    ]
    assert [(m.prompt_tokens, m.completion_tokens) for m in copied] == [
        (m.prompt_tokens, m.completion_tokens) for m in kept
    ]
    # The money stays with the original: no payment is copied, nothing spent twice; each copy
    # names the message it copies (a copy of a copy, the first).
    assert all(m.payment is None for m in copied) and info.spent_usd == 0
    assert [m.copied_from for m in copied] == [m.id for m in kept]
    assert all(m.copied_from is None for m in store.messages(original))
    again = store.fork(fork, copied[1].id)
    assert [m.copied_from for m in store.messages(again)] == [m.id for m in kept[:2]]
    assert store.payments() == before[2]
    assert (store.conversation(original), store.messages(original)) == before[:2]
    # The newest conversation, found by its words like any other.
    assert store.latest_conversation_id() == again
    assert {c.id for c in store.conversations(search="EIP-3009")} == {original, fork}
    assert [c.id for c in store.conversations(search="third")] == [original]

    named = store.fork(original, kept[0].id, title="Only the question")
    assert store.conversation(named).title == "Only the question"
    assert [m.content for m in store.messages(named)] == ["What is x402?"]
    # Deleting the original leaves its forks.
    assert store.delete(original)
    assert store.conversation(fork).forked_from is None and len(store.messages(fork)) == 4
    assert integrity(path) == ["ok"]


def test_a_fork_at_a_message_of_another_conversation_makes_nothing(store):
    first, first_reply = one_turn(store, "one", "1")
    second, _ = one_turn(store, "two", "2")
    with pytest.raises(StoreError, match="no message"):
        store.fork(second, first_reply)
    assert [c.id for c in store.conversations()] == [second, first]


def test_a_fork_of_an_answer_still_streaming_is_interrupted_in_the_copy(store):
    conversation = store.new_conversation("m", "", "t")
    store.add_message(conversation, "user", "q")
    reply = store.add_message(conversation, "assistant", "so far", status="streaming")
    fork = store.fork(conversation, reply)
    assert [m.status for m in store.messages(fork)] == ["complete", "interrupted"]
    assert [m.status for m in store.messages(conversation)] == ["complete", "streaming"]
    store.finish_message(reply, "complete", text="done")


def test_rename_and_delete(store, path):
    conversation, _ = one_turn(store, "first question", "first answer")
    other, _ = one_turn(store, "other question", "other answer")
    assert store.rename(conversation, "  A new\nname  ")
    assert store.conversation(conversation).title == "A new name"
    assert not store.rename(999, "nothing")
    assert store.delete(conversation)
    assert not store.delete(conversation)
    assert store.conversation(conversation) is None and store.messages(conversation) == []
    assert store.conversations(search="first") == []
    assert [c.id for c in store.conversations()] == [other]
    # Money spent stays spent: the ledger keeps the deleted conversation's payment.
    assert [p.conversation_id for p in store.payments()] == [other, None]
    assert integrity(path) == ["ok"]


def test_the_latest_conversation_is_the_last_one_written(store):
    assert store.latest_conversation_id() is None
    first, _ = one_turn(store, "one", "1")
    second, _ = one_turn(store, "two", "2")
    assert store.latest_conversation_id() == second
    one_turn(store, "again", "3", conversation=first)
    assert store.latest_conversation_id() == first
    assert [c.id for c in store.conversations()] == [first, second]


def test_history_sends_only_exchanges_that_gave_an_answer(store):
    conversation = store.new_conversation("m", "be brief", "t")
    exchanges = [
        ("q1", "a1", "complete"),
        ("q2", "a2 partial", "stopped"),
        ("q3", "", "stopped"),  # stopped before any text
        ("q4", "half", "failed"),
        ("q5", "cut", "interrupted"),
        ("q6", "a6", "complete"),
    ]
    for question, answer, status in exchanges:
        store.add_message(conversation, "user", question)
        reply = store.add_message(conversation, "assistant", "", status="streaming")
        store.finish_message(reply, status, text=answer)
    store.add_message(conversation, "user", "q7 never answered")
    assert store.history_messages(conversation) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2 partial"},
        {"role": "user", "content": "q6"},
        {"role": "assistant", "content": "a6"},
    ]
    assert store.history_messages(12345) == []


def test_titles_are_the_first_question_shortened():
    assert make_title("  What is\n x402?  ") == "What is x402?"
    long = make_title("word " * 40)
    assert len(long) <= 60 and long.endswith("…") and "  " not in long
    assert make_title("") == "(untitled)"


def test_a_failed_write_leaves_nothing_half_written(store):
    conversation = store.new_conversation("m", "", "t")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_message(conversation, "user", "q")
        store.add_message(conversation, "assistant", "a")
        raise RuntimeError("crash between two writes")
    assert store.messages(conversation) == []
    with pytest.raises(ValueError, match="unknown status"):
        store.add_message(conversation, "user", "q", status="done")


WRITER = textwrap.dedent(
    """
    import sys, time
    from xrouter_tui.history.store import Store, make_title
    from tests.test_store import PAYMENT
    path, name, turns, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = Store.open(path)
    while not __import__("os").path.exists(go):  # start together
        time.sleep(0.001)
    for i in range(turns):
        c = store.new_conversation("m", "", make_title(f"{name} question {i}"))
        store.add_message(c, "user", f"{name} question {i}")
        reply = store.add_message(c, "assistant", "", status="streaming")
        payment = store.record_payment(reply, PAYMENT)
        for step in range(3):
            store.update_message_text(reply, f"{name} answer {i} " * (step + 1))
        store.update_payment(payment, "settled", tx=f"0x{i:064x}")
        store.finish_message(reply, "complete", text=f"{name} answer {i} done")
    store.close()
    """
)


def test_two_processes_writing_at_once_lose_nothing(path, tmp_path):
    with Store.open(path):
        pass
    go = tmp_path / "go"
    turns = 150
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(turns), str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    go.touch()
    for writer in writers:
        _out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    assert integrity(path) == ["ok"]
    with Store.open(path) as store:
        conversations = store.conversations()
        assert len(conversations) == 2 * turns
        for name in ("alpha", "beta"):
            mine = store.conversations(search=name)
            assert len(mine) == turns
            for info in mine:
                _question, answer = store.messages(info.id)
                assert answer.status == "complete" and answer.content.endswith(" done")
                assert answer.payment.status == "settled"
        assert sum(c.spent_usd for c in conversations) == Decimal("0.0135") * 2 * turns
