"""Peak memory of the real program against a hostile router's oversized answers; prints figures,
asserts nothing.

    python benchmarks/bench_hostile.py [--huge-mb 400]

Each case runs `xrouter-tui` as a process of its own against the local router in another
(`demo-server --fault NAME --huge-bytes N`), and reads the process's peak resident memory
(`ru_maxrss` from wait4; for the proxy, VmHWM from /proc). The router sends `--huge-mb` MB in
pieces: a line with no end, an answer of valid chunks, one JSON answer, a model list, an error
body. Goal: every case <= 150 MB, and the program ends with one line naming the setting it hit.
Before the limits (the issue's figures, on the same machine): 1.5 GB, 3.7 GB, 3.1 GB, 1.2 GB,
and the proxy kept 1.6 GB.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from local_router import local_router  # beside this file

PROGRAM = str(Path(sys.executable).with_name("xrouter-tui"))
GOAL_MB = 150
TOKEN = "bench-hostile-token"
# (fault, command, what the issue measured before the limits, in MB)
CASES = (
    ("endless-line", "ask", 1500),
    ("huge-answer", "ask", None),
    ("huge-json-answer", "ask", 3700),
    ("huge-models", "models", 3100),
    ("huge-error", "ask", 1200),
)


def environment(folder: str) -> dict[str, str]:
    env = {
        **os.environ,
        "XROUTER_CONFIG_DIR": os.path.join(folder, "config"),
        "XROUTER_DATA_DIR": os.path.join(folder, "data"),
        # A throwaway key: the local router settles nothing.
        "XROUTER_PRIVATE_KEY": secrets.token_hex(32),
    }
    env.pop("XROUTER_BASE_URL", None)
    return env


def run_case(fault: str, command: str, huge: int) -> tuple[float, float, int, str]:
    """Peak RSS in MB, seconds, exit code and the last stderr line of one run."""
    with (
        local_router("--fault", fault, "--huge-bytes", str(huge)) as url,
        tempfile.TemporaryDirectory() as folder,
    ):
        argv = [PROGRAM, command, "--base-url", url]
        if command == "ask":
            argv.append("hello")
        start = time.perf_counter()
        process = subprocess.Popen(
            argv,
            env=environment(folder),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        err = process.stderr.read().decode("utf-8", "replace")
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        return usage.ru_maxrss / 1024, seconds, process.returncode, last


def proxy_case(huge: int) -> tuple[float, float, str]:
    """The proxy's peak RSS (MB) after passing on an endless line, its RSS afterwards, and what
    its client got."""
    with (
        local_router("--fault", "endless-line", "--huge-bytes", str(huge)) as url,
        tempfile.TemporaryDirectory() as folder,
    ):
        process = subprocess.Popen(
            [PROGRAM, "proxy", "--port", "0", "--token", TOKEN, "--base-url", url],
            env=environment(folder),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            base = ""
            for line in process.stdout:
                if line.strip().startswith("OPENAI_BASE_URL="):
                    base = line.strip().split("=", 1)[1]
                    break
            body = {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": "hello"}],
                "stream": True,
            }
            got = 0
            with (
                httpx.Client(timeout=120) as client,
                client.stream(
                    "POST",
                    f"{base}/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as response,
            ):
                for piece in response.iter_bytes():
                    got += len(piece)
            status = Path(f"/proc/{process.pid}/status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            peak = int(fields["VmHWM"].split()[0]) / 1024
            now = int(fields["VmRSS"].split()[0]) / 1024
            return peak, now, f"HTTP {response.status_code}, {got:,} bytes passed on"
        finally:
            process.terminate()
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--huge-mb", type=int, default=400, help="MB the router sends (400)")
    args = parser.parse_args()
    huge = args.huge_mb * 1_000_000
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; router sends {huge:,} B")
    bare = subprocess.Popen([PROGRAM, "--version"], stdout=subprocess.DEVNULL)
    _, _, usage = os.wait4(bare.pid, 0)
    bare.returncode = 0
    print(f"reference: `xrouter-tui --version` peaks at {usage.ru_maxrss / 1024:.0f} MB")
    print(f"{'case':<26}{'peak RSS':>10}{'goal':>8}{'before':>9}{'time':>8}  exit  message")
    for fault, command, before in CASES:
        peak, seconds, code, last = run_case(fault, command, huge)
        shown_before = f"{before:,}" if before else "-"
        print(
            f"{command + ' ' + fault:<26}{peak:>7.0f} MB{GOAL_MB:>5} MB{shown_before:>6} MB"
            f"{seconds:>7.1f}s  {code:>4}  {last[:90]}"
        )
    peak, now, got = proxy_case(huge)
    print(
        f"{'proxy endless-line':<26}{peak:>7.0f} MB{GOAL_MB:>5} MB{1600:>6} MB"
        f"  (after: {now:.0f} MB)  {got}"
    )


if __name__ == "__main__":
    main()
