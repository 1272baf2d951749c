"""What of a conversation is sent: the router's limits, the model's context, whole exchanges,
and refusals before anything goes out. `choose_context` alone, then `ask -c` against the local
router, which enforces X-Router's limits as X-Router words them."""

from __future__ import annotations

import json

import pytest

from tests import test_ask_money, test_cli
from tests.test_cli import run
from xrouter_tui.context import (
    CONTEXT_SHARE,
    MAX_CONTENT_CHARS,
    MAX_MESSAGES,
    PromptTooLong,
    choose_context,
    message_tokens,
    request_refusal,
)
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.pricing import estimate_input_tokens

key = test_cli.key
router = test_cli.router
ask = test_ask_money.ask


def exchanges(count: int, size: int = 20) -> list[dict[str, str]]:
    """`count` exchanges, oldest first, each question and answer naming its number."""
    messages = []
    for number in range(count):
        messages.append({"role": "user", "content": f"question {number} " + "q" * size})
        messages.append({"role": "assistant", "content": f"answer {number} " + "a" * size})
    return messages


def test_sixty_exchanges_send_the_newest_forty_nine_whole_with_the_system_prompt_first():
    context = choose_context(
        "be brief", exchanges(60), "and now?", context_length=None, max_tokens=1024
    )
    sent = context.messages
    assert len(sent) == MAX_MESSAGES
    assert sent[0] == {"role": "system", "content": "be brief"}
    assert sent[-1] == {"role": "user", "content": "and now?"}
    # The newest 49 exchanges, whole and in order: 11 to 59.
    assert sent[1]["content"].startswith("question 11 ")
    assert sent[-2]["content"].startswith("answer 59 ")
    roles = [m["role"] for m in sent[1:-1]]
    assert roles == ["user", "assistant"] * 49
    assert context.left_out == 22 and context.limit == "100 messages"


def test_a_history_larger_than_the_models_context_keeps_the_newest_that_fit():
    # About 40,000 tokens of history on a 32K model, max_tokens 500.
    history = exchanges(40, size=2000)
    assert estimate_input_tokens(history) > 40_000
    context = choose_context("", history, "what next?", context_length=32_768, max_tokens=500)
    tokens = estimate_input_tokens(context.messages)
    assert tokens + 500 <= 32_768 * CONTEXT_SHARE
    # One more exchange would not have fitted: the newest are kept, as many as fit.
    oldest_sent = int(context.messages[0]["content"].split()[1])
    left_one = history[(oldest_sent - 1) * 2 : oldest_sent * 2]
    assert tokens + sum(message_tokens(m) for m in left_one) + 500 > 32_768 * CONTEXT_SHARE
    assert context.messages[-2]["content"].startswith("answer 39 ")
    assert context.left_out == oldest_sent * 2 and context.limit == "the model's context"
    assert context.left_out_tokens == sum(message_tokens(m) for m in history[: oldest_sent * 2])


def test_context_messages_caps_the_exchanges_sent():
    context = choose_context(
        "", exchanges(10), "q", context_length=None, max_tokens=10, max_exchanges=3
    )
    assert len(context.messages) == 7 and context.limit == "context_messages"
    none = choose_context(
        "", exchanges(10), "q", context_length=None, max_tokens=10, max_exchanges=0
    )
    assert none.messages == [{"role": "user", "content": "q"}] and none.left_out == 20


def test_an_old_message_over_the_routers_limit_stops_the_history_there():
    history = exchanges(5)
    history[4]["content"] = "x" * (MAX_CONTENT_CHARS + 1)  # exchange 2's question
    context = choose_context("", history, "q", context_length=None, max_tokens=10)
    assert [m["content"].split()[1] for m in context.messages[:-1]] == ["3", "3", "4", "4"]


