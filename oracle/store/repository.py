"""The async repository: the only way the rest of the oracle reads and writes the store.

Store stage of DESIGN.md (crosscheck -> **store** -> index -> publish). Every
public method is one transaction (retried on a dropped connection, see
``oracle.store.session``); every write is an idempotent upsert, so repeating a
pipeline step after a crash is harmless. Methods take and return plain typed
values (``oracle.store.records``), never ORM rows.

Sections (one module each): retargets and observations (``retargets``), index
values and disagreements (``indices``), submissions (``submissions``), health
samples and attestations (``health``), and the one read the API snapshot is built
from (``bulk``).

Usage::

    repo = await open_repository(url)          # checks the schema is at head
    try:
        await repo.record_observations("mainnet", [...])
    finally:
        await repo.close()
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.config import DatabaseConfig, redact_url
from oracle.store import migrate
from oracle.store.bulk import BulkMixin
from oracle.store.health import HealthMixin
from oracle.store.indices import IndicesMixin
from oracle.store.retargets import RetargetsMixin
from oracle.store.session import Database, create_engine
from oracle.store.submissions import SubmissionsMixin

__all__ = ["Repository", "open_repository"]


class Repository(RetargetsMixin, IndicesMixin, SubmissionsMixin, HealthMixin, BulkMixin):
    """All store operations on one database (see the section modules for each method)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)

    @property
    def url(self) -> str:
        """The database URL with any password redacted (for logs and errors)."""
        return redact_url(self._db.url)

    @property
    def database(self) -> Database:
        return self._db

    async def ping(self) -> None:
        """Round-trip to the database; StoreUnavailable if it cannot be reached in time."""

        async def read(session: AsyncSession) -> None:
            await session.execute(text("SELECT 1"))

        await self._read1("ping", read)

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None when it has no schema)."""

        async def read(session: AsyncSession) -> str | None:
            connection = await session.connection()
            return await connection.run_sync(migrate.current_revision_of)

        return await self._tx("schema_revision", read)

    async def check_schema(self) -> None:
        """Raise SchemaOutdated (telling the operator to run ``bme-oracle db upgrade``) unless
        the database is at the code's head revision."""
        revision = await self.schema_revision()
        migrate.check_revision(revision, self._db.url)

    async def close(self) -> None:
        """Dispose of the engine and its connections."""
        await self._db.dispose()


async def open_repository(
    url: str, config: DatabaseConfig | None = None, *, check_schema: bool = True
) -> Repository:
    """A repository on ``url``; by default verifies the schema is at head first.

    ``config`` supplies pool size, connect timeout and the write retry budget
    (``write_retry_s``); its ``url`` is ignored in favour of ``url``.
    """
    config = config or DatabaseConfig(url=url)
    repository = Repository(
        Database(create_engine(url, config), url=url, write_retry_s=config.write_retry_s)
    )
    if check_schema:
        try:
            await repository.check_schema()
        except BaseException:
            await repository.close()
            raise
    return repository
