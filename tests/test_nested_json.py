"""JSON nested 100,000 deep is one plain error, never a crash (exit 139).

Importing eth-account can raise the interpreter's recursion limit to 100,000 (py_ecc, where the
versions installed bring it in), which lets the C JSON parser run off the stack: every parse of
outside JSON goes through `safe_json`, which takes the limit back down. The process is the
subject here: a crash would take pytest with it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

DEEP = 100_000

PROGRAM = textwrap.dedent(
    f"""
    import sys
    # Everything the program imports, and eth-account, which the local router imports.
    import eth_account
    import xrouter_tui.cli, xrouter_tui.ui, xrouter_tui.proxy.app, xrouter_tui.devserver
    # What py_ecc does when eth-account brings it in (whether it does depends on the versions
    # installed): the worst case, set here so that it is always the case tested.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))

    from xrouter_tui import safe_json
    from xrouter_tui.api import read_chunk
    from xrouter_tui.payments import ChallengeError, parse_challenge
    from xrouter_tui.proxy.wire import ProxyError, read_request

    deep = "[" * {DEEP} + "]" * {DEEP}
    for text in (deep, "[" * {DEEP}, '{{"a":' * {DEEP}):
        try:
            safe_json.loads(text)
        except ValueError as exc:
            print("safe_json:", exc)
        assert read_chunk(text) is None
        try:
            parse_challenge({{}}, text.encode())
        except ChallengeError as exc:
            print("challenge:", exc)
        try:
            read_request(text.encode(), model="m", max_tokens=10, temperature=None)
        except ProxyError as exc:
            print("proxy:", exc.status)
    print("survived")
    """
)


def test_nested_json_is_a_plain_error_in_every_parser_after_the_signer_is_imported():
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "survived"
    assert lines.count("safe_json: the JSON document is nested too deeply") == 3
    assert sum(line.startswith("challenge:") for line in lines) == 3
    assert lines.count("proxy: 400") == 3
