"""The local router in a process of its own, for the benchmarks: so it takes neither the
measured program's event loop nor its GIL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_router(*options: str) -> Iterator[str]:
    """Run `xrouter-tui demo-server` on a free port with `options`; yield its address."""
    command = [sys.executable, "-m", "xrouter_tui", "demo-server", "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield next(word for word in line.split() if word.startswith("http://127.0.0.1:"))
    finally:
        process.terminate()
        process.wait(timeout=10)
