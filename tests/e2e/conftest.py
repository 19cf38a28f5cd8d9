"""Fixtures for end-to-end tests: a private, migrated Postgres database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from oracle.store import migrate
from tests.fixtures.postgres import create_database, drop_database, sqlalchemy_url


@pytest_asyncio.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh Postgres database at the head revision (`bme-oracle db upgrade`'s code path)."""
    name = await create_database()
    url = sqlalchemy_url(name)
    try:
        await migrate.upgrade(url)
        yield url
    finally:
        await drop_database(name)
