"""JSON-RPC 2.0 over HTTP POST to an Ethereum node, within a size limit and deadlines.

An RPC endpoint is as untrusted as a router: its answer is read within max_document_bytes and an
idle deadline that measures progress (`api.reading`), the whole call within a deadline of its
own, and parsed with `safe_json`. Whatever goes wrong is a `ChainError` with one line that names
the endpoint by its host only: an RPC URL often carries an API key in its path.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Self

import httpx

from xrouter_tui import safe_json
from xrouter_tui.api.client import http_client
from xrouter_tui.api.reading import Limits, StalledRead, Timeouts, TooLarge, read_document
from xrouter_tui.safe_text import one_line

__all__ = ["RPC_TIMEOUTS", "ChainError", "JsonRpc", "rpc_host"]

# A chain read is small and quick or it is not coming: far shorter than an answer's waits.
RPC_TIMEOUTS = Timeouts(connect=5.0, first_byte=10.0, idle=10.0)


class ChainError(Exception):
    """A read of the chain failed; the message is one line for the user."""


def rpc_host(url: str) -> str:
    """The host (and port) of an RPC URL: what messages may show of it."""
    try:
        return httpx.URL(url).netloc.decode("ascii", "replace") or "the RPC endpoint"
    except (httpx.InvalidURL, TypeError):
        return "the RPC endpoint"


class JsonRpc:
    """One endpoint's JSON-RPC. Use it with `async with`, or `aclose()` it."""

    def __init__(
        self,
        url: str,
        *,
        timeouts: Timeouts = RPC_TIMEOUTS,
        limits: Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.host = rpc_host(url)
        self.timeouts = timeouts
        self.limits = limits or Limits()
        # The whole call, however its bytes come: connecting, the headers, then the body.
        self.deadline = timeouts.connect + timeouts.first_byte + timeouts.idle
        self._ids = itertools.count(1)
        self._http = http_client(timeouts, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, params: list[Any]) -> Any:
        """The `result` of one call; ChainError for anything but a well-formed answer."""
        try:
            async with asyncio.timeout(self.deadline):
                return await self._call(method, params)
        except TimeoutError:
            raise ChainError(
                f"The chain's RPC at {self.host} did not answer {method} within "
                f"{self.deadline:g} s."
            ) from None

    async def _call(self, method: str, params: list[Any]) -> Any:
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        where = f"The chain's RPC at {self.host}"
        try:
            request = self._http.build_request("POST", self.url, json=body)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ChainError(
                f"The RPC URL for {self.host} cannot be used: {self._reason(exc)}."
            ) from None
        try:
            async with asyncio.timeout(self.timeouts.first_byte):
                response = await self._http.send(request, stream=True)
        except (httpx.TimeoutException, TimeoutError):
            raise ChainError(
                f"{where} did not answer {method} within {self.timeouts.first_byte:g} s."
            ) from None
        except httpx.TransportError as exc:
            raise ChainError(f"{where} could not be reached: {self._reason(exc)}.") from None
        try:
            if not response.is_success:
                raise ChainError(
                    f"{where} answered {response.status_code} {response.reason_phrase} to {method}."
                )
            raw = await read_document(
                response,
                limit=self.limits.document_bytes,
                idle=self.timeouts.idle,
                setting="max_document_bytes",
            )
        except TooLarge as exc:
            raise ChainError(f"{where} sent more than {exc} for {method}.") from None
        except StalledRead:
            raise ChainError(
                f"{where} stopped sending its answer to {method}: nothing for "
                f"{self.timeouts.idle:g} s."
            ) from None
        except httpx.TransportError as exc:
            raise ChainError(
                f"{where} broke off its answer to {method}: {self._reason(exc)}."
            ) from None
        finally:
            await response.aclose()
        try:
            document = safe_json.loads(raw)
        except ValueError as exc:
            raise ChainError(
                f"{where} answered {method} with something not JSON ({exc})."
            ) from None
        if not isinstance(document, dict) or document.get("id") != request_id:
            raise ChainError(f"{where} answered {method} with something else than its answer.")
        error = document.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            text = one_line(message if isinstance(message, str) else "no message", 200)
            raise ChainError(f"{where} refused {method}: {text}.")
        if "result" not in document:
            raise ChainError(f"{where} answered {method} without a result.")
        return document["result"]

    def _reason(self, exc: Exception) -> str:
        """What went wrong, without the URL (its path may hold an API key)."""
        text = str(exc).replace(self.url, self.host).strip().rstrip(".")
        return one_line(text, 200) or type(exc).__name__
