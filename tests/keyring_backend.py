"""Keyring backends for tests, so that no test reads or writes the developer's own keyring.

`MemoryKeyring` serves tests in this process. The real program, started by a test, finds
`FileKeyring` through keyring's own `PYTHON_KEYRING_BACKEND`: a JSON file in the test's folder,
named by `XROUTER_TEST_KEYRING_FILE`. Both are for tests only: the program itself refuses any
backend that keeps secrets in a plain file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError

FILE_VARIABLE = "XROUTER_TEST_KEYRING_FILE"
# Set to "1" to make the file keyring behave as a locked Secret Service does.
LOCKED_VARIABLE = "XROUTER_TEST_KEYRING_LOCKED"


class MemoryKeyring(KeyringBackend):
    """Secrets in a dict, for the life of one test."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}
        self.locked = False

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        if self.secrets.pop((service, username), None) is None:
            raise PasswordDeleteError("no such secret")

    def _check(self) -> None:
        if self.locked:
            raise KeyringLocked("the collection is locked")


class FileKeyring(KeyringBackend):
    """Secrets in the JSON file that `XROUTER_TEST_KEYRING_FILE` names."""

    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ[FILE_VARIABLE])

    def _load(self) -> dict[str, str]:
        if os.environ.get(LOCKED_VARIABLE) == "1":
            raise KeyringLocked("the collection is locked")
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        secrets = self._load()
        secrets[f"{service}/{username}"] = password
        self.path.write_text(json.dumps(secrets))

    def delete_password(self, service: str, username: str) -> None:
        secrets = self._load()
        if secrets.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("no such secret")
        self.path.write_text(json.dumps(secrets))


class PlaintextKeyring(FileKeyring):
    """A stand-in for keyrings.alt's plain-file keyring, which the program must refuse."""
