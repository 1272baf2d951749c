"""A hostile router's sizes, drips and nesting against the command line: each ends as one line
naming the limit it hit, within the configured deadlines, the payment shown and the partial
answer kept.

The commands run in this process (the subject is what they say and keep, not the process);
each runs on a thread of its own so that a hang is a failed test, not a stuck suite.
"""

from __future__ import annotations

import io
import json
import os
import threading

import pytest
from eth_account import Account

from xrouter_tui import cli
from xrouter_tui.api import ResponseTimeout, RouterClient, Timeouts
from xrouter_tui.devserver import DevServerConfig, start_dev_server

# Short enough for a fast suite, long enough to go past every limit set below.
HUGE = 2_000_000
# The longest any command here may take before the test calls it a hang.
HANG = 60


@pytest.fixture
def secret() -> str:
    return Account.create().key.hex().removeprefix("0x")


@pytest.fixture
def router():
    config = DevServerConfig(network="base", reply_deltas=8, huge_bytes=HUGE, drip_seconds=0.25)
    with start_dev_server(config) as server:
        yield server


def settings(isolated_environment, **values: object) -> None:
    folder = isolated_environment / "config"
    folder.mkdir(exist_ok=True)
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    (folder / "config.toml").write_text("\n".join(lines) + "\n")


def run(*argv: str, secret: str | None = None, stdin: str = "") -> tuple[int, str, str]:
    """The exit code, stdout and stderr of one command, which must end within HANG seconds."""
    env = dict(os.environ)
    if secret:
        env["XROUTER_PRIVATE_KEY"] = secret
    out, err = io.StringIO(), io.StringIO()
    result: list[int] = []

    def command() -> None:
        result.append(
            cli.main(list(argv), env=env, stdin=io.StringIO(stdin), stdout=out, stderr=err)
        )

    worker = threading.Thread(target=command, daemon=True)
    worker.start()
    worker.join(HANG)
    assert result, f"{argv[0]} still running after {HANG} s: {err.getvalue()!r}"
    assert "Traceback" not in err.getvalue()
    return result[0], out.getvalue(), err.getvalue()


def ask(router, secret: str, *extra: str, prompt: str = "hello") -> tuple[int, str, str]:
    return run("ask", "--base-url", router.url, *extra, prompt, secret=secret)


def saved_answer() -> dict:
    """The last message of the latest conversation, as `export --format json` gives it."""
    code, out, _ = run("export", "1", "--format", "json")
    assert code == 0
    return json.loads(out)["messages"][-1]


def paid_line(err: str) -> str:
    (line,) = err.splitlines()
    assert line.startswith("xrouter-tui: ")
    assert " was paid for this request" in line
    return line


def test_a_line_without_end_fails_the_turn_at_max_line_bytes(router, secret, isolated_environment):
    settings(isolated_environment, max_line_bytes=65_536)
    router.config.faults = {"endless-line"}
    code, _, err = ask(router, secret)
    assert code == 1
    assert "max_line_bytes (65,536 bytes)" in paid_line(err)
    assert saved_answer()["status"] == "failed"
    assert router.state.paid_requests == 1


def test_an_endless_answer_keeps_its_start_and_stops_at_max_answer_bytes(
    router, secret, isolated_environment
):
    settings(isolated_environment, max_answer_bytes=200_000)
    router.config.faults = {"huge-answer"}
    code, out, err = ask(router, secret)
    assert code == 1
    assert "max_answer_bytes (200,000 bytes)" in paid_line(err)
    assert 100_000 < len(out) <= 200_000
    saved = saved_answer()
    assert saved["status"] == "failed" and saved["content"] == out.rstrip("\n")


def test_a_huge_json_answer_is_not_read_past_max_document_bytes(
    router, secret, isolated_environment
):
    settings(isolated_environment, max_document_bytes=500_000)
    router.config.faults = {"huge-json-answer"}
    code, _, err = ask(router, secret)
    assert code == 1
    assert "max_document_bytes (500,000 bytes)" in paid_line(err)
    assert saved_answer()["status"] == "failed"


def test_a_huge_model_list_is_refused_in_one_line(router, isolated_environment):
    settings(isolated_environment, max_document_bytes=500_000)
    router.config.faults = {"huge-models"}
    code, out, err = run("models", "--base-url", router.url)
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert "max_document_bytes (500,000 bytes)" in line


def test_a_huge_error_body_is_read_only_up_to_max_error_bytes(router, secret):
    router.config.faults = {"huge-error"}
    code, _, err = ask(router, secret)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("xrouter-tui: The router answered 503")
    assert len(line) < 1_000  # the error's words, not two megabytes of them
    assert router.state.paid_requests == 0


@pytest.mark.parametrize("fault", ["nested-models", "nested-challenge", "nested-stream"])
def test_nested_json_from_the_router_is_one_line(router, secret, fault):
    router.config.faults = {fault}
    if fault == "nested-models":
        code, _, err = run("models", "--base-url", router.url)
    else:
        code, _, err = ask(router, secret)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("xrouter-tui: ")
    assert (router.state.paid_requests == 1) == (fault == "nested-stream")


@pytest.mark.parametrize("version", [1, 2])
def test_a_nested_challenge_header_is_one_line_in_either_version(router, secret, version):
    router.config.x402_version = version
    router.config.faults = {"nested-challenge"}
    code, _, err = ask(router, secret)
    assert code == 1 and len(err.splitlines()) == 1
    assert router.state.paid_requests == 0


def test_headers_that_drip_are_bounded_by_first_byte_timeout(router, isolated_environment):
    settings(isolated_environment, first_byte_timeout=1)
    router.config.faults = {"drip-headers"}
    code, _, err = run("models", "--base-url", router.url)
    assert code == 1
    (line,) = err.splitlines()
    assert "within 1 s" in line


def test_a_stream_that_drips_without_a_whole_line_is_idle(router, secret, isolated_environment):
    settings(isolated_environment, idle_timeout=1)
    router.config.faults = {"drip-stream"}
    code, _, err = ask(router, secret)
    assert code == 1
    assert "no whole line for 1 s" in paid_line(err)
    assert saved_answer()["status"] == "failed"


async def test_a_router_that_never_reads_the_request_is_named_as_such(router):
    # `ask` refuses a prompt past X-Router's 100,000 characters before sending it (see
    # test_context.py), so a body bigger than the sockets' buffers goes through the client.
    router.config.faults = {"no-read"}
    router.config.stall_seconds = 20
    messages = [{"role": "user", "content": "word " * 4_000_000}]  # 20 MB
    timeouts = Timeouts(connect=1, first_byte=120, idle=60)
    async with RouterClient(router.url, account=Account.create(), timeouts=timeouts) as client:
        with pytest.raises(ResponseTimeout) as caught:
            await client.complete(messages, model="openai/gpt-4o", max_tokens=64)
    message = caught.value.message
    assert "stopped taking the request" in message and "within 120 s" not in message
    assert "\n" not in message
    assert router.state.paid_requests == 0
