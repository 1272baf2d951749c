"""The proxy's Starlette app: OpenAI's chat and model endpoints, paid upstream with x402.

One request, as data: the guard checks token, Host and Origin; the body becomes X-Router's
fields; the question is committed to the history; the router's 402 is paid under the same
policy, caps, budgets and ledger as the chat (no one can be asked, so what needs asking is
refused); the paid answer is passed on as it comes, piece by piece, with the receipt in a
header; the answer lands in the history once the client has it all.

Everything the router and the client send is untrusted: the request body is read within
proxy_max_request_bytes, the answer within the client's limits (`Limits`), header values are
checked before they are set, and the log shows router text only through `one_line`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from xrouter_tui import safe_json
from xrouter_tui.api import (
    AnswerTooLarge,
    Completion,
    Limits,
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
from xrouter_tui.context import request_refusal
from xrouter_tui.history.journal import TurnJournal
from xrouter_tui.history.store import StoreError
from xrouter_tui.ledger import Ledger
from xrouter_tui.payments import (
    PaymentRefused,
    Quote,
    Receipt,
    SignedPayment,
    read_receipt,
    unconfirmed,
)
from xrouter_tui.payments.networks import usd_text
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
from xrouter_tui.safe_text import one_line, valid_tx
from xrouter_tui.serving import BROKE, COMPLETED, LEFT, STOPPED, WatchedStream

if TYPE_CHECKING:
    from xrouter_tui.chain import BalanceWatch

__all__ = ["ProxySetup", "create_proxy_app"]

# The receipt headers of x402 v1 and v2, passed on as the router sent them.
RECEIPT_HEADERS = ("x-payment-response", "payment-response")
# How often the answer passing through is read for the history (and saved, by the journal).
_TAP_INTERVAL = 0.5
# A stream's last bytes say how it ended: `[DONE]`, a finish reason, or the router's error
# (which the client has then had); anything else is an answer cut short.
_ENDING = re.compile(rb'\[DONE\]|"finish_reason"\s*:\s*"|"error"\s*:')
_TAIL = 512
# How much of it is read at a time once it has ended (about 1 ms of work); while it streams,
# it is also read whenever this much is waiting, so what is held stays small.
_TAP_SLICE = 64 * 1024
# The most read ahead from the router while the client is still taking earlier pieces: a
# client that reads slowly slows the router's stream down instead of filling the memory.
_READ_AHEAD = 256 * 1024
# A request body past the limit is read on (and dropped) up to this much more, so that the
# client, still sending, gets its 413 instead of a reset connection.
_DISCARD_BYTES = 64 * 1024 * 1024
# How long answers still being saved may take when the proxy stops (uvicorn's own wait for
# open streams is bounded by its graceful shutdown timeout, in commands/proxy.py).
_SAVE_SECONDS = 1.0
# A line in the proxy's log is at most this long: an error body can be 64 KB.
_LOG_CHARS = 2000
# The model list changes rarely; editors ask for it often.
_MODELS_TTL = 60.0
_STOPPED_BY = {LEFT: "the client closed the connection", STOPPED: "the proxy was stopped"}
# The line ends of server-sent events: CR LF, LF or CR.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_NOT_SENT = "The answer could not be passed on to the client."
# A header value the proxy sets: printable ASCII, no space at either end. Anything else from
# a router (CR LF, NUL, ESC, U+2028) would break the response or reach the client's terminal.
_HEADER_VALUE = re.compile(r"[!-~](?:[ -~]*[!-~])?")


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
    # The most taken from the router (the user's settings), and the largest request body.
    limits: Limits = field(default_factory=Limits)
    max_request_bytes: int = 8_000_000
    clock: Callable[[], float] = time.time
    # The wallet's balance, read from the chain: a payment it is known not to cover is refused
    # (402) before anything is signed. None: not checked (the router judges).
    balances: BalanceWatch | None = None
    # The OpenAI-shaped model list, and when it was fetched.
    listed_models: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)
    # Answers still being saved after their response ended.
    pending: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    # Requests whose answer is not in the history yet: marked stopped if the proxy stops first.
    turns: set[_Turn] = field(default_factory=set, repr=False)
    # Streams being passed on, and whether the proxy is stopping (see `stop_soon`).
    streams: set[_Relay] = field(default_factory=set, repr=False)
    stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the response, kept until done (and waited for at shutdown)."""
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def model_info(self, model: str) -> ModelInfo | None:
        return next((m for m in self.models if m.id == model), None)

    def say(self, text: str) -> None:
        """One line in the proxy's log (its terminal), never a secret. Lines hold what routers
        and clients sent (model ids, error messages): made safe for a terminal, on one line."""
        if self.log is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
            print(f"{stamp} {one_line(text, _LOG_CHARS)}", file=self.log, flush=True)

    def stop_soon(self) -> None:
        """The server was told to stop (Ctrl+C, SIGTERM; called from the signal handler). Open
        streams end now, each with an error event; requests still waiting for the router are
        answered 503. Left to uvicorn, they would be cut only after its graceful timeout, by
        cancelling them, which it logs as a traceback."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        self.stopping.set()
        for stream in list(self.streams):
            stream.stop()

    async def finish(self) -> None:
        """The proxy stops: answers still being saved get a moment, then every turn not
        finished yet is kept as it stands, marked stopped."""
        self._stop()
        if self.pending:
            _, late = await asyncio.wait(set(self.pending), timeout=_SAVE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for turn in list(self.turns):
            turn.abandon()


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
        setup.loop = asyncio.get_running_loop()
        if on_ready is not None:
            on_ready()
        yield
        await setup.finish()
        await setup.client.aclose()
        if setup.balances is not None:
            await setup.balances.aclose()

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

    async def chat(self, request: Request) -> ASGIApp:
        """A chat request, or a 503 when the proxy stops before it is answered."""
        work = asyncio.ensure_future(self._chat(request))
        stopping = asyncio.ensure_future(self.setup.stopping.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            stopping.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait({work})
        if work.cancelled():
            return ProxyError(
                503,
                "The proxy was stopped before the answer came. If the request was paid, the "
                "ledger (xrouter-tui spend) shows it.",
                type="server_error",
                retry=False,
            ).response()
        return work.result()  # a stream already open ends at once, stopped

    async def _chat(self, request: Request) -> ASGIApp:
        setup = self.setup
        started = time.monotonic()
        try:
            chat = read_request(
                await _read_body(request, setup.max_request_bytes),
                model=setup.model,
                max_tokens=setup.max_tokens,
                temperature=setup.temperature,
            )
        except ProxyError as exc:
            setup.say(f"refused a request ({exc.status}): {exc.message}")
            return exc.response()
        # Another program's messages are its own: a request that does not fit is refused
        # whole, never cut here.
        model = setup.model_info(chat.model)
        too_big = request_refusal(
            chat.messages,
            context_length=model.context_length if model is not None else None,
            max_tokens=chat.max_tokens,
            model=one_line(chat.model, 80),
        )
        if too_big is not None:
            setup.say(f"refused a request (400): {too_big}")
            return ProxyError(400, too_big, code="context_length_exceeded").response()
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
                funds=setup.balances.funds if setup.balances is not None else None,
            )
        except PaymentRefused as exc:
            return turn.refused(exc)
        except RouterError as exc:
            return turn.failed_upstream(exc)
        except StoreError as exc:
            return turn.unrecorded(exc)
        except asyncio.CancelledError:  # the proxy stops
            turn.abandon()
            raise
        try:
            return await turn.answer(response, payment)
        except asyncio.CancelledError:
            await response.aclose()
            turn.abandon()
            raise

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
        # The streamed answer as read so far (what is kept if the proxy stops meanwhile).
        self.tap: StreamTap | None = None
        self.ended = False
        setup.turns.add(self)

    def signed(self, payment: SignedPayment, body: Mapping[str, Any]) -> None:
        # Recorded before the paid request goes out; a budget spent meanwhile stops it here.
        # Without its body: no resend by key is offered for another program's request.
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
        self._end("failed", error=error.message, text=exc.partial_text)
        self.setup.say(f"{self.chat.model}: failed ({error.status}): {error.message}")
        return error.response()

    def unrecorded(self, exc: StoreError) -> Response:
        """The ledger could not be read or written: no payment may go out unrecorded."""
        message = f"The ledger could not be written ({exc}), so nothing was paid or sent."
        self._end("failed", error=message)
        self.setup.say(f"{self.chat.model}: failed (503): {message}")
        return ProxyError(503, message, type="server_error", retry=False).response()

    def abandon(self) -> None:
        """The proxy stops before this turn ended: keep what came of it, marked stopped."""
        if self.ended:
            return
        if self.payment is not None and not self.accepted:
            stopped = RouterError(
                "The proxy was stopped before the router answered." + payment_note(self.payment),
                payment=self.payment,
            )
            self.setup.ledger.failed(self.payment, stopped, accepted=False)
        tap = self.tap
        if tap is not None:
            rest = tap.read(final=True)
            if rest:
                self.journal.delta(rest)
        usage = tap.usage if tap is not None else None
        text = tap.text if tap is not None else ""
        if self._end("stopped", usage=usage, text=text, error=_STOPPED_BY[STOPPED]):
            self._log_answer(f"stopped ({_STOPPED_BY[STOPPED]})", usage)

    def _shorter_hint(self, refusal: PaymentRefused) -> str:
        chat = self.chat
        model = self.setup.model_info(chat.model)
        fitting = shorter_max_tokens(refusal, model, chat.messages, chat.max_tokens)
        if fitting is None:
            return ""
        return f" A shorter answer would fit: max_tokens {fitting} (now {chat.max_tokens})."

    # -- the answer -------------------------------------------------------------------------

    async def answer(self, response: httpx.Response, payment: SignedPayment | None) -> ASGIApp:
        self.accepted = True
        if payment is not None:
            self.receipt = read_receipt(response.headers)
            self.setup.ledger.paid(payment, self.receipt)
        headers = self._headers(response.headers)
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        if streamed and self.chat.stream:
            tap = self.tap = StreamTap(self.setup.limits)
            headers.update(
                {
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",
                }
            )
            relay = _Relay(self.setup, response, tap, self.journal, self.payment)
            return WatchedStream(
                relay.chunks(), headers=headers, on_end=lambda how: self._streamed(how, relay)
            )
        return await self._whole(response, headers, streamed)

    async def _whole(
        self, response: httpx.Response, headers: dict[str, str], streamed: bool
    ) -> ASGIApp:
        """A router's answer read whole (within max_document_bytes): as it came, or in the
        shape the client asked for. It is complete in the history once the client has it."""
        try:
            raw = await self.setup.client.read_answer_body(response, self.payment)
        except RouterError as exc:
            return self.failed_upstream(exc)
        finally:
            await response.aclose()
        document = None
        try:
            if streamed:  # the client asked for no stream, the router sent one anyway
                tap = StreamTap(self.setup.limits)
                tap.feed(raw)
                tap.read(final=True)
                if tap.failure or tap.error:
                    raise RouterError(tap.failure or tap.error or "", partial_text=tap.text)
                completion = Completion(tap.text, self.chat.model, tap.finish_reason, tap.usage)
            else:
                document = safe_json.loads(raw)
                completion = read_completion(document, self.chat.model)
        except (ValueError, RouterError) as exc:
            message = exc.message if isinstance(exc, RouterError) else "not JSON"
            partial = exc.partial_text if isinstance(exc, RouterError) else ""
            return self.failed_upstream(
                RouterError(
                    f"The router's answer could not be read: {message}",
                    payment=self.payment,
                    partial_text=partial,
                )
            )
        limit = self.setup.limits.answer_bytes
        if len(completion.text.encode("utf-8", "replace")) > limit:
            kept = completion.text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")
            return self.failed_upstream(
                AnswerTooLarge(
                    f"The answer is longer than max_answer_bytes ({limit:,} bytes): the rest "
                    "was not passed on." + payment_note(self.payment),
                    setting="max_answer_bytes",
                    payment=self.payment,
                    partial_text=kept,
                )
            )
        if self.chat.stream:
            reply: Response = Response(
                completion_events(completion, self.chat),
                headers=headers,
                media_type="text/event-stream",
            )
        elif isinstance(document, dict) and "choices" in document:
            reply = Response(raw, headers=headers, media_type="application/json")  # as it came
        else:
            reply = JSONResponse(completion_document(completion, self.chat), headers=headers)
        return _Delivered(reply, on_end=lambda how: self._delivered(how, completion))

    def _delivered(self, how: str, completion: Completion) -> None:
        """How sending a whole answer went: only an answer the client has is complete."""
        if how == COMPLETED:
            status, error = "complete", ""
        elif how in _STOPPED_BY:
            status, error = "stopped", _STOPPED_BY[how]
        else:
            status, error = "failed", _NOT_SENT
        if self._end(status, usage=completion.usage, text=completion.text, error=error):
            self._log_answer(status if not error else f"{status} ({error})", completion.usage)

    def _streamed(self, how: str, relay: _Relay) -> None:
        self.setup.later(self._save_stream(how, relay))

    async def _save_stream(self, how: str, relay: _Relay) -> None:
        """The stream is over for the client: now the history gets the whole answer. Read in
        slices, letting other requests in between: a long answer takes a while to read. Every
        slice moves on (a line longer than a slice is held, up to max_line_bytes)."""
        tap = relay.tap
        rest: list[str] = []
        while tap.unread > _TAP_SLICE:
            rest.append(tap.read(limit=_TAP_SLICE))
            await asyncio.sleep(0)
        rest.append(tap.read(final=True))
        text = "".join(rest)
        if text:
            self.journal.delta(text)  # the journal then holds the whole answer read
        if relay.stopped:
            status, error = "stopped", _STOPPED_BY[STOPPED]
        elif how == COMPLETED and relay.broke is None and tap.complete:
            status, error = "complete", ""
        elif how in _STOPPED_BY:
            status, error = "stopped", _STOPPED_BY[how]
        elif how == BROKE:
            status, error = "failed", _NOT_SENT
        elif relay.broke is not None:
            status, error = "failed", relay.broke
        elif tap.failure is not None:  # found only now: the stream was over before the read
            status, error = "failed", tap.failure + payment_note(self.payment)
        else:
            status = "failed"
            error = tap.error or "The answer ended before the router said it was complete."
        if self._end(status, usage=tap.usage, text=tap.text, error=error):
            self._log_answer(status if not error else f"{status} ({error})", tap.usage)

    def _end(
        self, status: str, *, usage: Usage | None = None, text: str = "", error: str = ""
    ) -> bool:
        """Write how the turn ended, once; whether this call did (a later one changes nothing:
        a turn the stopping proxy marked is not marked again by its own ending)."""
        if self.ended:
            return False
        self.ended = True
        self.setup.turns.discard(self)
        try:
            self.journal.finish(status, usage=usage, error=error, partial_text=text)
        except StoreError as exc:
            self.setup.say(f"{self.chat.model}: the answer could not be saved: {exc}")
            return True
        if status == "complete":
            self.setup.history.answered(self.chat, self.journal, text)
        return True

    def _headers(self, upstream: httpx.Headers) -> dict[str, str]:
        """The headers the proxy sets. All but the conversation come from the router (its
        receipt) or its challenge: each is checked, and left out when it would not be a
        well-formed header value; the transaction only when it is a transaction hash."""
        headers = {name: upstream[name] for name in RECEIPT_HEADERS if name in upstream}
        if self.journal.conversation_id is not None:
            headers["X-Xrouter-Conversation"] = str(self.journal.conversation_id)
        payment = self.payment
        if payment is not None:
            headers["X-Xrouter-Charged-Usd"] = usd_text(payment.amount_usd)
            headers["X-Xrouter-Network"] = payment.network.v1_name
            transaction = valid_tx(self.receipt.transaction if self.receipt else None)
            if transaction is not None:
                headers["X-Xrouter-Transaction"] = transaction
        return {name: value for name, value in headers.items() if _HEADER_VALUE.fullmatch(value)}

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


class _Delivered:
    """A whole answer sent to the client; `on_end(how)` says how that went (as a
    `WatchedStream`'s does): `COMPLETED` once it is all written, `LEFT` when the client had
    gone before (uvicorn drops writes to a closed connection silently), `STOPPED` or `BROKE`."""

    def __init__(self, response: Response, *, on_end: Callable[[str], None]) -> None:
        self.response = response
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        how = BROKE
        try:
            if await _client_gone(receive):
                how = LEFT
                return
            await self.response(scope, receive, send)
            how = COMPLETED
        except asyncio.CancelledError:
            how = STOPPED
            raise
        finally:
            self._on_end(how)


async def _client_gone(receive: Receive) -> bool:
    """Whether the client has closed its connection, without waiting: the request body is
    read, so what the server could still receive is only the news that it left."""
    task = asyncio.ensure_future(receive())
    await asyncio.sleep(0)  # let it take what is already there
    if task.done():
        return task.result().get("type") == "http.disconnect"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


class _Relay:
    """The paid stream, passed on piece by piece as it comes; read on the side for the
    history (every half second, or once 64 KiB wait), after the piece has gone on. Past a
    limit of the tap's, the stream ends there, with an error event for the client."""

    def __init__(
        self,
        setup: ProxySetup,
        response: httpx.Response,
        tap: StreamTap,
        journal: TurnJournal,
        payment: SignedPayment | None,
    ) -> None:
        self.setup = setup
        self.response = response
        self.tap = tap
        self.journal = journal
        self.payment = payment
        self.broke: str | None = None
        # The proxy stopped while the answer streamed: it ends where it was.
        self.stopped = False
        self._next_read = time.monotonic() + _TAP_INTERVAL
        self._held = 0  # bytes read from the router and not yet passed on
        self._open_line = 0  # bytes passed on since the last line end
        self._ready = asyncio.Event()

    def stop(self) -> None:
        self.stopped = True
        self._ready.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The router's pieces as they come. Pieces that arrived together (one network read
        holds many) go on in one write: none waits for another, but a burst costs one write,
        not one per piece."""
        arrived: list[bytes] = []
        tail = b""
        ready = self._ready
        room = asyncio.Event()
        room.set()
        reader = asyncio.create_task(self._read(arrived, ready, room))
        self.setup.streams.add(self)
        self.stopped = self.setup.stopping.is_set()
        try:
            while not self.stopped:
                await ready.wait()
                ready.clear()
                if self.stopped:
                    break
                if arrived:
                    batch = b"".join(arrived) if len(arrived) > 1 else arrived[0]
                    arrived.clear()
                    self._held = 0
                    room.set()
                    cut = self._too_long_from(batch)
                    passed = batch if cut is None else batch[:cut]
                    if passed:
                        yield passed
                        tail = (tail + passed)[-_TAIL:]
                        self._tap(passed)
                    if cut is not None:  # a line past the limit does not go on
                        text = self.tap.fail_line()
                        if text:
                            self.journal.delta(text)
                    if self.tap.failure is not None:
                        self.broke = self.tap.failure + payment_note(self.payment)
                        break
                if reader.done():
                    if arrived:
                        continue
                    self._tap_rest()
                    if self.tap.failure is not None:  # found in the last pieces
                        self.broke = self.tap.failure + payment_note(self.payment)
                    break
            if self.stopped:
                self.broke = "The proxy was stopped: the answer ends here." + payment_note(
                    self.payment
                )
            elif self.broke is None and not _ENDING.search(tail):
                # Cut short, though cleanly: the client must not take it for the whole answer.
                self.broke = "The answer ended before the router said it was complete." + (
                    payment_note(self.payment)
                )
            if self.broke is not None:
                # The client's SDK reads this as an error in the stream, not a normal ending;
                # a line left unfinished (cut at a limit) is ended first.
                error = ProxyError(502, self.broke, type="upstream_error").document()
                ended = not tail or tail.endswith((b"\n\n", b"\r\r", b"\r\n\r\n"))
                yield (b"" if ended else b"\n\n") + f"data: {json.dumps(error)}\n\n".encode()
        finally:
            self.setup.streams.discard(self)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.response.aclose()

    async def _read(self, arrived: list[bytes], ready: asyncio.Event, room: asyncio.Event) -> None:
        # The idle limit measures progress: it restarts only when a line ends (a router that
        # drips a byte at a time never finishing one would otherwise hold the stream forever),
        # and not while the client is the one who is slow.
        idle = self.setup.client.timeouts.idle
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle
        chunks = self.response.aiter_bytes()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    self.broke = (
                        f"The router went quiet in the middle of the answer: no whole line for "
                        f"{idle:g} s." + payment_note(self.payment)
                    )
                    break
                if b"\n" in chunk or b"\r" in chunk:
                    deadline = loop.time() + idle
                arrived.append(chunk)
                self._held += len(chunk)
                ready.set()
                if self._held >= _READ_AHEAD:
                    room.clear()
                    await room.wait()
                    deadline = max(deadline, loop.time() + idle)
        except httpx.TransportError as exc:
            self.broke = answer_broke(exc, self.payment, "").message
        finally:
            ready.set()

    def _too_long_from(self, batch: bytes) -> int | None:
        """Where in `batch` a line past max_line_bytes starts (0 for the line under way), or
        None. Checked before the batch goes on, so the client never gets such a line. Most
        batches cannot hold one: then one search for the last line end is all it costs."""
        limit = self.tap.limits.line_bytes
        if self._open_line + len(batch) <= limit:
            end = max(batch.rfind(b"\n"), batch.rfind(b"\r"))
            self._open_line = len(batch) - end - 1 if end >= 0 else self._open_line + len(batch)
            return None
        start, carried = 0, self._open_line
        for end in _LINE_END.finditer(batch):
            if carried + end.start() - start > limit:
                return start
            start, carried = end.end(), 0
        if carried + len(batch) - start > limit:
            return start
        self._open_line = carried + len(batch) - start
        return None

    def _tap_rest(self) -> None:
        """The stream is over: what is left is read now, so that a limit it goes past is told
        to the client (it is small: the tap is read whenever 64 KiB wait)."""
        text = self.tap.read(final=True)
        if text:
            self.journal.delta(text)

    def _tap(self, chunk: bytes) -> None:
        self.tap.feed(chunk)
        now = time.monotonic()
        if now >= self._next_read or self.tap.unread >= _TAP_SLICE:
            self._next_read = now + _TAP_INTERVAL
            text = self.tap.read()
            if text:
                self.journal.delta(text)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, read as it comes and never held past `limit` bytes: a larger one is
    a 413 (the rest is read and dropped, up to a point, so the client gets to see it)."""
    declared = request.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > limit
    body = bytearray()
    dropped = 0
    async for chunk in request.stream():
        if too_large or len(body) + len(chunk) > limit:
            too_large = True
            body.clear()
            dropped += len(chunk)
            if dropped > _DISCARD_BYTES:
                break
            continue
        body += chunk
    if too_large:
        raise ProxyError(
            413,
            f"The request body is larger than proxy_max_request_bytes ({limit:,} bytes). "
            "Nothing was sent.",
            code="request_too_large",
        )
    return bytes(body)


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
