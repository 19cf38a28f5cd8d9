"""Engines, transactions and error translation for the store.

Store stage of DESIGN.md. This is the only module that knows driver
exceptions: everything leaving it is an ``oracle.errors.StoreError``.

* ``create_engine(url)`` builds an async engine for ``postgresql+asyncpg://``
  or ``sqlite+aiosqlite://``: for Postgres with ``pool_pre_ping`` (stale
  connections after a server restart are replaced before use), a connect
  timeout and ``database.password`` / ``database.password_file`` put into the
  URL only there, at connect time (``connect_url``); for SQLite:
  foreign keys on, WAL, a busy timeout and explicit ``BEGIN`` so DDL and
  read-modify-write sequences are really transactional.
* ``Database.transaction(fn)`` runs ``fn(session)`` as one transaction. When
  the connection drops (Postgres restarted, network blip, SQLite busy) the
  whole transaction is retried with capped exponential backoff for up to
  ``write_retry_s``; because every repository write is an idempotent upsert,
  a retry after an ambiguous commit cannot write anything twice. When the
  budget is spent the error is raised as ``StoreUnavailable`` -- a write is
  never dropped silently.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from oracle.config import DatabaseConfig, read_secret, redact_url
from oracle.errors import (
    InputError,
    OracleError,
    SchemaOutdated,
    StoreConflict,
    StoreError,
    StoreUnavailable,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

SUPPORTED_SCHEMES = ("postgresql+asyncpg", "sqlite+aiosqlite")
#: SQLSTATE classes/codes that mean "the connection or server went away; try again".
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "55P03")
_TRANSIENT_SQLITE_MESSAGES = ("database is locked", "database is busy", "disk i/o error")
_BACKOFF_START_S = 0.05


def _driver_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the database failed" (some drivers raise theirs unwrapped while
    connecting, e.g. asyncpg's CannotConnectNowError while the server starts up)."""
    errors: list[type[BaseException]] = [exc.SQLAlchemyError, OSError, TimeoutError, sqlite3.Error]
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    else:
        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(errors)


DRIVER_ERRORS = _driver_errors()
_READ_ONLY_OPTION = "oracle_read_only"
_BACKOFF_MAX_S = 2.0


