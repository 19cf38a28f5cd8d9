"""One daemon per database: the lock ``bme-oracle run`` holds for as long as it runs.

Two daemons on one database would both drive the same submissions (two senders racing
for one epoch, fee bumps fighting each other). ``acquire_database_lock`` is the first
thing ``run`` does, before it builds anything; a second ``run`` on the same database is
refused with ``DaemonAlreadyRunning``, naming the database (password scrubbed) and the
holder. Other commands (``db``, ``replay``, ``publish``, the API tests) take no lock.

* **Postgres**: ``pg_try_advisory_lock(ADVISORY_KEY)`` on a dedicated connection (not
  from the pool) held for the process lifetime; the connection's ``application_name``
  names the holder (host, pid), which the refusal quotes from ``pg_stat_activity``.
  The server releases the lock when the connection ends, so a killed daemon never
  leaves it behind. A watch task pings the connection every ``CHECK_INTERVAL_S``; when
  it died (Postgres restarted) it reconnects and takes the lock again. If another
  daemon took it meanwhile, ``on_lost`` is called: the service stops and exits
  non-zero. Advisory locks are per database, so one server can host many oracles.
* **SQLite**: ``fcntl.flock`` on ``<database file>.lock`` next to the database, held
  open for the process lifetime; the kernel drops it when the process ends (even on
  SIGKILL). The file holds the holder's pid and host for the refusal message and is
  never deleted (deleting lock files races). An in-memory database takes no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy.engine import URL, make_url

from oracle.config import DatabaseConfig, redact_url
from oracle.errors import ConfigError, DaemonAlreadyRunning
from oracle.store.session import DRIVER_ERRORS, connect_url, is_transient, translate

log = structlog.get_logger(__name__)

#: The Postgres advisory lock key of ``bme-oracle run``: sha256("bme-oracle run")[:8], signed.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"bme-oracle run").digest()[:8], "big", signed=True)
#: How often the Postgres lock connection is checked (and re-taken after a server restart).
CHECK_INTERVAL_S = 10.0
_HOLDER_QUERY = """
SELECT a.application_name, a.client_addr::text, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
"""

#: Called (once) when the lock was lost to another daemon after a database restart.
OnLost = Callable[[DaemonAlreadyRunning], None]


class DatabaseLock(Protocol):
    """What ``run`` holds; ``release`` is idempotent."""

    async def release(self) -> None: ...


def holder_label(token: str) -> str:
    """``<host> pid <pid>`` plus a token unique to this process (max 63 characters)."""
    return f"bme-oracle {token} {socket.gethostname()[:30]} pid {os.getpid()}"[:63]


def _refusal(url: str, holder: str) -> DaemonAlreadyRunning:
    return DaemonAlreadyRunning(
        f"another bme-oracle daemon already runs on database {redact_url(url)} ({holder}); "
        "one daemon per database: stop it first, or give this one its own database"
    )


async def acquire_database_lock(
    url: str,
    config: DatabaseConfig | None = None,
    *,
    on_lost: OnLost | None = None,
    check_interval_s: float = CHECK_INTERVAL_S,
) -> DatabaseLock:
    """Take the lock of the database at ``url``; ``DaemonAlreadyRunning`` if another holds
    it, ``StoreUnavailable`` if the database cannot be reached within ``write_retry_s``."""
    config = config or DatabaseConfig(url=url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return _NoLock()
        return FileLock.acquire(Path(database + ".lock"), what=f"database {redact_url(url)}")
    lock = PostgresLock(url, config, on_lost=on_lost, check_interval_s=check_interval_s)
    await lock.acquire()
    return lock


class _NoLock:
    async def release(self) -> None:
        return None


class FileLock:
    """An exclusive ``flock`` on a file, held until ``release`` or the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, *, what: str) -> FileLock:
        """Lock ``path`` (created if missing); ``DaemonAlreadyRunning`` naming ``what`` and the
        holder when another process (or another lock in this one) holds it."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the lock file {path} of {what}: {exc.strerror} (its directory "
                "must be writable: the database's, or $XDG_RUNTIME_DIR for a sender key)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DaemonAlreadyRunning(
                f"another bme-oracle daemon already holds {what} (lock file {path}"
                f"{', ' + holder if holder else ''}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
        return cls(path, fd)

    async def release(self) -> None:
        self.release_sync()

    def release_sync(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


#: The connection arguments of a URL that ``asyncpg.connect`` takes (the URL may carry
#: SQLAlchemy's own, such as ``prepared_statement_cache_size``).
_ASYNCPG_ARGS = frozenset({"host", "port", "user", "password", "database", "ssl", "passfile"})


def _asyncpg_args(url: URL) -> dict[str, Any]:
    """``asyncpg.connect`` arguments of a ``postgresql+asyncpg://`` URL, as the engine's."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    _args, options = dialect.create_connect_args(url)  # type: ignore[no-untyped-call]
    return {key: value for key, value in options.items() if key in _ASYNCPG_ARGS}


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return os.pread(fd, 200, 0).decode().strip()
    return ""


