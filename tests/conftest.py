"""Shared pytest configuration. Real services are provided by plugins in tests/fixtures/."""

from __future__ import annotations

import pathlib

import pytest

import oracle.logs

# In-process CLI runs (``oracle.cli.main``) configure structlog; with cached loggers, a
# later test's ``structlog.testing.capture_logs`` would see nothing from those modules.
oracle.logs.CACHE_LOGGERS = False

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

#: Each fixture module owns one real service (started by the project's own scripts).
pytest_plugins = [
    name
    for name in (
        "tests.fixtures.postgres",
        "tests.fixtures.bitcoind",
        "tests.fixtures.anvil",
        "tests.fixtures.restreplay",
    )
    if (ROOT / (name.replace(".", "/") + ".py")).exists()
]


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    return DATA
