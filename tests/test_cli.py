"""The real `xrouter-tui` program, run as a user runs it, against the local router."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from xrouter_tui.devserver import DevServerConfig, start_dev_server

PROGRAM = str(Path(sys.executable).with_name("xrouter-tui"))


@pytest.fixture
def key():
    account = Account.create()
    return account.key.hex().removeprefix("0x"), account.address


@pytest.fixture
def router():
    # Mainnet's name, as X-Router uses: the default policy allows it. Nothing settles locally.
    with start_dev_server(DevServerConfig(network="base", reply_deltas=30)) as server:
        yield server


def run(*args: str, env_extra: dict | None = None, stdin: str | None = None, timeout=60):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [PROGRAM, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def assert_clean(result, secret: str | None = None) -> None:
    """No traceback, and never the key, in anything the program printed."""
    assert "Traceback" not in result.stderr
    if secret:
        assert secret.lower() not in (result.stdout + result.stderr).lower()


def test_ask_demo_streams_a_reply_and_summarises_the_payment():
    result = run("ask", "--demo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## ")
    assert "hello" in result.stdout.splitlines()[0]
    assert "```python" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Demo: local router at http://127.0.0.1:")
    summary = lines[-1]
    assert (
        "charged $" in summary
        and "upfront" in summary
        and "Base Sepolia" in summary
        and "tx 0x" in summary
    )
    assert "out tokens" in summary
    assert_clean(result)


def test_models_demo_lists_models_with_prices():
    table = run("models", "--demo")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.strip().splitlines()
    assert header.split()[:4] == ["MODEL", "IN", "$/1M", "OUT"]
    sonnet = next(row for row in rows if row.startswith("anthropic/claude-3.5-sonnet "))
    assert "3.00" in sonnet and "15.00" in sonnet
    haiku = next(row for row in rows if row.startswith("anthropic/claude-3.5-haiku "))
    assert " 0.80 " in haiku and " 4.00 " in haiku
    as_json = run("models", "--demo", "--json")
    models = json.loads(as_json.stdout)
    assert len(models) >= 12
    assert {"id", "name", "context_length", "input_per_1m_usd", "output_per_1m_usd"} <= set(
        models[0]
    )


@pytest.mark.parametrize("version", [1, 2])
def test_ask_pays_a_running_router_once_with_the_env_key(router, key, version):
    secret, address = key
    router.config.x402_version = version
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 0, result.stderr
    assert "hi" in result.stdout.splitlines()[0]
    assert router.state.paid_requests == 1
    assert [p.payer for p in router.state.payments] == [address]
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("anthropic/claude-3.5-sonnet · ")
    assert "upfront · " in summary and " · Base · " in summary and "tx 0x" in summary
    assert_clean(result, secret)


def test_the_base_url_can_come_from_the_environment(router, key):
    secret, _ = key
    env = {"XROUTER_PRIVATE_KEY": secret, "XROUTER_BASE_URL": router.url}
    result = run("ask", "-m", "openai/gpt-4o-mini", "hi", env_extra=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("openai/gpt-4o-mini · ")


def test_stdin_is_the_prompt_when_none_is_given(router, key):
    secret, _ = key
    env = {"XROUTER_PRIVATE_KEY": secret}
    result = run("ask", "--base-url", router.url, env_extra=env, stdin="a question from a pipe")
    assert result.returncode == 0, result.stderr
    assert "a question from a pipe" in result.stdout.splitlines()[0]


def test_piped_stdin_is_appended_to_the_given_prompt(router, key):
    secret, _ = key
    env = {"XROUTER_PRIVATE_KEY": secret}
    alone = run("ask", "--base-url", router.url, "Summarise", env_extra=env, stdin="")
    piped = run("ask", "--base-url", router.url, "Summarise", env_extra=env, stdin="x" * 4000)
    assert alone.returncode == piped.returncode == 0
    assert "Summarise" in piped.stdout.splitlines()[0]
    # The router prices the input it received: the piped text made it ~1,000 tokens longer.
    first, second = router.state.payments
    assert second.amount > first.amount


def test_without_a_key_ask_exits_2_and_says_what_to_do(router):
    result = run("ask", "--base-url", router.url, "hi")
    assert result.returncode == 2
    assert "XROUTER_PRIVATE_KEY" in result.stderr and "--demo" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert router.state.unpaid_requests == 0


def test_a_malformed_key_exits_2_without_echoing_it(router):
    bad = "0x" + "g" * 64
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": bad})
    assert result.returncode == 2
    assert "XROUTER_PRIVATE_KEY is not a private key" in result.stderr
    assert_clean(result, bad)


def test_a_price_over_max_price_exits_3_and_signs_nothing(router, key):
    secret, _ = key
    result = run(
        "ask",
        "--base-url",
        router.url,
        "--max-price",
        "0.0001",
        "hi",
        env_extra={"XROUTER_PRIVATE_KEY": secret},
    )
    assert result.returncode == 3
    assert "--max-price" in result.stderr and "$0.000100" in result.stderr
    assert router.state.paid_requests == 0
    assert_clean(result, secret)


def test_a_test_network_is_refused_unless_allowed(key):
    secret, _ = key
    with start_dev_server(DevServerConfig(network="base-sepolia")) as server:
        result = run(
            "ask", "--base-url", server.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret}
        )
        assert result.returncode == 3
        assert "allowed_networks" in result.stderr
        assert server.state.paid_requests == 0


def test_a_failed_stream_keeps_the_partial_text_and_exits_1(router, key):
    secret, _ = key
    router.config.faults = {"midstream-error"}
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 1
    assert result.stdout.startswith("## ") and result.stdout.endswith("\n")
    error = result.stderr.strip().splitlines()
    assert len(error) == 1
    assert "overloaded" in error[0] and "was paid" in error[0]
    assert router.state.paid_requests == 1
    assert_clean(result, secret)


def test_the_router_being_down_exits_1_in_one_line(key):
    secret, _ = key
    result = run(
        "ask", "--base-url", "http://127.0.0.1:9", "hi", env_extra={"XROUTER_PRIVATE_KEY": secret}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("xrouter-tui: Could not connect to 127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_settings_exit_2_naming_file_and_key(router, key, isolated_environment):
    secret, _ = key
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").write_text('max_tokens = "lots"\n')
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 2
    assert "config.toml: max_tokens must be a whole number" in result.stderr
    assert router.state.unpaid_requests == 0


def test_usage_errors_exit_2(router):
    assert run("ask", "--max-tokens", "0", "hi").returncode == 2
    assert run("ask", "--max-price", "free", "hi").returncode == 2
    no_prompt = run("ask", "--base-url", router.url, stdin="   ")
    assert no_prompt.returncode == 2 and "empty" in no_prompt.stderr


def test_ctrl_c_mid_answer_exits_130_and_closes_the_stream(router, key):
    secret, _ = key
    router.config.reply_deltas = 500
    router.config.delta_delay = 0.02
    env = {**os.environ, "XROUTER_PRIVATE_KEY": secret}
    process = subprocess.Popen(
        [PROGRAM, "ask", "--base-url", router.url, "tell me a long story"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    first = process.stdout.read(10)  # the answer has started
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert first.startswith("## ")
    # The answer had begun, so the router had taken the payment: say so, not "may be".
    assert "interrupted" in err and "was paid for this request" in err
    assert "Traceback" not in err
    for _ in range(100):
        if router.state.disconnects:
            break
        time.sleep(0.02)
    assert router.state.disconnects == 1 and router.state.paid_requests == 1


def test_progress_goes_to_a_terminal_stderr_and_never_into_the_answer(router, key):
    secret, _ = key
    router.config.delta_delay = 0.02
    leader, follower = pty.openpty()
    env = {**os.environ, "XROUTER_PRIVATE_KEY": secret}
    process = subprocess.Popen(
        [PROGRAM, "ask", "--base-url", router.url, "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    out, _ = process.communicate(timeout=30)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert process.returncode == 0
    assert b"\x1b" not in out
    shown = terminal.decode()
    assert "paying $" in shown and "streaming · " in shown
    assert shown.rstrip().splitlines()[-1].lstrip("\r\x1b[2K").startswith("anthropic/")


def test_demo_server_on_a_busy_port_says_so_in_one_line(router):
    port = router.url.rsplit(":", 1)[1]
    result = run("demo-server", "--port", port, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"xrouter-tui: cannot listen on 127.0.0.1:{port}: Address already in use."
    )


def test_options_before_the_command_word_count_too():
    result = run("--demo", "-m", "openai/gpt-4o", "ask", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("openai/gpt-4o · ")


def test_the_chat_needs_a_terminal():
    result = run("--demo")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "xrouter-tui: the chat needs a terminal; for pipes and scripts use: xrouter-tui ask"
    )
    assert result.stdout == ""
