"""The proxy's Starlette app: OpenAI's chat and model endpoints, paid upstream with x402.

One request, as data: the guard checks token, Host and Origin; the body becomes X-Router's
fields; the question is committed to the history; the router's 402 is paid under the same
policy, caps, budgets and ledger as the chat (no one can be asked, so what needs asking is
refused); the paid answer is passed on as it comes, piece by piece, with the receipt in a
header; the answer lands in the history once the client has it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xrouter_tui.api import (
    Completion,
    ModelInfo,
    PaymentRejected,
    ResponseTimeout,
    RouterClient,
    RouterError,
    RouterHTTPError,
    Usage,
    answer_broke,
    parse_models,
    payment_note,
    read_completion,
)
from xrouter_tui.charges import Charge
from xrouter_tui.commands.journal import TurnJournal
from xrouter_tui.ledger import Ledger
from xrouter_tui.payments import (
    PaymentRefused,
    Quote,
    Receipt,
    SignedPayment,
    read_receipt,
    unconfirmed,
)
from xrouter_tui.pricing import shorter_max_tokens
from xrouter_tui.proxy.access import AccessGuard
from xrouter_tui.proxy.record import ProxyHistory, StreamTap
from xrouter_tui.proxy.wire import (
    ProxyError,
    ProxyRequest,
    completion_document,
    completion_events,
    models_list,
    read_request,
)
from xrouter_tui.serving import COMPLETED, LEFT, STOPPED, WatchedStream
from xrouter_tui.store import StoreError

__all__ = ["ProxySetup", "create_proxy_app"]

# The receipt headers of x402 v1 and v2, passed on as the router sent them.
RECEIPT_HEADERS = ("x-payment-response", "payment-response")
# How often the answer passing through is read for the history (and saved, by the journal).
_TAP_INTERVAL = 0.5
# A stream's last bytes say how it ended: `[DONE]`, a finish reason, or the router's error
# (which the client has then had); anything else is an answer cut short.
_ENDING = re.compile(rb'\[DONE\]|"finish_reason"\s*:\s*"|"error"\s*:')
_TAIL = 512
# How much of it is read at a time once it has ended (about 1 ms of work).
_TAP_SLICE = 64 * 1024
# The model list changes rarely; editors ask for it often.
_MODELS_TTL = 60.0
_STOPPED_BY = {LEFT: "the client closed the connection", STOPPED: "the proxy was stopped"}


@dataclass
class ProxySetup:
    """What the proxy pays with and under which rules; `defaults` fill what a client omits."""

    client: RouterClient
    ledger: Ledger
    history: ProxyHistory
    model: str
    max_tokens: int
    temperature: float | None
    confirm_above_usd: Decimal
    # Started with --yes: pay above confirm_above_usd (up to the cap) without asking.
    pay_without_asking: bool = False
    models: Sequence[ModelInfo] = ()
    log: IO[str] | None = None
    clock: Callable[[], float] = time.time
    # The OpenAI-shaped model list, and when it was fetched.
    listed_models: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)
    # Answers still being saved after their response ended.
    pending: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the response, kept until done (and waited for at shutdown)."""
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def model_info(self, model: str) -> ModelInfo | None:
        return next((m for m in self.models if m.id == model), None)

    def say(self, text: str) -> None:
        """One line in the proxy's log (its terminal), never a secret."""
        if self.log is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
            print(f"{stamp} {text}", file=self.log, flush=True)


def create_proxy_app(
    setup: ProxySetup,
    *,
    token: str,
    exposed: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> AccessGuard:
    """The ASGI app: the endpoints behind the access guard. `on_ready` runs once the server
    is up (and Ctrl+C is its to handle)."""
    handlers = _Handlers(setup)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if on_ready is not None:
            on_ready()
        yield
        if setup.pending:
            await asyncio.gather(*setup.pending, return_exceptions=True)
        await setup.client.aclose()

    routes = []
    for prefix in ("/v1", ""):  # some clients are given the base URL without /v1
        routes += [
            Route(f"{prefix}/chat/completions", handlers.chat, methods=["POST"]),
            Route(f"{prefix}/models", handlers.models, methods=["GET"]),
        ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,  # type: ignore[dict-item]
            Exception: _unexpected,
        },
    )
    return AccessGuard(app, token=token, exposed=exposed)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    words = {404: "There is no such endpoint here", 405: "That method is not allowed here"}
    message = words.get(exc.status_code, exc.detail)
    return ProxyError(
        exc.status_code,
        f"{message}: {request.method} {request.url.path}. The proxy serves POST "
        "/v1/chat/completions and GET /v1/models.",
    ).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not the user's doing; uvicorn logs the traceback. Not retried: it may have paid.
    return ProxyError(
        500,
        f"The proxy failed unexpectedly ({type(exc).__name__}); see its log. If the request "
        "was paid, the ledger (xrouter-tui spend) shows it.",
        type="server_error",
        retry=False,
    ).response()


