"""A JSON-RPC endpoint on 127.0.0.1 whose answers a test writes: a node that tells the truth, or
one that sends what no node should (a body too big, nesting past any stack, a drip, bad hex)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An answer: a JSON-RPC result (wrapped in the envelope), or a raw reply the test shapes itself.
Answer = Callable[[dict[str, Any]], Any]


@dataclass
class Raw:
    """A reply as bytes: `pieces` sent one after the other, `pause` seconds apart."""

    pieces: list[bytes]
    status: int = 200
    pause: float = 0.0


@dataclass
class FakeNode:
    """What the endpoint answers, method by method (`answers`), and every call it was sent."""

    chain_id: int = 8453
    answers: dict[str, Answer] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, request: dict[str, Any]) -> Any:
        self.calls.append(request)
        method = request.get("method")
        if method in self.answers:
            return self.answers[method](request)
        if method == "eth_chainId":
            return hex(self.chain_id)
        return Raw(
            [
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": request.get("id"),
                        "error": {"code": -32601, "message": f"no {method} here"},
                    }
                ).encode()
            ]
        )

    def methods(self) -> list[str]:
        return [call.get("method", "") for call in self.calls]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length))
        reply = self.server.node.answer(request)
        if not isinstance(reply, Raw):
            body = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": reply})
            reply = Raw([body.encode()])
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(sum(len(p) for p in reply.pieces)))
        self.end_headers()
        try:
            for piece in reply.pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                if reply.pause:
                    time.sleep(reply.pause)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    node: FakeNode


@contextmanager
def fake_node(node: FakeNode | None = None) -> Iterator[FakeNode]:
    """Serve `node` on a free loopback port for the block; its `url` says where."""
    node = node or FakeNode()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.node = node
    node.url = f"http://127.0.0.1:{server.server_address[1]}/v2/secret-api-key"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        server.shutdown()
        server.server_close()


def envelope(request: dict[str, Any], result: Any) -> Raw:
    """A well-formed reply carrying `result`, as a raw reply (to be sent slowly, or twice)."""
    return Raw([json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": result}).encode()])


def word(number: int) -> str:
    return "0x" + number.to_bytes(32, "big").hex()


def topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower()[2:]