class PostgresLock:
    """``pg_try_advisory_lock`` on a dedicated asyncpg connection, watched and re-taken."""

    def __init__(
        self,
        url: str,
        config: DatabaseConfig,
        *,
        on_lost: OnLost | None = None,
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.url = url
        self.config = config
        self.on_lost = on_lost
        self.check_interval_s = check_interval_s
        self.label = holder_label(uuid.uuid4().hex[:8])
        self._connect_args = _asyncpg_args(connect_url(url, config))
        self._connection: Any = None
        self._watch: asyncio.Task[None] | None = None
        self._released = False

    async def acquire(self) -> None:
        """Take the lock, retrying an unreachable database for ``write_retry_s``."""
        deadline = time.monotonic() + self.config.write_retry_s
        delay = 0.1
        while True:
            try:
                held, holder = await self._try_lock()
                break
            except DRIVER_ERRORS as error:
                if not is_transient(error) or time.monotonic() + delay > deadline:
                    raise translate(error, self.url) from error
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if not held:
            raise _refusal(self.url, holder)
        log.info("database_lock_acquired", database=redact_url(self.url), holder=self.label)
        if self.on_lost is not None:
            self._watch = asyncio.create_task(self._watch_loop(), name="database-lock")

    async def _try_lock(self) -> tuple[bool, str]:
        """Connect and try the lock: (True, "") or (False, who holds it)."""
        import asyncpg

        connection = await asyncpg.connect(
            **self._connect_args,
            timeout=self.config.connect_timeout_s,
            server_settings={"application_name": self.label},
        )
        try:
            if await connection.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_KEY):
                self._connection = connection
                return True, ""
            holder = await self._holder(connection)
        except BaseException:
            await _close(connection)
            raise
        await _close(connection)
        return False, holder

    @staticmethod
    async def _holder(connection: Any) -> str:
        unsigned = ADVISORY_KEY & (2**64 - 1)
        row = await connection.fetchrow(_HOLDER_QUERY, unsigned >> 32, unsigned & 0xFFFFFFFF)
        if row is None:
            return "advisory lock held by a session that just ended; try again"
        client = row["client_addr"] or "local socket"
        since = row["backend_start"].isoformat(timespec="seconds") if row["backend_start"] else "?"
        name = row["application_name"] or "a session"
        return f"advisory lock held by {name!r} from {client} since {since}"

    async def _watch_loop(self) -> None:
        while not self._released:
            await asyncio.sleep(self.check_interval_s)
            try:
                await self.check()
            except DaemonAlreadyRunning as exc:
                log.critical("database_lock_lost", error=str(exc))
                if self.on_lost is not None:
                    self.on_lost(exc)
                return

    async def check(self) -> None:
        """Ping the lock's connection; after it died, reconnect and take the lock again.
        ``DaemonAlreadyRunning`` when another daemon took it meanwhile; an unreachable
        database is only logged (the next check tries again)."""
        try:
            if self._connection is not None and not self._connection.is_closed():
                await asyncio.wait_for(self._connection.fetchval("SELECT 1"), timeout=10)
                return
        except DRIVER_ERRORS as error:  # TimeoutError among them
            log.warning("database_lock_connection_lost", error=type(error).__name__)
        await self._close_connection()
        try:
            held, holder = await self._try_lock()
        except DRIVER_ERRORS as error:
            log.warning("database_lock_retake_failed", error=type(error).__name__)
            return
        if held:
            log.info("database_lock_retaken", database=redact_url(self.url))
        elif self.label in holder:
            log.warning("database_lock_held_by_our_stale_session", holder=holder)
        else:
            raise _refusal(self.url, holder)

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await _close(connection)

    async def release(self) -> None:
        self._released = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        try:
            if self._connection is not None and not self._connection.is_closed():
                with contextlib.suppress(Exception):
                    await self._connection.fetchval("SELECT pg_advisory_unlock($1)", ADVISORY_KEY)
        finally:
            await self._close_connection()


async def _close(connection: Any) -> None:
    """Close an asyncpg connection, or abort it when a graceful close fails or is cancelled.

    Why: a connection whose ``close`` timed out or was interrupted by a shutdown's
    cancellation stays open until the garbage collector finds it (an "unclosed
    connection" warning at some unrelated later moment, and a server session that
    lingers holding the advisory lock until TCP notices). ``terminate`` is synchronous.
    """
    try:
        await connection.close(timeout=2)
    except BaseException:
        connection.terminate()
        raise