class _Handlers:
    def __init__(self, setup: ProxySetup) -> None:
        self.setup = setup

    async def models(self, request: Request) -> Response:
        setup = self.setup
        cached = setup.listed_models
        if cached is not None and setup.clock() - cached[0] < _MODELS_TTL:
            return JSONResponse(cached[1])
        try:
            document = await setup.client.get_json("/v1/models")
        except RouterError as exc:
            return _upstream_error(exc, None).response()
        try:
            listed = models_list(document)
            setup.models = parse_models(document)
        except ProxyError as exc:
            return exc.response()
        except ValueError:
            pass  # the prices stay as they were; the list is still passed on
        setup.listed_models = (setup.clock(), listed)
        return JSONResponse(listed)

    async def chat(self, request: Request) -> Response:
        setup = self.setup
        started = time.monotonic()
        try:
            chat = read_request(
                await request.body(),
                model=setup.model,
                max_tokens=setup.max_tokens,
                temperature=setup.temperature,
            )
        except ProxyError as exc:
            setup.say(f"refused a request (400): {exc.message}")
            return exc.response()
        try:
            journal = setup.history.begin(chat)
        except StoreError as exc:
            setup.say(f"{chat.model}: the history is not writable: {exc}")
            return ProxyError(
                503,
                f"The history could not be written ({exc}). Nothing was sent.",
                type="server_error",
            ).response()
        turn = _Turn(setup, chat, journal, started)
        try:
            response, payment = await setup.client.open_chat(
                chat.body,
                budgets=setup.ledger.budgets(),
                confirm=self._confirm,
                on_signed=turn.signed,
            )
        except PaymentRefused as exc:
            return turn.refused(exc)
        except RouterError as exc:
            return turn.failed_upstream(exc)
        except StoreError as exc:
            return turn.unrecorded(exc)
        return await turn.answer(response, payment)

    async def _confirm(self, quote: Quote) -> bool:
        setup = self.setup
        if setup.pay_without_asking or quote.amount_usd <= setup.confirm_above_usd:
            return True
        raise unconfirmed(
            quote.amount_usd,
            setup.confirm_above_usd,
            "the proxy cannot ask anyone",
            "start it with --yes to pay up to max_per_request_usd without asking",
        )


