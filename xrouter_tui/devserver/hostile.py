"""What a hostile router sends: terminal escape sequences, receipts that break headers and
spreadsheets, JSON nested past any stack, and bodies too big to hold, made a piece at a time.
Tests assert on these constants, so what the server sends and what they look for are one thing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from xrouter_tui.devserver.catalog import Model
from xrouter_tui.devserver.reply import Reply

__all__ = [
    "BEL",
    "C1_CSI",
    "C1_OSC",
    "CLEAR_SCREEN",
    "DANGEROUS_MARKERS",
    "DRIP_COUNT",
    "FILLER_MARKER",
    "FORMULA_TRANSACTION",
    "HOSTILE_DELTAS",
    "HOSTILE_MODEL_ID",
    "HOSTILE_TEXT",
    "NESTED_DEPTH",
    "NESTED_HEADER_DEPTH",
    "OSC_CLIPBOARD",
    "OSC_LINK",
    "OSC_TITLE",
    "PIECE_BYTES",
    "RAW_TRANSPORT",
    "SAFE_WORD",
    "SPLIT_SEQUENCE",
    "dripped_head",
    "dripped_line",
    "endless_line",
    "escaped_models",
    "escaped_reply",
    "filler",
    "hostile_transaction",
    "markers_in",
    "nested_header",
    "nested_json",
    "padded_json",
]

OSC_TITLE = "\x1b]0;pwned\x07"
# OSC 52 writes the clipboard: a user who pastes afterwards runs this.
OSC_CLIPBOARD = "\x1b]52;c;" + base64.b64encode(b"rm -rf ~").decode("ascii") + "\x07"
OSC_LINK = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"
CLEAR_SCREEN = "\x1b[2J"
# The 8-bit forms (U+009B CSI, U+009D OSC ... U+009C ST), which some terminals obey in UTF-8.
C1_CSI = "\x9b2J"
C1_OSC = "\x9d0;pwned\x9c"
BEL = "\x07"
# One window-title sequence cut across two deltas: a filter that looks at each piece alone
# passes both halves.
SPLIT_SEQUENCE = ("\x1b]0;spl", "it\x07")
# Readable words around the sequences, so a test can see the text still shows once cleaned.
SAFE_WORD = "safe"

HOSTILE_DELTAS: tuple[str, ...] = (
    f"{SAFE_WORD} ",
    OSC_TITLE,
    OSC_CLIPBOARD,
    OSC_LINK,
    " ",
    CLEAR_SCREEN,
    C1_CSI,
    C1_OSC,
    BEL,
    " words ",
    *SPLIT_SEQUENCE,
    f" {SAFE_WORD}\n\n",
)
HOSTILE_TEXT = "".join(HOSTILE_DELTAS)
HOSTILE_MODEL_ID = f"hostile/{SAFE_WORD}-model{OSC_TITLE}{OSC_CLIPBOARD}{CLEAR_SCREEN}{C1_CSI}"

# What no text shown on a terminal may contain: ESC, BEL and the C1 introducers (CSI, OSC, ST,
# DCS, SOS, PM, APC), as characters; `markers_in` finds them in decoded text or UTF-8 bytes.
DANGEROUS_MARKERS: tuple[str, ...] = (
    "\x1b",
    "\x07",
    "\x9b",
    "\x9d",
    "\x9c",
    "\x90",
    "\x98",
    "\x9e",
    "\x9f",
)

FORMULA_TRANSACTION = '=HYPERLINK("http://evil.example","click")'

# Deep enough to overflow the C parser's stack under py_ecc's recursion limit of 100,000.
NESTED_DEPTH = 100_000
# A header cannot carry that: httpx (httpcore) refuses a response head over 100 KiB. 75,000
# unclosed brackets are 100,000 characters of base64 and still overflow the stack.
NESTED_HEADER_DEPTH = 75_000

# Huge bodies are made and sent in pieces of this size, so the server never holds one whole.
PIECE_BYTES = 64 * 1024
_FILLER_LINE = "The router goes on and on, and this answer has no end in sight. "

# The drip-* faults send this many head lines or stream bytes, one every drip_seconds, then
# drop the connection: long past any client's deadline, yet a drip left alone does end.
DRIP_COUNT = 1000
# Where the dev server's HTTP protocol puts the connection's asyncio transport, in each
# request's scope["extensions"]: ASGI sends a response head whole, a drip needs the socket.
RAW_TRANSPORT = "xrouter.devserver.transport"


def markers_in(output: str | bytes) -> list[str]:
    """The dangerous characters in `output` (UTF-8 bytes are decoded first), in marker order."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    return [marker for marker in DANGEROUS_MARKERS if marker in text]