@pytest.mark.parametrize(
    ("system", "prompt", "context_length", "words"),
    [
        (
            "",
            "p" * 150_000,
            None,
            "The prompt is 150,000 characters; the router takes at most 100,000",
        ),
        ("s" * 100_001, "hi", None, "The system prompt is 100,001 characters"),
        ("", "p" * 99_000, 8_192, "leaves room for"),
    ],
)
def test_a_prompt_that_cannot_fit_is_refused_with_its_size(system, prompt, context_length, words):
    with pytest.raises(PromptTooLong) as refused:
        choose_context(system, exchanges(3), prompt, context_length=context_length, max_tokens=500)
    message = str(refused.value)
    assert words in message and "\n" not in message


def test_another_programs_request_is_judged_whole_never_cut():
    assert request_refusal(exchanges(3), context_length=32_768, max_tokens=500) is None
    too_many = request_refusal(exchanges(51), context_length=None, max_tokens=500)
    assert too_many is not None and "102 messages" in too_many
    too_big = request_refusal(exchanges(40, size=2000), context_length=32_768, max_tokens=500)
    assert too_big is not None and "32,768 tokens" in too_big


# -- ask -c against the local router -----------------------------------------------------------


def seed_conversation(count: int) -> None:
    """A saved conversation of `count` whole exchanges, as `ask` writes them."""
    with Store.open(history_path()) as store:
        conversation = store.new_conversation("anthropic/claude-3.5-sonnet", "be brief", "long")
        for message in exchanges(count):
            store.add_message(conversation, message["role"], message["content"])


def test_ask_c_goes_on_after_sixty_exchanges_within_the_routers_limits(ask, router):
    seed_conversation(60)
    result = ask("-c", "and the next one?")
    assert result.returncode == 0, result.stderr
    [paid] = router.state.payments
    sent = list(paid.messages)
    assert len(sent) == MAX_MESSAGES and router.state.invalid_requests == 0
    assert sent[0] == {"role": "system", "content": "be brief"}
    assert sent[1]["content"].startswith("question 11 ")
    assert sent[-1] == {"role": "user", "content": "and the next one?"}
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Older messages not sent: 22 of 120 (~264 tokens), to fit 100 messages."


def test_ask_refuses_a_prompt_too_long_before_any_request(ask, router):
    result = ask(stdin="p" * 150_000)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "xrouter-tui: The prompt is 150,000 characters; the router takes at most 100,000 in "
        "one message."
    )
    state = router.state
    assert (state.unpaid_requests, state.paid_requests, state.invalid_requests) == (0, 0, 0)


def test_the_local_router_refuses_as_x_router_does(router):
    import httpx

    body = {"model": "openai/gpt-4o", "messages": exchanges(51)}
    answer = httpx.post(f"{router.url}/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "messages must be an array of 1 to 100 items"
    assert router.state.unpaid_requests == 0  # refused before any 402


def test_an_unknown_model_is_refused_with_the_closest_before_any_payment(ask, router):
    result = ask("-m", "gpt-4o", "hello")
    assert result.returncode == 2
    assert "no model 'gpt-4o'" in result.stderr and "did you mean openai/gpt-4o" in result.stderr
    assert router.state.unpaid_requests == 0 and router.state.paid_requests == 0


def test_an_answer_cut_at_max_tokens_says_so(ask, router):
    router.config.reply_deltas = 200
    result = ask("--max-tokens", "20", "a long one please")
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "The answer was cut at max_tokens (20): ask with a larger --max-tokens for a longer one."
    )
    assert json.loads(run("spend", "--json").stdout)["payments"]


def test_ask_c_uses_the_conversations_own_max_tokens_and_system_prompt(ask, router):
    with Store.open(history_path()) as store:
        conversation = store.new_conversation("anthropic/claude-3.5-sonnet", "", "own")
        store.set_settings(conversation, system_prompt="Be terse.", temperature=0.3, max_tokens=20)
    router.config.reply_deltas = 200
    result = ask("--cid", str(conversation), "tell me more")
    assert result.returncode == 0, result.stderr
    # Its own max_tokens: the answer was cut at 20, as the line under it says.
    assert "cut at max_tokens (20)" in result.stderr
    [paid] = router.state.payments
    assert paid.messages[0] == {"role": "system", "content": "Be terse."}