class _Turn:
    """One chat request from the payment on: what it paid, and how it ends in the history."""

    def __init__(
        self, setup: ProxySetup, chat: ProxyRequest, journal: TurnJournal, started: float
    ) -> None:
        self.setup = setup
        self.chat = chat
        self.journal = journal
        self.started = started
        self.payment: SignedPayment | None = None
        self.receipt: Receipt | None = None
        # The router took the paid request: from here on, the payment is spent.
        self.accepted = False

    def signed(self, payment: SignedPayment) -> None:
        # Recorded before the paid request goes out; a budget spent meanwhile stops it here.
        self.setup.ledger.signed(payment, message_id=self.journal.reply_id, model=self.chat.model)
        self.payment = payment

    # -- before an answer -------------------------------------------------------------------

    def refused(self, refusal: PaymentRefused) -> Response:
        message = self.setup.ledger.explain(refusal) + self._shorter_hint(refusal)
        self._end("failed", error=message)
        self.setup.say(f"{self.chat.model}: refused (402): {message}")
        return ProxyError(
            402, message, type="payment_refused", code=refusal.code, retry=False
        ).response()

    def failed_upstream(self, exc: RouterError) -> Response:
        self.setup.ledger.failed(self.payment, exc, accepted=self.accepted)
        error = _upstream_error(exc, self.payment)
        self._end("failed", error=error.message)
        self.setup.say(f"{self.chat.model}: failed ({error.status}): {error.message}")
        return error.response()

    def unrecorded(self, exc: StoreError) -> Response:
        """The ledger could not be read or written: no payment may go out unrecorded."""
        message = f"The ledger could not be written ({exc}), so nothing was paid or sent."
        self._end("failed", error=message)
        self.setup.say(f"{self.chat.model}: failed (503): {message}")
        return ProxyError(503, message, type="server_error", retry=False).response()

    def _shorter_hint(self, refusal: PaymentRefused) -> str:
        chat = self.chat
        model = self.setup.model_info(chat.model)
        fitting = shorter_max_tokens(refusal, model, chat.messages, chat.max_tokens)
        if fitting is None:
            return ""
        return f" A shorter answer would fit: max_tokens {fitting} (now {chat.max_tokens})."

    # -- the answer -------------------------------------------------------------------------

    async def answer(self, response: httpx.Response, payment: SignedPayment | None) -> Response:
        self.accepted = True
        if payment is not None:
            self.receipt = read_receipt(response.headers)
            self.setup.ledger.paid(payment, self.receipt)
        headers = self._headers(response.headers)
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        if streamed and self.chat.stream:
            tap = StreamTap()
            headers.update(
                {
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",
                }
            )
            relay = _Relay(response, tap, self.journal, self.payment)
            return WatchedStream(
                relay.chunks(), headers=headers, on_end=lambda how: self._streamed(how, relay)
            )
        return await self._whole(response, headers, streamed)

    async def _whole(
        self, response: httpx.Response, headers: dict[str, str], streamed: bool
    ) -> Response:
        """A router's answer read whole: as it came, or in the shape the client asked for."""
        try:
            raw = await response.aread()
        except httpx.TransportError as exc:
            return self.failed_upstream(answer_broke(exc, self.payment, ""))
        finally:
            await response.aclose()
        document = None
        try:
            if streamed:  # the client asked for no stream, the router sent one anyway
                tap = StreamTap()
                tap.feed(raw)
                tap.read(final=True)
                if tap.error:
                    raise RouterError(tap.error)
                completion = Completion(tap.text, self.chat.model, tap.finish_reason, tap.usage)
            else:
                document = json.loads(raw)
                completion = read_completion(document, self.chat.model)
        except (ValueError, RouterError) as exc:
            message = exc.message if isinstance(exc, RouterError) else "not JSON"
            return self.failed_upstream(
                RouterError(
                    f"The router's answer could not be read: {message}", payment=self.payment
                )
            )
        self._end("complete", usage=completion.usage, text=completion.text)
        self._log_answer("complete", completion.usage)
        if self.chat.stream:
            return Response(
                completion_events(completion, self.chat),
                headers=headers,
                media_type="text/event-stream",
            )
        if isinstance(document, dict) and "choices" in document:
            return Response(raw, headers=headers, media_type="application/json")  # as it came
        return JSONResponse(completion_document(completion, self.chat), headers=headers)

    def _streamed(self, how: str, relay: _Relay) -> None:
        self.setup.later(self._save_stream(how, relay))

    async def _save_stream(self, how: str, relay: _Relay) -> None:
        """The stream is over for the client: now the history gets the whole answer. Read in
        slices, letting other requests in between: a long answer takes a while to read."""
        tap = relay.tap
        while tap.unread > _TAP_SLICE:
            tap.read(limit=_TAP_SLICE)
            await asyncio.sleep(0)
        tap.read(final=True)
        if how == COMPLETED and relay.broke is None and tap.complete:
            status, error = "complete", ""
        elif how in _STOPPED_BY:
            status, error = "stopped", _STOPPED_BY[how]
        else:
            status = "failed"
            error = (
                relay.broke
                or tap.error
                or "The answer ended before the router said it was complete."
            )
        self._end(status, usage=tap.usage, text=tap.text, error=error)
        self._log_answer(status if not error else f"{status} ({error})", tap.usage)

    def _end(
        self, status: str, *, usage: Usage | None = None, text: str = "", error: str = ""
    ) -> None:
        try:
            self.journal.finish(status, usage=usage, error=error, partial_text=text)
        except StoreError as exc:
            self.setup.say(f"{self.chat.model}: the answer could not be saved: {exc}")
            return
        if status == "complete":
            self.setup.history.answered(self.chat, self.journal, text)

    def _headers(self, upstream: httpx.Headers) -> dict[str, str]:
        headers = {name: upstream[name] for name in RECEIPT_HEADERS if name in upstream}
        if self.journal.conversation_id is not None:
            headers["X-Xrouter-Conversation"] = str(self.journal.conversation_id)
        payment = self.payment
        if payment is not None:
            headers["X-Xrouter-Charged-Usd"] = f"{payment.amount_usd:f}"
            headers["X-Xrouter-Network"] = payment.network.v1_name
            if self.receipt is not None and self.receipt.transaction:
                headers["X-Xrouter-Transaction"] = self.receipt.transaction
        return headers

    def _log_answer(self, how: str, usage: Usage | None) -> None:
        seconds = time.monotonic() - self.started
        parts = [f"{self.chat.model}: {how} in {seconds:.1f} s"]
        if usage is not None:
            parts.append(f"{usage.prompt_tokens} in / {usage.completion_tokens} out tokens")
        if self.payment is not None:
            model = self.setup.model_info(self.chat.model)
            parts.extend(Charge.of(self.payment, self.receipt, usage, model).parts())
        if self.journal.conversation_id is not None:
            parts.append(f"conversation {self.journal.conversation_id}")
        self.setup.say(" · ".join(parts))


