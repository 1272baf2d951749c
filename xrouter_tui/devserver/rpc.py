"""The local chain's JSON-RPC on the dev server's own port: `POST /rpc`, answered as an
Ethereum node answers (JSON-RPC 2.0, hex quantities, batches), so a client reads it as it
reads Base's public endpoint. The chain loads on the first call, in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xrouter_tui import safe_json
from xrouter_tui.devserver.state import DevServerConfig, DevServerState

if TYPE_CHECKING:
    from xrouter_tui.devserver.chain import LocalChain

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "rpc_endpoint"]

MAX_BODY_BYTES = 1024 * 1024
# Public endpoints cap batches too (Base's at 100 or fewer).
MAX_BATCH = 100


def rpc_endpoint(
    config: DevServerConfig, state: DevServerState
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint serving `state`'s chain while `config.chain` is on."""

    async def rpc(request: Request) -> Response:
        if not config.chain:
            return JSONResponse(
                _error(None, -32601, "this router runs no chain (start it with --chain)"), 404
            )
        body = await _body(request)
        if body is None:
            return JSONResponse(_error(None, -32600, "request too large"), 413)
        try:
            document = safe_json.loads(body)
        except ValueError:
            return JSONResponse(_error(None, -32700, "parse error"))
        chain = await asyncio.to_thread(state.local_chain, config)
        if isinstance(document, list):
            if not document:
                return JSONResponse(_error(None, -32600, "empty batch"))
            if len(document) > MAX_BATCH:
                return JSONResponse(
                    _error(None, -32600, f"batch of more than {MAX_BATCH} requests")
                )
            answers = await asyncio.to_thread(lambda: [_answer(chain, item) for item in document])
            return JSONResponse(answers)
        return JSONResponse(await asyncio.to_thread(_answer, chain, document))

    return rpc


def _answer(chain: LocalChain, call: Any) -> dict[str, Any]:
    # Imported with the chain, which is loaded by now.
    from xrouter_tui.devserver.chain import RpcError

    if not isinstance(call, dict) or call.get("jsonrpc") != "2.0":
        return _error(None, -32600, "invalid request")
    ident = call.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int | str)):
        return _error(None, -32600, "invalid request: id must be a number or a string")
    method, params = call.get("method"), call.get("params", [])
    if not isinstance(method, str):
        return _error(ident, -32600, "invalid request: no method")
    if not isinstance(params, list):
        return _error(ident, -32602, "invalid params: by position only")
    try:
        result = chain.rpc(method, params)
    except RpcError as exc:
        return {"jsonrpc": "2.0", "id": ident, "error": exc.as_json()}
    except Exception as exc:  # the EVM's own failures: an answer, never a dropped request
        return _error(ident, -32603, f"internal error: {type(exc).__name__}")
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}


async def _body(request: Request) -> bytes | None:
    """The request body, or None past MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
