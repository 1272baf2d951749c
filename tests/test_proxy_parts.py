"""The proxy's pieces that need no server: reading an OpenAI request, reading the stream it
passes on for the history, the OpenAI model list, and which hosts count as this machine."""

from __future__ import annotations

import json

import pytest

from xrouter_tui.proxy import ProxyError, StreamTap, read_request
from xrouter_tui.proxy.access import host_name
from xrouter_tui.proxy.wire import models_list
from xrouter_tui.serving import is_loopback

DEFAULTS = {"model": "anthropic/claude-3.5-sonnet", "max_tokens": 1024, "temperature": None}


def request(**fields):
    body = {"messages": [{"role": "user", "content": "hi"}], **fields}
    return read_request(json.dumps(body).encode(), **DEFAULTS)


# -- what goes to X-Router ----------------------------------------------------------------------


def test_a_request_without_model_or_max_tokens_gets_the_users_settings_not_the_routers():
    chat = request()
    assert chat.body == {
        "model": "anthropic/claude-3.5-sonnet",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1024,
        "stream": False,
    }


def test_only_the_fields_x_router_documents_go_upstream():
    chat = request(
        model="openai/gpt-4o-mini",
        max_completion_tokens=300,
        temperature=0.2,
        stream=True,
        stream_options={"include_usage": True},
        top_p=0.9,
        user="someone",
    )
    assert chat.body == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 300,
        "temperature": 0.2,
        "stream": True,
    }
    assert (chat.model, chat.max_tokens, chat.stream) == ("openai/gpt-4o-mini", 300, True)


def test_text_parts_and_the_developer_role_become_plain_messages():
    chat = request(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            },
        ]
    )
    assert chat.messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one\ntwo"},
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"tools": [{"type": "function"}]}, "takes no tools"),
        ({"n": 2}, "n must be 1"),
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role 'tool'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "image_url part",
        ),
        ({"max_tokens": 0}, "max_tokens must be a whole number"),
        ({"max_tokens": "many"}, "max_tokens must be a whole number"),
        ({"stream": "yes"}, "stream must be true or false"),
    ],
)
def test_what_x_router_cannot_take_is_a_400_that_says_why(fields, words):
    with pytest.raises(ProxyError) as refused:
        request(**fields)
    assert refused.value.status == 400
    assert words in refused.value.message


def test_a_body_that_is_not_json_is_a_400():
    with pytest.raises(ProxyError) as refused:
        read_request(b"{not json", **DEFAULTS)
    assert refused.value.status == 400 and "not valid JSON" in refused.value.message


# -- reading the stream passed on ---------------------------------------------------------------


def sse(*chunks: dict | str, newline: str = "\n") -> bytes:
    events = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c in chunks]
    return "".join(f"data: {e}{newline}{newline}" for e in events).encode()


def delta(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


STREAM = sse(
    delta("Grüße, "),
    delta("世界"),
    delta("!", "stop"),
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
    "[DONE]",
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_the_tap_reads_the_answer_however_the_bytes_are_cut(size):
    tap = StreamTap()
    pieces = []
    for start in range(0, len(STREAM), size):
        tap.feed(STREAM[start : start + size])
        pieces.append(tap.read())
    pieces.append(tap.read(final=True))
    assert "".join(pieces) == tap.text == "Grüße, 世界!"
    assert tap.complete and tap.finish_reason == "stop"
    assert tap.usage is not None and tap.usage.completion_tokens == 3


def test_the_tap_reads_crlf_lines_and_comments():
    tap = StreamTap()
    tap.feed(
        b": keep-alive\r\n\r\n" + sse(delta("a"), delta("b", "stop"), "[DONE]", newline="\r\n")
    )
    tap.read(final=True)
    assert tap.text == "ab" and tap.done


def test_the_tap_sees_an_error_mid_stream_and_a_stream_cut_short():
    broken = StreamTap()
    broken.feed(sse(delta("part"), {"error": {"message": "The upstream model is overloaded"}}))
    broken.read(final=True)
    assert broken.text == "part"
    assert broken.error == "The upstream model is overloaded"
    assert not broken.complete

    cut = StreamTap()
    cut.feed(sse(delta("half")))
    cut.read(final=True)
    assert cut.text == "half" and not cut.complete


def test_the_tap_skips_an_unreadable_line_and_keeps_the_rest():
    tap = StreamTap()
    tap.feed(sse(delta("a"), '{"choices": [oops', delta("b", "stop")))
    tap.read(final=True)
    assert tap.text == "ab" and tap.skipped == 1


# -- the model list -------------------------------------------------------------------------------


def test_x_routers_model_list_takes_openais_shape_and_keeps_the_prices():
    pricing = {"input_per_1k_tokens": 0.003, "output_per_1k_tokens": 0.015}
    listed = models_list(
        {
            "total": 1,
            "models": [{"id": "anthropic/claude-3.5-sonnet", "name": "S", "pricing": pricing}],
        }
    )
    assert listed == {
        "object": "list",
        "data": [
            {
                "object": "model",
                "created": 0,
                "owned_by": "anthropic",
                "id": "anthropic/claude-3.5-sonnet",
                "name": "S",
                "pricing": pricing,
            }
        ],
    }
    # An OpenAI-shaped list passes as it is.
    openai_shaped = {
        "object": "list",
        "data": [{"id": "m", "object": "model", "created": 7, "owned_by": "me"}],
    }
    assert models_list(openai_shaped) == openai_shaped


# -- this machine -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:8403", True),
        ("LOCALHOST", True),
        ("app.localhost:8403", True),
        ("127.0.0.1:8403", True),
        ("127.8.9.10", True),
        ("[::1]:8403", True),
        ("evil.example:8403", False),
        ("localhost.evil.example", False),
        ("192.168.1.5:8403", False),
        ("0.0.0.0:8403", False),
        ("", False),
    ],
)
def test_only_loopback_hosts_count_as_this_machine(host, loopback):
    assert is_loopback(host_name(host)) is loopback
