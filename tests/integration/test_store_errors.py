"""Typed, clear store errors: unreachable database, vanished database, constraint violations.

Why: an operator must see which database (password redacted) failed and why,
and a write that cannot be stored must be reported, never dropped silently.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.config import DatabaseConfig
from oracle.errors import StoreConflict, StoreUnavailable
from oracle.store import migrate
from oracle.store.models import Publication
from oracle.store.repository import Repository, open_repository
from oracle.store.types import utcnow
from tests.fixtures.postgres import create_database, drop_database, sqlalchemy_url
from tests.integration.test_store_data import retarget_headers


async def test_unreachable_postgres_is_store_unavailable_with_redacted_url() -> None:
    url = "postgresql+asyncpg://oracle:s3cret@127.0.0.1:1/oracle"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await open_repository(
            url, DatabaseConfig(url=url, write_retry_s=0.5, connect_timeout_s=1.0)
        )
    message = str(caught.value)
    assert "oracle:***@127.0.0.1:1/oracle" in message and "s3cret" not in message
    assert time.monotonic() - started < 10


async def test_sqlite_in_a_missing_directory_is_store_unavailable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.sqlite'}"
    with pytest.raises(StoreUnavailable, match="unable to open database file"):
        await open_repository(url, DatabaseConfig(url=url, write_retry_s=0.2))


@pytest.mark.postgres
async def test_write_to_a_vanished_database_is_reported() -> None:
    name = await create_database()
    url = sqlalchemy_url(name)
    await migrate.upgrade(url)
    repository = await open_repository(url, DatabaseConfig(url=url, write_retry_s=1.0))
    try:
        await repository.record_agreed_many("mainnet", [retarget_headers()[1].agreed()])
        await drop_database(name)
        with pytest.raises(StoreUnavailable, match=name):
            await repository.record_agreed_many("mainnet", [retarget_headers()[2].agreed()])
    finally:
        await repository.close()
        await drop_database(name)


async def test_constraint_violation_is_store_conflict(repository: Repository) -> None:
    row = {
        "network": "mainnet",
        "epoch": 1,
        "block_hash_hex": "00" * 32,
        "chain_id": 1,
        "contract_address": "0x" + "ab" * 20,
        "tx_hash": "0x" + "01" * 32,
        "published_at": utcnow(),
    }

    async def insert_twice(session: AsyncSession) -> None:
        await session.execute(insert(Publication), [row])
        await session.execute(insert(Publication), [row])

    with pytest.raises(StoreConflict, match="publications"):
        await repository.database.transaction(insert_twice, what="test")
    # the failed transaction left nothing behind
    assert await repository.get_retarget("mainnet", 1) is None
