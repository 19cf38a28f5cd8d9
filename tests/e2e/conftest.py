"""Fixtures for end-to-end tests: a private, migrated Postgres database per test."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import pytest
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


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect reference cycles when each end-to-end test ends.

    Why: these tests start and stop whole services (SIGTERM, cancellation, crashes), and
    what such a stop leaves in reference cycles (event loops, tasks, drivers' connections)
    is otherwise collected at a random later moment, inside whichever test then allocates
    enough: a ResourceWarning there blames an unrelated test (CI saw asyncpg's "unclosed
    connection" surface in test_evm_side). Collected here, a leak fails the test that
    caused it, in its teardown.
    """
    yield
    gc.collect()