def validate_url(url: str) -> str:
    """Reject URLs the store cannot use, with a message naming the (redacted) URL."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise InputError(f"not a database URL: {redact_url(url)!r}") from error
    if parsed.drivername not in SUPPORTED_SCHEMES:
        raise InputError(
            f"database URL must start with postgresql+asyncpg:// or sqlite+aiosqlite://, "
            f"got {redact_url(url)!r}"
        )
    return url


def create_engine(url: str, config: DatabaseConfig | None = None) -> AsyncEngine:
    """An async engine for ``url`` configured for the oracle (see module docstring)."""
    validate_url(url)
    config = config or DatabaseConfig(url=url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        # No pre-ping: a file database has no server that can restart under us, and each
        # extra statement costs a thread hand-off in aiosqlite.
        engine = _create_async_engine(
            url,
            connect_args={"timeout": max(config.connect_timeout_s, 1.0)},
        )
        _configure_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
        return engine
    return _create_async_engine(
        connect_url(url, config),
        pool_pre_ping=True,
        pool_size=config.pool_size,
        max_overflow=config.pool_size,
        pool_timeout=max(config.connect_timeout_s, 1.0),
        connect_args={"timeout": config.connect_timeout_s, "command_timeout": 60},
    )


def connect_url(url: str, config: DatabaseConfig) -> URL:
    """``url`` with ``config.password`` (or the content of ``password_file``) as its password
    when it has none of its own: the one place a database password meets the URL.

    Only the engine gets this URL, and SQLAlchemy masks its password whenever it prints
    one; ``Database.url``, logs and errors keep the URL as configured, without it.
    """
    parsed = make_url(url)
    password = read_secret(config.password, config.password_file, "database.password_file")
    if not password or parsed.password is not None:
        return parsed
    return parsed.set(password=password.reveal())


def _configure_sqlite(engine: AsyncEngine, *, in_memory: bool) -> None:
    busy_ms = 30_000

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writes take the write lock up front (IMMEDIATE): no deadlock when a read turns
        # into a write. Reads begin deferred, so under WAL they never wait for a writer.
        if connection.get_execution_options().get(_READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _walk(error: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (DBAPI orig, driver exception, causes)."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        item = stack.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        stack.extend(
            [
                getattr(item, "orig", None),
                getattr(item, "driver_exception", None),
                item.__cause__,
                item.__context__,
            ]
        )
    return seen


def _sqlstate(error: BaseException) -> str:
    for item in _walk(error):
        code = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return ""


def is_transient(error: BaseException) -> bool:
    """True when retrying the same transaction later may succeed."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.IntegrityError):
        return False
    state = _sqlstate(error)
    if state and state.startswith(_TRANSIENT_SQLSTATES):
        return True
    for item in _walk(error):
        if isinstance(item, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
            return True
        if isinstance(item, OSError) and not isinstance(item, FileNotFoundError):
            return True
        name = type(item).__name__
        if name in {
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "AdminShutdownError",
            "CrashShutdownError",
            "ConnectionFailureError",
            "ClientCannotConnectError",
        }:
            return True
        message = str(item).lower()
        if "connection is closed" in message or "connection was closed" in message:
            return True
        if any(text in message for text in _TRANSIENT_SQLITE_MESSAGES):
            return True
    return isinstance(error, exc.DisconnectionError)


def translate(error: BaseException, url: str) -> StoreError:
    """Map a driver/SQLAlchemy exception to the oracle's StoreError tree."""
    where = redact_url(url)
    if isinstance(error, StoreError):
        return error
    if isinstance(error, exc.IntegrityError):
        details = [getattr(item, "detail", None) for item in _walk(error)]
        detail = next((d for d in details if isinstance(d, str) and d), "")
        suffix = f" ({detail})" if detail else ""
        return StoreConflict(f"constraint violated in {where}: {_first_line(error)}{suffix}")
    message = _first_line(error)
    if _sqlstate(error) == "42P01" or "no such table" in message.lower():
        return SchemaOutdated(
            f"database {where} has no or an old schema ({message}); run `bme-oracle db upgrade`"
        )
    return StoreUnavailable(f"database {where} unavailable: {message}")


def _first_line(error: BaseException) -> str:
    for item in _walk(error):
        if not isinstance(item, exc.StatementError):
            text = str(item).strip().splitlines()
            if text:
                return f"{type(item).__name__}: {text[0]}"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class Database:
    """An engine, a session factory and the retrying transaction runner."""

    def __init__(self, engine: AsyncEngine, *, url: str, write_retry_s: float = 30.0) -> None:
        self.engine = engine
        self.url = url
        self.write_retry_s = write_retry_s
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        # Single-statement reads skip BEGIN/COMMIT round trips on Postgres (one statement
        # is its own consistent snapshot); on SQLite they begin deferred (see above).
        read_options = (
            {"isolation_level": "AUTOCOMMIT"}
            if engine.dialect.name == "postgresql"
            else {_READ_ONLY_OPTION: True}
        )
        self.read_sessions = async_sessionmaker(
            engine.execution_options(**read_options), expire_on_commit=False, autoflush=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def transaction(
        self, fn: Callable[[AsyncSession], Awaitable[T]], *, what: str, single_read: bool = False
    ) -> T:
        """Run ``fn`` in one transaction, retrying transient failures within ``write_retry_s``.

        ``fn`` must be idempotent: it may run again after a commit whose
        acknowledgement was lost. Deliberate ``OracleError``s from ``fn`` pass
        through untouched; anything else becomes a ``StoreError``.
        ``single_read=True`` is for ``fn`` that only reads, with one statement.
        """
        sessions = self.read_sessions if single_read else self.sessions
        deadline = time.monotonic() + self.write_retry_s
        delay = _BACKOFF_START_S
        attempt = 0
        while True:
            attempt += 1
            try:
                async with sessions() as session, session.begin():
                    result = await fn(session)
                if attempt > 1:
                    log.info("store_recovered", what=what, attempts=attempt)
                return result
            except OracleError:
                raise
            except DRIVER_ERRORS as error:
                if not is_transient(error) or time.monotonic() + delay > deadline:
                    if is_transient(error):
                        log.error(
                            "store_retry_exhausted",
                            what=what,
                            attempts=attempt,
                            error=_first_line(error),
                            url=redact_url(self.url),
                        )
                    raise translate(error, self.url) from error
                if attempt == 1:
                    log.warning(
                        "store_transient_error",
                        what=what,
                        error=_first_line(error),
                        url=redact_url(self.url),
                    )
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, _BACKOFF_MAX_S)

    async def dispose(self) -> None:
        await self.engine.dispose()
