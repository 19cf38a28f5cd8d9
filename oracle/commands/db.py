"""``bme-oracle db upgrade|downgrade|current``: manage the store's schema with Alembic.

The database is ``--db URL`` if given, else the configuration (``--config FILE``
and ``ORACLE_DATABASE__URL``), else the embedded SQLite default. The migration
scripts ship inside the package, so these commands work from any directory and
from a regular install.

A database that cannot be reached yet (a Postgres still starting beside the oracle)
is waited for as ``run`` waits for it: the store's own retry, with backoff for up to
``database.write_retry_s`` (30 s by default), each retry logged; then exit 69.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from oracle.commands.output import add_json_flag, emit
from oracle.config import DatabaseConfig, database_url, load, redact_url
from oracle.logs import setup_logging
from oracle.store import migrate
from oracle.store.repository import open_repository
from oracle.store.session import validate_url


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema: upgrade, downgrade, current")
    commands = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    commands.required = True

    p = commands.add_parser("upgrade", help="migrate the schema up (default: to the latest)")
    p.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    _add_common(p)
    p.set_defaults(handler=cmd_upgrade)

    p = commands.add_parser("downgrade", help="migrate the schema down to REV ('base' = empty)")
    p.add_argument("revision", metavar="REV", help="target revision, 'base' or a relative '-1'")
    _add_common(p)
    p.set_defaults(handler=cmd_downgrade)

    p = commands.add_parser("current", help="show the schema revision of the database")
    _add_common(p)
    p.set_defaults(handler=cmd_current)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", help="database URL (wins over --config and ORACLE_DATABASE__URL)"
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    add_json_flag(parser)


def _url(args: argparse.Namespace) -> tuple[str, DatabaseConfig | None]:
    """The URL and, unless ``--db`` gave a complete URL, the ``[database]`` settings
    (``password_file`` among them). Logging (the retries) goes to stderr."""
    if args.db:
        setup_logging(fmt="console", level="info")
        return validate_url(args.db), None
    config = load(args.config)
    setup_logging(fmt=config.logging.format, level=config.logging.level)
    return validate_url(database_url(config, None)), config.database


async def _reachable(url: str, config: DatabaseConfig | None) -> None:
    """Wait for the database as ``run`` does: the repository's retrying ``ping``."""
    repository = await open_repository(url, config, check_schema=False)
    try:
        await repository.ping()
    finally:
        await repository.close()


def _ensure_sqlite_directory(url: str) -> None:
    """A fresh SQLite file needs its directory; create it so `db upgrade` works first time."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _payload(url: str, before: str | None, after: str | None) -> dict[str, Any]:
    head = migrate.head_revision()
    return {
        "url": redact_url(url),
        "from": before,
        "to": after,
        "head": head,
        "up_to_date": after == head,
    }


def cmd_upgrade(args: argparse.Namespace) -> int:
    url, config = _url(args)
    _ensure_sqlite_directory(url)

    async def run() -> dict[str, Any]:
        await _reachable(url, config)
        before = await migrate.current(url, config=config)
        return _payload(url, before, await migrate.upgrade(url, args.revision, config=config))

    result = asyncio.run(run())
    emit(
        args,
        result,
        f"{result['url']}: upgraded {result['from'] or 'empty'} -> {result['to']}"
        + (" (head)" if result["up_to_date"] else ""),
    )
    return 0


def cmd_downgrade(args: argparse.Namespace) -> int:
    url, config = _url(args)

    async def run() -> dict[str, Any]:
        await _reachable(url, config)
        before = await migrate.current(url, config=config)
        return _payload(url, before, await migrate.downgrade(url, args.revision, config=config))

    result = asyncio.run(run())
    emit(
        args,
        result,
        f"{result['url']}: downgraded {result['from'] or 'empty'} -> "
        f"{result['to'] or 'empty (base)'}",
    )
    return 0


def cmd_current(args: argparse.Namespace) -> int:
    url, config = _url(args)

    async def run() -> str | None:
        await _reachable(url, config)
        return await migrate.current(url, config=config)

    current = asyncio.run(run())
    head = migrate.head_revision()
    payload = {
        "url": redact_url(url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    state = "up to date" if current == head else "behind: run `bme-oracle db upgrade`"
    emit(args, payload, f"{payload['url']}: {current or 'empty'} (head {head}, {state})")
    return 0
