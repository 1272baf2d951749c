"""Every test gets its own config and data folders, and none sees the developer's key or router."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XROUTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("XROUTER_DATA_DIR", str(tmp_path / "data"))
    for name in ("XROUTER_PRIVATE_KEY", "XROUTER_BASE_URL", "XROUTER_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
