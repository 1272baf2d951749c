"""Every test gets its own config and data folders and its own keyring, and none sees the
developer's key, keyring or router."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest

from tests.keyring_backend import FILE_VARIABLE, MemoryKeyring

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XROUTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("XROUTER_DATA_DIR", str(tmp_path / "data"))
    for name in ("XROUTER_PRIVATE_KEY", "XROUTER_BASE_URL", "XROUTER_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    # The program, when a test starts it, keeps its key in a file of the test's own.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.FileKeyring")
    monkeypatch.setenv(FILE_VARIABLE, str(tmp_path / "keyring.json"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # The chain is read from loopback only: nothing listens on port 9 (discard), so a test that
    # names no local chain reads no balance, and never Base's public endpoint.
    monkeypatch.setenv("XROUTER_RPC_URL", "http://127.0.0.1:9/")
    return tmp_path


@pytest.fixture(autouse=True)
def memory_keyring():
    """The keyring of code running in the test's own process."""
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)
