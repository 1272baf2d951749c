"""The wallet key in a real Secret Service: GNOME Keyring on a private D-Bus session.

The other tests give the program a keyring of their own (tests/keyring_backend.py). These run
the real program against the real thing a Linux user has: `gnome-keyring-daemon`, unlocked with
a test password, serving the Secret Service on a session bus that `dbus-run-session` starts for
each command and takes down after it. The keyring's files live in the test's own HOME, so the
developer's keyring is never read or written, and the key surviving from one command to the
next proves it was kept on disk by the keyring, not in some process's memory.

A machine without `dbus-run-session` or `gnome-keyring-daemon` skips these tests, unless
XROUTER_REQUIRE_REAL_KEYRING=1 (CI sets it after installing them): there it is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from eth_account import Account

from tests.keyring_backend import FILE_VARIABLE, LOCKED_VARIABLE
from xrouter_tui.devserver import DevServerConfig, RunningDevServer, start_dev_server

REQUIRE_VARIABLE = "XROUTER_REQUIRE_REAL_KEYRING"
# keyring's own switch: with it, a broken Secret Service is an error, never a quiet fallback
# to whatever other backend keyring finds.
SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"
# The program's keyring service (xrouter_tui/wallet.py), as the Secret Service's "service"
# attribute that keyring's backend gives every item.
SERVICE = "xrouter-tui"
# A fixed, well-known test key: it must never be printed or written anywhere but the keyring.
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
# A safety net against a hung daemon or bus, never a measurement: slow machines just take longer.
TIMEOUT = 120

# Run by `dbus-run-session` as `python -c LAUNCHER gnome-keyring-daemon COMMAND...`: starts the
# keyring on the new session bus, waits until it serves the Secret Service, then becomes
# COMMAND (which inherits stdin, so a key piped to the test's process reaches it untouched).
#
# `gnome-keyring-daemon` forks and its first process exits *before* the daemon has taken its
# name on the bus, so without the wait the command would race it (and a Secret Service call
# that lost the race would set off D-Bus activation of another `gnome-keyring-daemon --start`).
# Listening for the name before starting the daemon, then asking whether it is already owned,
# misses no case.
#
# `--unlock` creates the "login" keyring with the password on first use, as the default
# collection where keyring's backend puts items, and unlocks it on later ones. The password must
# not be empty: with an empty one no login keyring is made, and keyring's backend then fails
# to create a collection ("Prompt dismissed": there is no one to prompt).
_LAUNCHER = """\
import os
import subprocess
import sys

from jeepney import MatchRule, message_bus
from jeepney.io.blocking import Proxy, open_dbus_connection

NAME = "org.freedesktop.secrets"
daemon, command = sys.argv[1], sys.argv[2:]
with open_dbus_connection("SESSION") as connection:
    bus = Proxy(message_bus, connection)
    rule = MatchRule(
        type="signal",
        sender=message_bus.bus_name,
        interface=message_bus.interface,
        member="NameOwnerChanged",
        path=message_bus.object_path,
    )
    rule.add_arg_condition(0, NAME)
    bus.AddMatch(rule)
    with connection.filter(rule) as owner_changes:
        started = subprocess.run(
            [daemon, "--unlock", "--components=secrets"],
            input=b"xrouter-tui test keyring",
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        if started.returncode != 0:
            sys.exit(f"launcher: gnome-keyring-daemon exited {started.returncode}")
        if not bus.NameHasOwner(NAME)[0]:
            try:
                connection.recv_until_filtered(owner_changes, timeout=60)
            except TimeoutError:
                sys.exit(f"launcher: gnome-keyring-daemon never took {NAME} on the bus")
os.execvp(command[0], command)
"""

# Counts the Secret Service items of a service, without ever printing a secret.
_COUNT_ITEMS = """\
import sys

import secretstorage

with secretstorage.dbus_init() as bus:
    collection = secretstorage.get_default_collection(bus)
    print(len(list(collection.search_items({"service": sys.argv[1]}))))
"""

# Proves the harness itself: keyring's Secret Service backend stores, reads and deletes.
_PROBE = """\
import keyring

backend = keyring.get_keyring()
print(f"{type(backend).__module__}.{type(backend).__name__}")
keyring.set_password("xrouter-tui-probe", "user", "probe-secret")
print(keyring.get_password("xrouter-tui-probe", "user"))
keyring.delete_password("xrouter-tui-probe", "user")
print(keyring.get_password("xrouter-tui-probe", "user"))
"""


def _required_program(name: str) -> str:
    """The path of `name`; a skip when missing, or a failure where CI demands the real keyring."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not installed (apt-get install gnome-keyring dbus)")
    return path


def _missing(message: str) -> NoReturn:
    # CI installs the packages and sets this: there, a missing piece is a broken machine.
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{message}, and {REQUIRE_VARIABLE}=1")
    pytest.skip(message)