class _Relay:
    """The paid stream, passed on piece by piece as it comes; read on the side for the
    history every half second, after the piece has gone on."""

    def __init__(
        self,
        response: httpx.Response,
        tap: StreamTap,
        journal: TurnJournal,
        payment: SignedPayment | None,
    ) -> None:
        self.response = response
        self.tap = tap
        self.journal = journal
        self.payment = payment
        self.broke: str | None = None
        self._next_read = time.monotonic() + _TAP_INTERVAL

    async def chunks(self) -> AsyncIterator[bytes]:
        """The router's pieces as they come. Pieces that arrived together (one network read
        holds many) go on in one write: none waits for another, but a burst costs one write,
        not one per piece."""
        arrived: list[bytes] = []
        tail = b""
        ready = asyncio.Event()
        reader = asyncio.create_task(self._read(arrived, ready))
        try:
            while True:
                await ready.wait()
                ready.clear()
                if arrived:
                    batch = b"".join(arrived) if len(arrived) > 1 else arrived[0]
                    arrived.clear()
                    yield batch
                    self._tap(batch)
                    tail = (tail + batch)[-_TAIL:]
                if reader.done():
                    if arrived:
                        continue
                    break
            if self.broke is None and not _ENDING.search(tail):
                # Cut short, though cleanly: the client must not take it for the whole answer.
                self.broke = "The answer ended before the router said it was complete." + (
                    payment_note(self.payment)
                )
            if self.broke is not None:
                # The client's SDK reads this as an error in the stream, not a normal ending.
                error = ProxyError(502, self.broke, type="upstream_error").document()
                yield f"data: {json.dumps(error)}\n\n".encode()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.response.aclose()

    async def _read(self, arrived: list[bytes], ready: asyncio.Event) -> None:
        try:
            async for chunk in self.response.aiter_bytes():
                arrived.append(chunk)
                ready.set()
        except httpx.TransportError as exc:
            self.broke = answer_broke(exc, self.payment, "").message
        finally:
            ready.set()

    def _tap(self, chunk: bytes) -> None:
        self.tap.feed(chunk)
        now = time.monotonic()
        if now >= self._next_read:
            self._next_read = now + _TAP_INTERVAL
            text = self.tap.read()
            if text:
                self.journal.delta(text)


def _upstream_error(exc: RouterError, payment: SignedPayment | None) -> ProxyError:
    """A router failure in OpenAI's terms, with a status an OpenAI client handles well. Once a
    payment was signed, clients are told not to retry on their own: that would pay again."""
    paid = payment is not None or exc.payment is not None
    retry = False if paid else None
    if isinstance(exc, PaymentRejected):
        return ProxyError(402, exc.message, type="payment_rejected", code=exc.code, retry=False)
    if isinstance(exc, RouterHTTPError):
        if exc.status == 429:
            headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else {}
            return ProxyError(
                429, exc.message, type="rate_limit_error", retry=retry, headers=headers
            )
        if 400 <= exc.status < 500 and exc.status not in (401, 402, 403, 407):
            return ProxyError(exc.status, exc.message, retry=retry)
        return ProxyError(502, exc.message, type="upstream_error", retry=retry)
    if isinstance(exc, ResponseTimeout):
        return ProxyError(504, exc.message, type="upstream_timeout", retry=retry)
    return ProxyError(502, exc.message, type="upstream_error", retry=retry)
