"""Programmatic Alembic: upgrade, downgrade and inspect the schema of a database URL.

Store stage of DESIGN.md. The migration scripts ship inside the package
(``oracle/store/migrations``; the top-level ``migrations/`` is a link to it), so
``bme-oracle db upgrade`` works from any directory and from a regular,
non-editable install. Alembic is driven on one async connection taken from
``oracle.store.session.create_engine``, which ``migrations/env.py`` picks up
from ``config.attributes["connection"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from oracle.config import DatabaseConfig
from oracle.errors import InputError, OracleError, SchemaOutdated, StoreError
from oracle.store.session import DRIVER_ERRORS, create_engine, translate

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> AlembicConfig:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision the code expects (the single head of the migration scripts)."""
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _run(
    url: str, fn: Callable[[Connection], str | None], config: DatabaseConfig | None
) -> str | None:
    """Run ``fn(sync_connection)`` inside one transaction on ``url``; errors become StoreErrors.
    ``config`` supplies the connection settings (timeouts, ``password_file``)."""
    engine = create_engine(url, config)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(fn)
    except OracleError:
        raise
    except CommandError as error:
        raise InputError(str(error)) from error
    except DRIVER_ERRORS as error:
        raise translate(error, url) from error
    finally:
        await engine.dispose()


def _command(url: str, name: str, revision: str) -> Callable[[Connection], str | None]:
    def run(connection: Connection) -> str | None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        getattr(command, name)(config, revision)
        return current_revision_of(connection)

    return run


async def upgrade(
    url: str, revision: str = "head", *, config: DatabaseConfig | None = None
) -> str | None:
    """Upgrade the schema at ``url`` to ``revision``; returns the revision now current."""
    return await _run(url, _command(url, "upgrade", revision), config)


async def downgrade(url: str, revision: str, *, config: DatabaseConfig | None = None) -> str | None:
    """Downgrade the schema at ``url`` to ``revision`` (``base`` = empty); returns the new one."""
    if not revision:
        raise InputError("downgrade needs a revision (a revision id, 'base' or '-1')")
    return await _run(url, _command(url, "downgrade", revision), config)


async def current(url: str, *, config: DatabaseConfig | None = None) -> str | None:
    """The revision the database at ``url`` is at, or None for an empty database."""
    return await _run(url, current_revision_of, config)


def check_revision(revision: str | None, url: str) -> None:
    """Raise SchemaOutdated unless ``revision`` is the code's head revision."""
    from oracle.config import redact_url

    head = head_revision()
    if revision == head:
        return
    where = redact_url(url)
    if revision is None:
        raise SchemaOutdated(f"database {where} has no schema; run `bme-oracle db upgrade`")
    known = {script.revision for script in script_directory().walk_revisions()}
    if revision not in known:
        raise SchemaOutdated(
            f"database {where} is at revision {revision}, unknown to this bme-oracle "
            f"(newer code migrated it?); upgrade bme-oracle, or run `bme-oracle db downgrade` "
            "with the newer version"
        )
    raise SchemaOutdated(
        f"database {where} is at revision {revision}, code needs {head}; "
        "run `bme-oracle db upgrade`"
    )
