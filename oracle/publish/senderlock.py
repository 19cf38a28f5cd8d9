"""The locks ``run`` holds: one daemon per database, one process per sender key on a host.

``DaemonLocks`` is what the service holds for its lifetime: the database lock
(``oracle.store.lock``), taken before anything is built, and, once the publisher is
built, the sender lock described here. When the database lock is lost to another
daemon (after a Postgres restart) it sets the service's stop event; the service then
raises ``DaemonAlreadyRunning`` and exits non-zero.

Two processes sending from one key race for its nonces: each signs "the next nonce",
one of the two transactions replaces or invalidates the other, and the loser's
submission ends ``failed`` ("nonce taken by a transaction not ours"). Two daemons on
two databases with one sender key is the usual way to get there, so ``run`` takes
this lock once its publisher is built, next to the database lock
(``oracle.store.lock``), and refuses to start (``DaemonAlreadyRunning``) when another
process on this host holds it.

The file is ``bme-oracle-sender-<address>.lock`` in ``$XDG_RUNTIME_DIR`` when that is
set (systemd sets it per user), else in the system's temporary directory (``/tmp``).
Processes in separate containers see separate ``/tmp``s: mount one directory into
every container of a host and point ``XDG_RUNTIME_DIR`` at it. Across hosts no file
can help; there the transaction manager notices the other sender by its nonces and
alerts (``oracle.publish.nonces``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from oracle.config import Config
from oracle.errors import DaemonAlreadyRunning
from oracle.store.lock import DatabaseLock, FileLock, acquire_database_lock


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR`` if it names a directory, else the temporary directory."""
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_dir():
        return Path(runtime)
    return Path(tempfile.gettempdir())


def sender_lock_path(address: str, directory: Path | None = None) -> Path:
    return (directory or lock_dir()) / f"bme-oracle-sender-{address.lower()}.lock"


def acquire_sender_lock(address: str, directory: Path | None = None) -> FileLock:
    """Hold the host-wide lock of sender ``address`` until ``release`` or process exit;
    ``DaemonAlreadyRunning`` when another process (or lock) holds it."""
    return FileLock.acquire(
        sender_lock_path(address, directory), what=f"the sender key {address} on this host"
    )


class DaemonLocks:
    """The database lock and, once publishing, the sender lock; released by ``release``."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.database: DatabaseLock | None = None
        self.sender: FileLock | None = None
        #: set when another daemon took the database lock while this one ran
        self.lost: DaemonAlreadyRunning | None = None

    @classmethod
    async def acquire(cls, config: Config, *, stop: asyncio.Event) -> DaemonLocks:
        """Take the database lock (``DaemonAlreadyRunning`` when another daemon holds it)."""
        locks = cls(stop)
        locks.database = await acquire_database_lock(
            config.database.url, config.database, on_lost=locks._on_lost
        )
        return locks

    def _on_lost(self, error: DaemonAlreadyRunning) -> None:
        self.lost = error
        self._stop.set()

    def hold_sender(self, address: str) -> None:
        """Take the sender lock of ``address`` (``DaemonAlreadyRunning`` when held)."""
        if self.sender is None:
            self.sender = acquire_sender_lock(address)

    def raise_if_lost(self) -> None:
        if self.lost is not None:
            raise self.lost

    async def release(self) -> None:
        sender, self.sender = self.sender, None
        if sender is not None:
            await sender.release()
        database, self.database = self.database, None
        if database is not None:
            await database.release()