def escaped_reply(reply: Reply) -> Reply:
    """The reply with the hostile deltas first in both its reasoning and its content."""
    return Reply(content=HOSTILE_DELTAS + reply.content, reasoning=HOSTILE_DELTAS + reply.reasoning)


def escaped_models(models: Sequence[Model]) -> tuple[Model, ...]:
    """The catalog with escapes after every name and description, and a model whose id has them."""
    listed = tuple(
        dataclasses.replace(
            model,
            name=f"{model.name} {HOSTILE_TEXT}",
            description=f"{model.description} {HOSTILE_TEXT}",
        )
        for model in models
    )
    extra = dataclasses.replace(
        models[0], id=HOSTILE_MODEL_ID, name=HOSTILE_TEXT, description=HOSTILE_TEXT
    )
    return (*listed, extra)


def hostile_transaction(fault: str, transaction: str) -> str:
    """The receipt's `transaction` a receipt fault sends instead of the real `transaction`."""
    if fault == "escape-receipt":
        return transaction + HOSTILE_TEXT
    if fault == "receipt-newline":
        # Header injection, if a client copies it into a header of its own.
        return transaction + "\r\nX-Injected: yes\x00"
    if fault == "receipt-u2028":
        return transaction + "\u2028injected"
    if fault == "formula-receipt":
        return FORMULA_TRANSACTION
    raise ValueError(f"not a receipt fault: {fault}")


def nested_json(depth: int = NESTED_DEPTH) -> bytes:
    """A valid JSON document of arrays nested `depth` deep."""
    return b"[" * depth + b"]" * depth


def nested_header(depth: int = NESTED_HEADER_DEPTH) -> str:
    """Base64 of `depth` open brackets: a header value whose JSON nests as deep as fits."""
    return base64.b64encode(b"[" * depth).decode("ascii")


def filler(size: int, piece: int = PIECE_BYTES) -> Iterator[str]:
    """`size` characters of plain ASCII prose (one byte each), in pieces of `piece` at most."""
    block = (_FILLER_LINE * (piece // len(_FILLER_LINE) + 1))[:piece]
    whole, rest = divmod(size, piece)
    for _ in range(whole):
        yield block
    if rest:
        yield block[:rest]


# A string no real document holds: `padded_json` puts the filler where it stands.
FILLER_MARKER = "\x00xrouter-devserver-filler\x00"


def padded_json(document: Any, size: int, *, whole: bool) -> Iterator[bytes]:
    """`document` as JSON bytes, with the one string equal to `FILLER_MARKER` replaced by
    filler: `size` characters of it, or (`whole`) as many as make the whole body `size` bytes.
    Made a piece at a time, so a body of any size costs one piece of memory.
    """
    head, marker, tail = json.dumps(document, separators=(",", ":")).partition(
        json.dumps(FILLER_MARKER)
    )
    if not marker:
        raise ValueError("the document holds no filler marker")
    before, after = (head + '"').encode(), ('"' + tail).encode()
    length = max(0, size - len(before) - len(after)) if whole else size
    yield before
    for piece in filler(length):
        yield piece.encode("ascii")
    yield after


def endless_line(size: int) -> Iterator[bytes]:
    """An SSE line that never ends: `data: `, then `size` bytes of filler and no line end."""
    yield b"data: "
    for piece in filler(size):
        yield piece.encode("ascii")


def dripped_head(headers: Mapping[str, str], lines: int = DRIP_COUNT) -> Iterator[bytes]:
    """A 200 response head, one line per item, that never reaches the blank line ending it:
    the status line, `headers`, then made-up headers up to `lines` lines in all.
    """
    yield b"HTTP/1.1 200 OK\r\n"
    head = [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
    yield from head[: lines - 1]
    for number in range(1 + len(head), lines):
        yield f"X-Drip-{number}: {SAFE_WORD}\r\n".encode("ascii")


def dripped_line(length: int = DRIP_COUNT) -> bytes:
    """The first `length` bytes of an SSE data line that has no end, to send a byte at a time."""
    return (b"data: " + "".join(filler(length)).encode("ascii"))[:length]
