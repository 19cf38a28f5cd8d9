"""Fixtures for end-to-end tests: a migrated Postgres database per test, daemon configs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.fixtures.postgres import _Templates, create_database, drop_database, sqlalchemy_url


@pytest_asyncio.fixture
async def pg_url(_store_templates: _Templates) -> AsyncIterator[str]:
    """A private Postgres database at the head revision."""
    name = await create_database(template=await _store_templates.postgres_template())
    try:
        yield sqlalchemy_url(name)
    finally:
        await drop_database(name)
