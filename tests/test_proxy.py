"""`xrouter-tui proxy`, the real program, used by the official OpenAI SDK as any tool would use
it, in front of the local router: paid answers streamed and whole, access, money rules, the
history and the ledger, upstream failures, and a client that goes away mid-answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import openai
import pytest

from tests import test_cli
from tests.test_ask_money import listed_price, write_config
from tests.test_cli import PROGRAM, run
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.reply import make_reply
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store

TOKEN = "a-token-for-the-tests"
SONNET = "anthropic/claude-3.5-sonnet"
PROMPT = "What is x402?"
QUESTION = [{"role": "user", "content": PROMPT}]
DEADLINE = 15.0

# test_cli's fixtures: a fresh wallet key, and the local router on Base (by name).
key = test_cli.key
router = test_cli.router


@dataclass
class Proxy:
    process: subprocess.Popen[str]
    url: str  # ends with /v1
    banner: list[str]

    def client(self, token: str = TOKEN, **options) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=token, **options)

    def http(self, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)

    def stop(self) -> str:
        """Stop it as Ctrl+C does; its log (stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stdout is not None and self.process.stderr is not None
        self.banner.extend(self.process.stdout.read().splitlines())  # all it printed
        return self.process.stderr.read()


def start_proxy(*args: str, env_extra: dict[str, str] | None = None) -> Proxy:
    process = subprocess.Popen(
        [PROGRAM, "proxy", "--port", "0", *args],
        env={**os.environ, **(env_extra or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    # A proxy that never says where it listens must not hang the test run.
    watchdog = threading.Timer(DEADLINE, process.kill)
    watchdog.start()
    banner: list[str] = []
    try:
        for line in process.stdout:
            banner.append(line.rstrip("\n"))
            if line.strip().startswith("OPENAI_API_KEY="):  # after OPENAI_BASE_URL=
                urls = [
                    b.split("=", 1)[1] for b in banner if b.strip().startswith("OPENAI_BASE_URL=")
                ]
                assert len(urls) == 1, banner
                return Proxy(process, urls[0], banner)
    finally:
        watchdog.cancel()
    process.kill()
    process.wait()
    raise AssertionError(f"the proxy did not start: {banner} {process.stderr.read()}")


@pytest.fixture
def start(router, key) -> Iterator:
    """Start proxies in front of the local router, paying with the test key; on the way out,
    each is stopped and its log checked: no traceback, never the key."""
    secret, _ = key
    started: list[Proxy] = []

    def starting(
        *args: str,
        with_key: bool = True,
        token: str | None = TOKEN,
        env_extra: dict | None = None,
    ) -> Proxy:
        env = {"XROUTER_PRIVATE_KEY": secret} if with_key else {}
        given = ["--token", token] if token is not None else []
        proxy = start_proxy(
            "--base-url", router.url, *given, *args, env_extra={**env, **(env_extra or {})}
        )
        started.append(proxy)
        return proxy

    yield starting
    logs = [proxy.stop() for proxy in started]  # every one stopped before any is judged
    for proxy, log in zip(started, logs, strict=True):
        assert "Traceback" not in log, log
        assert secret.lower() not in log.lower()
        assert secret.lower() not in "\n".join(proxy.banner).lower()


@pytest.fixture
def proxy(start) -> Proxy:
    return start()


def stored():
    """The history once every answer in it has ended: the proxy writes how an answer ended
    just after the client has all of it, so a client may read the history a moment before."""
    found = None

    def read():
        nonlocal found
        with Store.open(history_path()) as store:
            conversations = store.conversations()
            messages = {c.id: store.messages(c.id) for c in conversations}
            payments = store.payments()
        found = conversations, messages, payments
        return not any(m.status == "streaming" for kept in messages.values() for m in kept)

    wait_until(read, "every answer saved")
    return found


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "receipt"), [(1, "x-payment-response"), (2, "payment-response")]
)
def test_a_whole_answer_is_paid_once_and_carries_the_receipt(proxy, router, key, version, receipt):
    _, address = key
    router.config.x402_version = version
    raw = proxy.client().chat.completions.with_raw_response.create(model=SONNET, messages=QUESTION)
    answer = raw.parse()
    text = answer.choices[0].message.content
    assert text == make_reply(PROMPT, SONNET, router.config.reply_deltas).text
    assert text.startswith("## ") and PROMPT in text.splitlines()[0]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert router.state.paid_requests == 1
    [paid] = router.state.payments
    assert paid.payer == address
    assert raw.headers[receipt]  # the router's receipt, passed on as it came
    charged = f"{paid.amount // 10**6}.{paid.amount % 10**6:06d}"  # six decimals, as USDC counts
    assert raw.headers["x-xrouter-charged-usd"] == charged
    assert raw.headers["x-xrouter-transaction"] == paid.transaction
    assert raw.headers["x-xrouter-network"] == "base"
    assert raw.headers["x-xrouter-conversation"].isdigit()


def test_a_streamed_answer_arrives_whole_and_lands_in_the_history_and_the_ledger(proxy, router):
    stream = proxy.client().chat.completions.create(model=SONNET, messages=QUESTION, stream=True)
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == router.config.reply_deltas
    text = "".join(pieces)
    assert text == make_reply(PROMPT, SONNET, router.config.reply_deltas).text
    assert router.state.paid_requests == 1 and router.state.completed_streams == 1

    wait_until(
        lambda: stored()[1] and next(iter(stored()[1].values()))[-1].status == "complete",
        "the saved answer",
    )
    [conversation], messages, [payment] = stored()
    question, answer = messages[conversation.id]
    assert (question.role, question.content) == ("user", "What is x402?")
    assert (answer.role, answer.content, answer.status) == ("assistant", text, "complete")
    assert payment.tx == router.state.payments[0].transaction and payment.model == SONNET

    spend = run("spend", "--json")
    assert spend.returncode == 0, spend.stderr
    [listed] = json.loads(spend.stdout)["payments"]
    assert listed["tx"] == payment.tx and listed["status"] == "settled"


def test_a_follow_up_goes_on_in_the_same_conversation(proxy, router):
    client = proxy.client()
    first = client.chat.completions.with_raw_response.create(model=SONNET, messages=QUESTION)
    reply = first.parse().choices[0].message.content
    follow_up = [
        *QUESTION,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And v2?"},
    ]
    second = client.chat.completions.with_raw_response.create(model=SONNET, messages=follow_up)
    conversation = first.headers["x-xrouter-conversation"]
    assert second.headers["x-xrouter-conversation"] == conversation
    conversations, messages, payments = stored()
    assert len(conversations) == 1 and len(payments) == 2
    kept = messages[int(conversation)]
    assert [(m.role, m.content) for m in kept] == [
        ("user", PROMPT),
        ("assistant", reply),
        ("user", "And v2?"),
        ("assistant", second.parse().choices[0].message.content),
    ]
    assert kept[-1].status == "complete"
    # The router was sent the whole conversation the second time.
    assert len(router.state.payments[1].messages) == 3


def test_the_model_list_has_openais_shape_and_x_routers_prices(proxy, router):
    models = proxy.client().models.list().data
    with httpx.Client() as http:
        listed = http.get(f"{router.url}/v1/models").json()["models"]
    assert [m.id for m in models] == [m["id"] for m in listed]
    assert all(
        m.model_extra["pricing"] == e["pricing"] for m, e in zip(models, listed, strict=True)
    )
    sonnet = next(m for m in models if m.id == SONNET)
    assert sonnet.object == "model" and sonnet.owned_by == "anthropic"
    assert sonnet.model_extra["pricing"]["output_per_1k_tokens"] == 0.015
    assert len(models) >= 12
    assert router.state.paid_requests == 0  # free


# -- access ----------------------------------------------------------------------------------------


def test_a_wrong_or_missing_token_is_refused_before_anything_is_sent(proxy, router):
    with pytest.raises(openai.AuthenticationError):
        proxy.client("not-the-token", max_retries=0).chat.completions.create(
            model=SONNET, messages=QUESTION
        )
    with proxy.http() as http:
        refused = http.post("/chat/completions", json={"model": SONNET, "messages": QUESTION})
    assert refused.status_code == 401
    assert "token" in refused.json()["error"]["message"]
    assert router.state.unpaid_requests == router.state.paid_requests == 0


def test_a_foreign_host_or_a_page_from_another_site_is_refused(proxy, router):
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    with proxy.http(headers=authorized) as http:
        rebound = http.get("/models", headers={"Host": "evil.example"})
        assert rebound.status_code == 403
        assert rebound.json()["error"]["code"] == "host_not_allowed"
        cross_site = http.post(
            "/chat/completions",
            json={"model": SONNET, "messages": QUESTION},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        assert cross_site.json()["error"]["code"] == "origin_not_allowed"
        # A page served from this machine gets CORS answers.
        preflight = http.options(
            "/chat/completions",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        local_page = http.get("/models", headers={"Origin": "http://localhost:3000"})
        assert local_page.status_code == 200
        assert local_page.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert router.state.unpaid_requests == router.state.paid_requests == 0


def test_a_generated_token_is_printed_and_one_from_the_environment_is_not(start, router):
    made = start(token=None)
    [line] = [line for line in made.banner if line.strip().startswith("OPENAI_API_KEY=")]
    token = line.split("=", 1)[1]
    assert len(token) >= 24
    assert made.client(token).models.list().data
    with pytest.raises(openai.AuthenticationError):
        made.client(TOKEN, max_retries=0).models.list()

    given = "a-token-from-the-environment"
    from_env = start(token=None, env_extra={"XROUTER_PROXY_TOKEN": given})
    assert given not in "\n".join(from_env.banner)
    assert from_env.client(given).models.list().data
    with pytest.raises(openai.AuthenticationError):
        from_env.client(token, max_retries=0).models.list()


def test_listening_beyond_this_machine_needs_an_explicit_flag(router, key):
    secret, _ = key
    refused = run(
        "proxy",
        "--base-url",
        router.url,
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        env_extra={"XROUTER_PRIVATE_KEY": secret},
    )
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "--allow-remote" in line and "Traceback" not in refused.stderr


# -- money -----------------------------------------------------------------------------------------


def test_a_spent_daily_budget_is_a_clear_402_and_no_payment_upstream(
    start, router, isolated_environment
):
    price = listed_price("What is x402?", 1024)
    write_config(isolated_environment, f"daily_budget_usd = {price * Decimal('1.5')}\n")
    proxy = start()
    client = proxy.client()  # with the SDK's retries on: a refusal must not be retried
    client.chat.completions.create(model=SONNET, messages=QUESTION)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=SONNET, messages=QUESTION)
    error = refused.value
    assert error.status_code == 402
    assert error.response.headers["x-should-retry"] == "false"
    assert error.body["code"] == "over_budget" and error.body["type"] == "payment_refused"
    assert "daily_budget_usd" in error.message and "Nothing was signed" in error.message
    assert router.state.paid_requests == 1  # the second was never paid
    _, messages, payments = stored()
    assert len(payments) == 1
    refused_answer = [m for ms in messages.values() for m in ms if m.status == "failed"]
    assert len(refused_answer) == 1 and "daily_budget_usd" in refused_answer[0].error


def test_above_confirm_above_usd_nobody_can_say_yes_unless_the_proxy_was_started_with_yes(
    start, router
):
    dear = {"model": SONNET, "messages": QUESTION, "max_tokens": 20_000}  # about $0.30
    asking = start()
    with pytest.raises(openai.APIStatusError) as refused:
        asking.client().chat.completions.create(**dear)
    assert refused.value.status_code == 402 and refused.value.body["code"] == "needs_confirmation"
    assert "--yes" in refused.value.message and "confirm_above_usd" in refused.value.message
    assert "A shorter answer would fit: max_tokens" in refused.value.message
    assert router.state.paid_requests == 0

    paying = start("--yes")
    answer = paying.client().chat.completions.create(**dear)
    assert answer.choices[0].message.content
    assert router.state.paid_requests == 1


def test_the_key_can_stay_in_the_keyring(start, router, key):
    secret, address = key
    assert run("key", "import", stdin=secret).returncode == 0
    proxy = start(with_key=False)
    proxy.client().chat.completions.create(model=SONNET, messages=QUESTION)
    assert [p.payer for p in router.state.payments] == [address]
    history = history_path()
    for path in history.parent.iterdir():  # the database, its WAL and its journal
        assert secret.lower().encode() not in path.read_bytes().lower()


# -- failures --------------------------------------------------------------------------------------


def test_a_payment_the_router_rejects_is_a_402_in_plain_words(proxy, router):
    router.config.faults = {"reject-payment"}
    with pytest.raises(openai.APIStatusError) as rejected:
        proxy.client().chat.completions.create(model=SONNET, messages=QUESTION)
    assert rejected.value.status_code == 402
    assert rejected.value.body["type"] == "payment_rejected"
    assert rejected.value.response.headers["x-should-retry"] == "false"
    message = rejected.value.body["message"]
    assert message.startswith("The router refused the payment") and message.endswith(".")
    # Handed over, so it may still be charged: never "nothing was charged".
    assert "could still be charged until" in message and "counts against your budgets" in message
    assert "nothing was charged" not in message.lower()
    assert "\n" not in message and "Traceback" not in message
    assert router.state.paid_requests == 1  # not retried, by the SDK or the proxy
    [payment] = stored()[2]
    assert payment.status == "unknown" and payment.at_risk


def test_a_router_failing_after_the_payment_is_a_502_the_sdk_does_not_retry(proxy, router):
    router.config.faults = {"paid-http-error"}
    with pytest.raises(openai.APIStatusError) as failed:
        proxy.client().chat.completions.create(model=SONNET, messages=QUESTION)  # retries on
    assert failed.value.status_code == 502
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert "may be charged" in failed.value.message
    assert router.state.paid_requests == 1  # one payment, however eager the client


def test_an_unknown_model_is_the_routers_400_and_nothing_is_paid(proxy, router):
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client().chat.completions.create(model="nobody/no-such-model", messages=QUESTION)
    assert refused.value.status_code == 400
    assert "no-such-model" in refused.value.message
    assert router.state.paid_requests == 0


def test_a_request_past_the_routers_limits_is_refused_whole_before_anything_is_sent(proxy, router):
    many = [{"role": "user", "content": f"message {n}"} for n in range(101)]
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client().chat.completions.create(model=SONNET, messages=many)
    assert "101 messages; X-Router takes at most 100" in refused.value.message
    # Nothing was cut and sent on: the router saw no request at all.
    assert (router.state.unpaid_requests, router.state.paid_requests) == (0, 0)
    assert router.state.invalid_requests == 0


def test_a_router_that_does_not_answer_in_time_is_a_504_not_retried(
    start, router, isolated_environment
):
    write_config(isolated_environment, "first_byte_timeout = 1\n")
    proxy = start()
    router.config.faults = {"stall-first-byte"}
    router.config.stall_seconds = 2.5
    with pytest.raises(openai.APIStatusError) as failed:
        proxy.client().chat.completions.create(model=SONNET, messages=QUESTION)  # retries on
    assert failed.value.status_code == 504
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert router.state.paid_requests == 1


def test_a_router_that_is_gone_is_a_502(start):
    with start_dev_server(DevServerConfig(network="base")) as gone:
        proxy = start("--base-url", gone.url)
    with pytest.raises(openai.APIStatusError) as failed:
        proxy.client(max_retries=0).chat.completions.create(model=SONNET, messages=QUESTION)
    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "upstream_error"
    assert "Traceback" not in failed.value.message


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("midstream-error", "overloaded"),
        ("disconnect", "in the middle of the answer"),
        # Cut short, cleanly: no [DONE], no finish reason.
        ("truncate", "ended before the router said it was complete"),
    ],
)
def test_an_error_mid_stream_reaches_the_client_as_an_error(proxy, router, fault, words):
    router.config.faults = {fault}
    stream = proxy.client().chat.completions.create(model=SONNET, messages=QUESTION, stream=True)
    received = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert words in str(failed.value)
    assert router.state.paid_requests == 1

    def failed_answer():
        answers = [m for ms in stored()[1].values() for m in ms if m.role == "assistant"]
        return answers and answers[0].status == "failed" and answers[0]

    wait_until(failed_answer, "the failed answer")
    answer = failed_answer()
    assert answer.content == "".join(received)  # the part the client got is kept
    assert words in answer.error


def test_a_client_that_leaves_mid_stream_ends_the_routers_stream(proxy, router):
    router.config.reply_deltas = 2000
    router.config.delta_delay = 0.01  # 20 s in all: it cannot end on its own during the test
    stream = proxy.client().chat.completions.create(model=SONNET, messages=QUESTION, stream=True)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
        if len(received) == 10:
            break
    stream.close()
    wait_until(lambda: router.state.disconnects == 1, "the router to see its client go")
    assert router.state.completed_streams == 0

    def stopped():
        answers = [m for ms in stored()[1].values() for m in ms if m.role == "assistant"]
        return answers and answers[0].status == "stopped" and answers[0]

    wait_until(stopped, "the stopped answer")
    answer = stopped()
    whole = make_reply(PROMPT, SONNET, 2000).text
    assert answer.content.startswith("".join(received))
    assert whole.startswith(answer.content) and len(answer.content) < len(whole)
    assert answer.error == "the client closed the connection"
    [payment] = stored()[2]
    assert payment.status == "settled"  # paid and taken: the partial answer cost it


def test_the_proxy_stops_on_ctrl_c(proxy):
    log = proxy.stop()
    assert proxy.process.returncode == 0
    assert "Traceback" not in log
