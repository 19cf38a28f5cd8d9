"""Alembic environment for bme-oracle (Postgres and SQLite, async drivers).

Used two ways:

* by ``oracle.store.migrate`` (``bme-oracle db ...``), which passes an open
  connection in ``config.attributes["connection"]``;
* by the plain ``alembic`` command (``alembic -c alembic.ini upgrade head`` /
  ``alembic check``), which gets the URL from ``sqlalchemy.url`` or, failing
  that, from oracle.config (``ORACLE_DATABASE__URL`` / ``ORACLE_CONFIG``).

On Postgres each run sets lock and statement timeouts and holds an advisory
lock, so two deploys migrating at once run one after the other. On SQLite,
``render_as_batch`` makes ALTERs work through table copies.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from oracle.config import DatabaseConfig
from oracle.store.models import Base

#: pg_advisory_xact_lock key: "bmeorcl" in ASCII, any constant unique to this app would do.
ADVISORY_LOCK_KEY = 0x626D656F72636C
config = context.config
target_metadata = Base.metadata


def _target() -> tuple[str, DatabaseConfig | None]:
    """The URL, and the ``[database]`` settings when it came from oracle.config."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url, None
    from oracle import config as oracle_config

    path = os.environ.get("ORACLE_CONFIG") or None
    loaded = oracle_config.load(path)
    return oracle_config.database_url(loaded, None), loaded.database


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL lock_timeout = '15s'")
            connection.exec_driver_sql("SET LOCAL statement_timeout = '300s'")
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
        context.run_migrations()


async def _run_async(url: str, database: DatabaseConfig | None) -> None:
    from oracle.store.session import create_engine

    engine = create_engine(url, database)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
    elif context.is_offline_mode():
        context.configure(url=_target()[0], target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_async(*_target()))


main()
