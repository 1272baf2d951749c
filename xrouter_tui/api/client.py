"""The router client: models, estimates, and a chat turn paid with x402 and streamed as events.

One turn: an unpaid POST draws the 402; the spending policy picks a requirement (or refuses);
an optional confirmation; the payment is signed and handed to `on_signed` (to be recorded)
*before* the one paid POST is sent. That request is never sent again by this module, whatever
happens to it: if it reached the router, the authorization can settle until it expires.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self

import httpx

from xrouter_tui import __version__, safe_json
from xrouter_tui.api.answers import Completion, error_text, read_chunk, read_completion
from xrouter_tui.api.errors import (
    AnswerTooLarge,
    BadChallenge,
    NeverSent,
    NoWallet,
    PaymentDeclined,
    PaymentRejected,
    ResponseTimeout,
    RouterError,
    RouterHTTPError,
    RouterUnreachable,
    StreamError,
    StreamInterrupted,
    could_still_settle,
    payment_note,
)
from xrouter_tui.api.events import ChatEvent, ConfirmPayment, Delta, Done, OnSigned, Paid, Reasoning
from xrouter_tui.api.models import Estimate, ModelInfo, parse_estimate, parse_models
from xrouter_tui.api.reading import (
    Limits,
    StalledRead,
    Timeouts,
    TooLarge,
    read_capped,
    read_document,
    sse_data,
)
from xrouter_tui.payments import (
    Budget,
    ChallengeError,
    Network,
    PaymentChallenge,
    PaymentRefused,
    Quote,
    SignedPayment,
    Signer,
    SpendingPolicy,
    atomic_to_usd,
    explain_rejection,
    format_usd,
    parse_challenge,
    read_receipt,
    sign_payment,
)
from xrouter_tui.payments.reasons import NONCE_ALREADY_USED
from xrouter_tui.safe_text import one_line, valid_tx

if TYPE_CHECKING:
    pass

__all__ = ["Funds", "RouterClient", "answer_broke", "http_client", "not_enough_funds"]

# The wallet's USDC balance on a network (in atomic units), or None when it is not known now:
# what the check before signing compares with the router's amount. `commands/` and `ui/` pass
# one that reads the chain (`chain.BalanceWatch.funds`); this layer never reads it itself.
Funds = Callable[[Network, str], Awaitable[int | None]]

_CHAT_PATH = "/v1/chat/completions"
_ERROR_BODY_LIMIT = 300


class RouterClient:
    """An async client for X-Router or any OpenAI-compatible router. Use it with `async with`."""

    def __init__(
        self,
        base_url: str,
        *,
        account: Signer | None = None,
        policy: SpendingPolicy | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        funds: Funds | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        # The check before signing: a payment the wallet is known not to cover is not signed.
        self.funds = funds
        self.policy = policy or SpendingPolicy()
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or Limits()
        self._http = http_client(self.timeouts, base_url=self.base_url, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- free endpoints ---------------------------------------------------------------------

    async def get_json(self, path: str) -> Any:
        """A free endpoint's JSON document."""
        return await self._request_json("GET", path)

    async def list_models(self) -> list[ModelInfo]:
        """The router's models, sorted by id."""
        document = await self.get_json("/v1/models")
        try:
            return parse_models(document)
        except ValueError as exc:
            raise RouterError(f"The router's model list could not be read: {exc}.") from None

    async def estimate(
        self, messages: Sequence[Mapping[str, str]], *, model: str, max_tokens: int
    ) -> Estimate:
        """The most this request would be charged up front."""
        body = {"messages": list(messages), "model": model, "max_tokens": max_tokens}
        document = await self._request_json("POST", "/v1/estimate", json=body)
        try:
            return parse_estimate(document)
        except ValueError as exc:
            raise RouterError(f"The router's estimate could not be read: {exc}.") from None

    # -- paid chat ---------------------------------------------------------------------------

    async def stream_chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        budgets: Iterable[Budget] = (),
        confirm: ConfirmPayment | None = None,
        on_signed: OnSigned | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Pay for one chat turn and yield its events; closing the iterator closes the stream."""
        body = _chat_body(messages, model, max_tokens, temperature, stream=True)
        response, payment = await self.open_chat(
            body, budgets=budgets, confirm=confirm, on_signed=on_signed
        )
        async for event in self._answer_events(response, payment, model):
            yield event

    async def resend_chat(
        self, body: Mapping[str, Any], payment: SignedPayment
    ) -> AsyncIterator[ChatEvent]:
        """Send a paid streaming request again exactly as it went the first time: the same
        `body`, the same signed `payment` (its nonce, its payment id). Its nonce can be charged
        once at most, so this cannot pay twice; no 402 is drawn and nothing is signed."""
        body = dict(body)
        paid = await self._send(body, payment=payment)
        if paid.status_code == 402:
            raise self._rejection(
                paid.headers, await self._read_and_close(paid), payment, resent=True
            )
        if not paid.is_success:
            await self._raise_for_status(paid, payment=payment)
        async for event in self._answer_events(paid, payment, str(body.get("model", ""))):
            yield event

    async def _answer_events(
        self, response: httpx.Response, payment: SignedPayment | None, model: str
    ) -> AsyncIterator[ChatEvent]:
        """A paid (or free) chat response as events; it is closed at the end."""
        try:
            if payment is not None:
                yield Paid(payment, read_receipt(response.headers))
            content_type = response.headers.get("content-type", "")
            if "application/json" in content_type:
                # A router that ignores `stream: true` still gives a usable answer.
                completion = self._whole_answer(
                    await self._read_json(response, payment), model, payment
                )
                for event in _completion_events(completion):
                    yield event
                return
            if "text/event-stream" not in content_type:
                raise RouterError(
                    f"The router answered with {content_type or 'no content type'}, not a stream.",
                    payment=payment,
                )
            async for event in self._read_events(response, payment):
                yield event
        finally:
            await response.aclose()

    async def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        budgets: Iterable[Budget] = (),
        confirm: ConfirmPayment | None = None,
        on_signed: OnSigned | None = None,
    ) -> Completion:
        """Pay for one chat turn and return the whole answer."""
        body = _chat_body(messages, model, max_tokens, temperature, stream=False)
        response, payment = await self.open_chat(
            body, budgets=budgets, confirm=confirm, on_signed=on_signed
        )
        try:
            completion = self._whole_answer(
                await self._read_json(response, payment), model, payment
            )
        finally:
            await response.aclose()
        receipt = read_receipt(response.headers) if payment else None
        return replace(completion, payment=payment, receipt=receipt)

    # -- the payment handshake ---------------------------------------------------------------

    async def open_chat(
        self,
        body: dict[str, Any],
        *,
        budgets: Iterable[Budget] = (),
        confirm: ConfirmPayment | None = None,
        on_signed: OnSigned | None = None,
        funds: Funds | None = None,
    ) -> tuple[httpx.Response, SignedPayment | None]:
        """Draw the 402 for a chat request `body` (X-Router's fields only), pay it once, and
        return the paid response with its body unread (close it), and the payment made.
        `funds` (else the client's own) tells the wallet's balance for the check before
        signing."""
        first = await self._send(body, payment=None)
        if first.status_code != 402:
            if first.is_success:
                return first, None  # a router that does not charge
            await self._raise_for_status(first, payment=None)
        challenge = self._read_challenge(first.headers, await self._read_and_close(first))

        if self.account is None:
            raise NoWallet(
                "The router asks for payment and no wallet key is set up: store one with "
                '`xrouter-tui key import` or `key generate` (in the chat: "Set up wallet" in '
                "the command palette), or try --demo."
            )
        quote = self.policy.choose(challenge, budgets)
        await self._check_funds(quote, funds or self.funds)
        if confirm is not None and not await confirm(quote):
            raise PaymentDeclined(
                f"Payment of {format_usd(quote.amount_usd)} declined. Nothing was signed.",
                code="declined",
                amount_usd=quote.amount_usd,
            )
        payment = sign_payment(self.account, quote)
        if on_signed is not None:
            result = on_signed(payment, body)
            if inspect.isawaitable(result):
                await result

        paid = await self._send(body, payment=payment)
        if paid.status_code == 402:
            raise self._rejection(paid.headers, await self._read_and_close(paid), payment)
        if not paid.is_success:
            await self._raise_for_status(paid, payment=payment)
        return paid, payment

    async def _check_funds(self, quote: Quote, funds: Funds | None) -> None:
        """Refuse, before anything is signed or asked, a payment the wallet's balance is known
        not to cover. An unknown balance (no figure in time, a failed read) lets it go on: the
        router judges then, as it always does."""
        if funds is None or self.account is None:
            return
        payer = self.account.address
        try:
            balance = await funds(quote.network, payer)
        except Exception:  # a read of the chain must never cost the turn
            return
        if balance is not None and balance < quote.amount:
            raise not_enough_funds(quote, balance, payer)

    def _read_challenge(self, headers: httpx.Headers, body: bytes) -> PaymentChallenge:
        try:
            return parse_challenge(headers, body)
        except ChallengeError as exc:
            raise BadChallenge(
                f"The router asked for payment in a form that could not be read: {exc}. "
                "Nothing was signed."
            ) from None

    def _rejection(
        self, headers: httpx.Headers, body: bytes, payment: SignedPayment, *, resent: bool = False
    ) -> PaymentRejected:
        code: str | None = None
        # A receipt may come with the 402 (x402's settlement_pending carries the transaction).
        receipt = read_receipt(headers)
        try:
            code = parse_challenge(headers, body).error
        except ChallengeError:
            code = receipt.error_reason if receipt else _readable_error(body)
        sentence = explain_rejection(
            code, payer=payment.payer, network=payment.network, amount_usd=payment.amount_usd
        )
        transaction = valid_tx(receipt.transaction if receipt else None)
        if resent and code == NONCE_ALREADY_USED:
            # The same nonce went out before, and only a transfer uses a nonce: that one.
            return PaymentRejected(
                "The router says this payment was already used: the first request was charged "
                f"for it ({format_usd(payment.amount_usd)}), once; no answer comes for it "
                "again. It was not charged twice.",
                code=code,
                payment=payment,
                transaction=transaction,
                charged=True,
            )
        if code == "settlement_pending":
            on_chain = f" (tx {transaction})" if transaction else ""
            message = (
                f"The payment is on its way{on_chain}. {sentence} It counts against your "
                "budgets, and will not be resent."
            )
        else:
            message = f"The router refused the payment. {sentence}{could_still_settle(payment)}"
        return PaymentRejected(message, code=code, payment=payment, transaction=transaction)

    # -- reading answers ----------------------------------------------------------------------

    async def _read_events(
        self, response: httpx.Response, payment: SignedPayment | None
    ) -> AsyncIterator[ChatEvent]:
        """The SSE stream as events. Any ending but `[DONE]` or a finish reason is an
        interruption; so is a line or an answer past its limit (what came stays)."""
        parts: list[str] = []
        size = 0
        limit = self.limits.answer_bytes
        finish_reason: str | None = None
        skipped = 0
        done = False
        try:
            async for data in sse_data(
                response, line_limit=self.limits.line_bytes, idle=self.timeouts.idle
            ):
                if data == "[DONE]":
                    done = True
                    break
                chunk = read_chunk(data)
                if chunk is None:
                    skipped += 1  # one unreadable line must not cost the whole (paid) answer
                    continue
                if chunk.error:
                    raise StreamError(
                        f"The router reported an error mid-answer: {error_text(chunk.error)}."
                        + payment_note(payment),
                        payment=payment,
                        partial_text="".join(parts),
                    )
                finish_reason = chunk.finish_reason or finish_reason
                for piece in (chunk.reasoning, chunk.text):
                    if piece:
                        size += len(piece.encode("utf-8", "replace"))
                if size > limit:
                    raise _too_long(payment, "".join(parts), limit)
                if chunk.reasoning:
                    yield Reasoning(chunk.reasoning)
                if chunk.text:
                    parts.append(chunk.text)
                    yield Delta(chunk.text)
                if chunk.usage is not None:
                    yield chunk.usage
        except TooLarge as exc:
            raise AnswerTooLarge(
                f"A line of the router's stream is longer than {exc}: the answer was cut "
                f"there.{payment_note(payment)}",
                setting=exc.setting,
                payment=payment,
                partial_text="".join(parts),
            ) from None
        except StalledRead:
            raise ResponseTimeout(
                f"The router went quiet in the middle of the answer: no whole line for "
                f"{self.timeouts.idle:g} s.{payment_note(payment)}",
                phase="idle",
                payment=payment,
                partial_text="".join(parts),
            ) from None
        except httpx.TransportError as exc:
            raise answer_broke(exc, payment, "".join(parts)) from None
        if not done and finish_reason is None:
            raise StreamInterrupted(
                "The answer ended before the router said it was complete." + payment_note(payment),
                payment=payment,
                partial_text="".join(parts),
            )
        yield Done(finish_reason or "stop", skipped)

    async def read_answer_body(
        self, response: httpx.Response, payment: SignedPayment | None
    ) -> bytes:
        """A whole paid answer's body, read within max_document_bytes and the idle limit;
        past either, a RouterError that names it and what was paid."""
        try:
            return await read_document(
                response,
                limit=self.limits.document_bytes,
                idle=self.timeouts.idle,
                setting="max_document_bytes",
            )
        except TooLarge as exc:
            raise AnswerTooLarge(
                f"The router's answer is larger than {exc}; it was not read."
                + payment_note(payment),
                setting=exc.setting,
                payment=payment,
            ) from None
        except StalledRead:
            raise ResponseTimeout(
                f"The router's answer stopped coming: nothing arrived for "
                f"{self.timeouts.idle:g} s.{payment_note(payment)}",
                phase="idle",
                payment=payment,
            ) from None
        except httpx.TransportError as exc:
            raise answer_broke(exc, payment, "") from None

    async def _read_json(self, response: httpx.Response, payment: SignedPayment | None) -> Any:
        """A whole paid answer's JSON."""
        body = await self.read_answer_body(response, payment)
        try:
            return safe_json.loads(body)
        except ValueError:
            raise RouterError(
                f"The router's answer is not JSON.{payment_note(payment)}", payment=payment
            ) from None

    def _whole_answer(self, document: Any, model: str, payment: SignedPayment | None) -> Completion:
        completion = read_completion(document, model)
        limit = self.limits.answer_bytes
        if len(completion.text.encode("utf-8", "replace")) > limit:
            raise _too_long(payment, completion.text[:limit], limit)
        return completion

    async def _read_and_close(self, response: httpx.Response) -> bytes:
        """An error's (or a 402's) body: its first max_error_bytes, the rest left unread."""
        try:
            return await read_capped(
                response, limit=self.limits.error_bytes, idle=self.timeouts.idle
            )
        except httpx.TransportError:
            return b""
        finally:
            await response.aclose()

    # -- HTTP plumbing ---------------------------------------------------------------------

    async def _send(self, body: dict[str, Any], *, payment: SignedPayment | None) -> httpx.Response:
        headers = {"Accept": "text/event-stream" if body.get("stream") else "application/json"}
        if payment is not None:
            headers[payment.header_name] = payment.header_value
        request = self._http.build_request("POST", _CHAT_PATH, json=body, headers=headers)
        response = await self._open(request, payment=payment)
        # The read timeout guarded the wait for the first byte; from here on it is the idle gap
        # between reads. httpcore takes the body's read timeout from this very dict when the
        # body is first read (tests/test_client_faults.py checks that the switch takes effect).
        timeout = request.extensions.get("timeout")
        if isinstance(timeout, dict):
            timeout["read"] = self.timeouts.idle
        return response

    async def _request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A free endpoint's JSON document, read within max_document_bytes."""
        response = await self._open(self._http.build_request(method, path, **kwargs), payment=None)
        if not response.is_success:
            await self._raise_for_status(response, payment=None)
        host = response.url.netloc.decode("ascii", "replace")
        try:
            body = await read_document(
                response,
                limit=self.limits.document_bytes,
                idle=self.timeouts.idle,
                setting="max_document_bytes",
            )
        except TooLarge as exc:
            raise AnswerTooLarge(
                f"The router's answer to {path} is larger than {exc}; it was not read.",
                setting=exc.setting,
            ) from None
        except StalledRead:
            raise ResponseTimeout(
                f"The router's answer to {path} stopped coming: nothing arrived from {host} "
                f"for {self.timeouts.idle:g} s.",
                phase="idle",
            ) from None
        except httpx.TransportError as exc:
            raise RouterUnreachable(
                f"The connection to {host} broke while it answered {path}: {_reason(exc)}."
            ) from None
        finally:
            await response.aclose()
        try:
            return safe_json.loads(body)
        except ValueError:
            raise RouterError(f"The router's answer to {path} is not JSON.") from None

    async def _open(
        self, request: httpx.Request, *, payment: SignedPayment | None
    ) -> httpx.Response:
        """Send and wait for the headers, turning transport failures into plain words."""
        host = request.url.netloc.decode("ascii", "replace")
        after = payment_note(payment, accepted=False)
        # Without a connection the signed payment never left this process: it cannot settle.
        unsent = " The signed payment was never sent, so nothing was charged." if payment else ""
        try:
            # The headers must all be in by then, however slowly they drip: httpx's own read
            # timeout starts again with every byte.
            async with asyncio.timeout(self.timeouts.first_byte):
                return await self._http.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise NeverSent(
                f"Could not connect to {host} within {self.timeouts.connect:g} s.{unsent}",
                payment=payment,
            ) from None
        except httpx.ConnectError as exc:
            raise NeverSent(
                f"Could not connect to {host}: {_reason(exc)}.{unsent}", payment=payment
            ) from None
        except httpx.WriteTimeout:
            raise ResponseTimeout(
                f"{host} stopped taking the request: nothing more of it could be sent for "
                f"{self.timeouts.connect:g} s.{after}",
                phase="write",
                payment=payment,
            ) from None
        except (httpx.TimeoutException, TimeoutError):
            raise ResponseTimeout(
                f"No answer from {host} within {self.timeouts.first_byte:g} s.{after}",
                phase="first_byte",
                payment=payment,
            ) from None
        except httpx.TransportError as exc:
            raise RouterUnreachable(
                f"The connection to {host} broke before it answered: {_reason(exc)}.{after}",
                payment=payment,
            ) from None

    async def _raise_for_status(
        self, response: httpx.Response, *, payment: SignedPayment | None
    ) -> None:
        body = await self._read_and_close(response)
        status = response.status_code
        detail = _readable_error(body) or response.reason_phrase or "no details"
        retry_after = _retry_after(response.headers.get("retry-after"))
        message = f"The router answered {status} {response.reason_phrase}: {detail}"
        if status == 429:
            wait = f" in {retry_after:g} s" if retry_after is not None else " later"
            message = f"The router is limiting requests ({detail}); try again{wait}"
        raise RouterHTTPError(
            message.rstrip(".") + "." + payment_note(payment, accepted=False),
            status=status,
            retry_after=retry_after,
            payment=payment,
        )


def not_enough_funds(quote: Quote, balance: int, payer: str) -> PaymentRefused:
    """The refusal of a payment above the wallet's balance: one sentence with the balance, the
    amount and the address to fund."""
    held = atomic_to_usd(balance, quote.asset.decimals)
    where = quote.network.label
    return PaymentRefused(
        f"Not enough USDC: the wallet holds {format_usd(held)} on {where} and the router asks "
        f"{format_usd(quote.amount_usd)} for this request; send USDC on {where} to {payer} to "
        "pay for it. Nothing was signed.",
        code="insufficient_funds",
        amount_usd=quote.amount_usd,
        limit_usd=held,
        room_usd=held,
    )


def http_client(
    timeouts: Timeouts,
    *,
    base_url: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    """The HTTP client the program talks to a router or an RPC endpoint with: its timeouts
    (the read timeout waits for the first byte; readers then watch the gaps), its name."""
    t = timeouts
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(
            connect=t.connect, read=t.first_byte, write=t.connect, pool=t.connect
        ),
        headers={"User-Agent": f"xrouter-tui/{__version__}"},
        transport=transport,
        follow_redirects=follow_redirects,
    )


def _too_long(payment: SignedPayment | None, partial_text: str, limit: int) -> AnswerTooLarge:
    return AnswerTooLarge(
        f"The answer is longer than max_answer_bytes ({limit:,} bytes): the rest was not "
        f"read.{payment_note(payment)}",
        setting="max_answer_bytes",
        payment=payment,
        partial_text=partial_text,
    )


def answer_broke(
    exc: httpx.TransportError, payment: SignedPayment | None, partial_text: str
) -> RouterError:
    """The error for a paid answer cut off while its body was being read (or passed on)."""
    if isinstance(exc, httpx.TimeoutException):
        return ResponseTimeout(
            "The router went quiet in the middle of the answer." + payment_note(payment),
            phase="idle",
            payment=payment,
            partial_text=partial_text,
        )
    return StreamInterrupted(
        f"The connection broke in the middle of the answer: {_reason(exc)}."
        + payment_note(payment),
        payment=payment,
        partial_text=partial_text,
    )


def _chat_body(
    messages: Sequence[Mapping[str, str]],
    model: str,
    max_tokens: int | None,
    temperature: float | None,
    *,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    # Only the fields X-Router documents: it validates the body before quoting a price, and an
    # unknown field (such as OpenAI's stream_options) could cost every request a 400.
    body["stream"] = stream
    return body


def _completion_events(completion: Completion) -> list[ChatEvent]:
    events: list[ChatEvent] = []
    if completion.reasoning:
        events.append(Reasoning(completion.reasoning))
    if completion.text:
        events.append(Delta(completion.text))
    if completion.usage:
        events.append(completion.usage)
    events.append(Done(completion.finish_reason or "stop"))
    return events


def _readable_error(body: bytes) -> str:
    """The most readable message in an error body: JSON's error/message, else its first line."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        document = safe_json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("error", "message", "detail"):
            if document.get(key):
                return error_text(document[key])
    if text.lstrip().startswith("<"):
        return ""  # an HTML error page says nothing the status does not
    return one_line(text.splitlines()[0], _ERROR_BODY_LIMIT)


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare enough to just say "later"
    return seconds if seconds is not None and seconds >= 0 else None


def _reason(exc: Exception) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__