@dataclass
class SecretService:
    """Runs commands each in a fresh D-Bus session with the test's unlocked GNOME Keyring."""

    dbus_run_session: str
    keyring_daemon: str
    env: dict[str, str]
    # Everything every command printed, for the check that the key appears in none of it.
    results: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def run(self, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [
            self.dbus_run_session,
            "--",
            sys.executable,
            "-c",
            _LAUNCHER,
            self.keyring_daemon,
            *command,
        ]
        # A process group of its own (the bus, the daemon and the command stay in it), so that
        # on a timeout they all go together rather than linger holding the test's pipes.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(stdin, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"{command} did not end within {TIMEOUT} s:\n{stdout}\n{stderr}")
        # `args` is the command the session ran, for messages.
        result = subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)
        self.results.append(result)
        return result

    def program(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The real `xrouter-tui` with `args`."""
        return self.run(sys.executable, "-m", "xrouter_tui", *args, stdin=stdin)

    def items(self, service: str) -> int:
        """How many items of `service` the Secret Service holds."""
        result = self.run(sys.executable, "-c", _COUNT_ITEMS, service)
        assert result.returncode == 0, result.stderr
        return int(result.stdout)


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[SecretService]:
    dbus_run_session = _required_program("dbus-run-session")
    keyring_daemon = _required_program("gnome-keyring-daemon")
    if importlib.util.find_spec("jeepney") is None:
        _missing("jeepney (keyring's D-Bus library on Linux) is not installed")
    home = tmp_path / "home"
    home.mkdir()
    # The daemon's control socket goes in XDG_RUNTIME_DIR/keyring/control, and a Unix socket's
    # path may not pass 107 bytes: under pytest's long tmp_path the bind fails and the daemon
    # never serves. A short folder of its own in /tmp keeps well under.
    runtime = Path(tempfile.mkdtemp(prefix="xrkr-", dir="/tmp" if Path("/tmp").is_dir() else None))
    env = {
        name: value
        for name, value in os.environ.items()
        # No key from the environment (the keyring must be the only source), no test keyring
        # file, and nothing that leads to the developer's own bus or keyring.
        if name
        not in (
            "XROUTER_PRIVATE_KEY",
            FILE_VARIABLE,
            LOCKED_VARIABLE,
            "DBUS_SESSION_BUS_ADDRESS",
            "GNOME_KEYRING_CONTROL",
        )
    }
    env.update(
        {
            # conftest's autouse fixture points this at the test backend: override it.
            "PYTHON_KEYRING_BACKEND": SECRET_SERVICE_BACKEND,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(runtime),
            "XROUTER_CONFIG_DIR": str(tmp_path / "config"),
            "XROUTER_DATA_DIR": str(tmp_path / "data"),
        }
    )
    try:
        yield SecretService(dbus_run_session, keyring_daemon, env)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def router() -> Iterator[RunningDevServer]:
    # Mainnet's name, as X-Router uses: the default policy allows it. Nothing settles locally.
    with start_dev_server(DevServerConfig(network="base")) as server:
        yield server


def test_keyring_library_stores_reads_and_deletes_in_the_private_secret_service(
    secret_service: SecretService,
) -> None:
    result = secret_service.run(sys.executable, "-c", _PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [SECRET_SERVICE_BACKEND, "probe-secret", "None"]


def test_key_import_show_ask_and_delete_with_the_key_only_in_the_real_keyring(
    secret_service: SecretService, router: RunningDevServer, tmp_path: Path
) -> None:
    address = Account.from_key(KEY).address

    imported = secret_service.program("key", "import", stdin=KEY + "\n")
    assert imported.returncode == 0, imported.stderr
    assert address in imported.stdout
    assert secret_service.items(SERVICE) == 1

    # A new session and a new daemon: the key is read back from the keyring's file on disk.
    shown = secret_service.program("key", "show")
    assert shown.returncode == 0, shown.stderr
    assert address in shown.stdout

    asked = secret_service.program("ask", "--base-url", router.url, "hello")
    assert asked.returncode == 0, asked.stderr
    assert "hello" in asked.stdout
    assert [payment.payer for payment in router.state.payments] == [address]

    deleted = secret_service.program("key", "delete", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert secret_service.items(SERVICE) == 0

    keyless = secret_service.program("ask", "--base-url", router.url, "hello")
    assert keyless.returncode == 2, keyless.stderr
    assert "xrouter-tui key import" in keyless.stderr
    assert "key generate" in keyless.stderr
    assert len(router.state.payments) == 1

    # The key, in any spelling, went into the keyring and nowhere else: no output (not even
    # key import's) and no file the program or the keyring's session wrote, other than the
    # keyring's own encrypted store.
    bare = KEY.removeprefix("0x").lower()
    for result in secret_service.results:
        assert bare not in (result.stdout + result.stderr).lower(), result.args
    store = Path(secret_service.env["XDG_DATA_HOME"]) / "keyrings"
    assert any(store.iterdir()), "the keyring kept nothing on disk"
    folders = (tmp_path, Path(secret_service.env["XDG_RUNTIME_DIR"]))
    for path in (path for folder in folders for path in folder.rglob("*")):
        if path.is_file() and not path.is_relative_to(store):
            content = path.read_bytes()
            assert bare.encode() not in content.lower(), path
            assert bytes.fromhex(bare) not in content, path
