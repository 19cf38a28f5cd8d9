"""One daemon per database, one process per sender key (issue 12 item 7), against real processes.

A real ``bme-oracle run`` holds the database while a second one on the same database
(SQLite file, Postgres database) is started and must be refused with a message that
names the database without its password, and a non-zero exit; killing the first frees
the database at once. The Postgres lock survives a dropped connection (taken again)
and, when another daemon took it meanwhile, tells its owner. Two daemons on two
databases with one sender key: the second is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from oracle.config import ApiConfig, BitcoindConfig, Config, DatabaseConfig, NetworkConfig, Secret
from oracle.devstack.stack import deploy_dev_contract, make_dev_keys, publisher_config
from oracle.errors import DaemonAlreadyRunning
from oracle.service import Service
from oracle.store import migrate
from oracle.store.lock import PostgresLock, acquire_database_lock
from tests.fixtures.anvil import AnvilNode, free_port
from tests.fixtures.postgres import ADMIN_DSN, create_database, drop_database, sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def daemon_toml(path: Path) -> Path:
    """A daemon whose only source is a bitcoind nobody runs: it starts and waits."""
    path.write_text(
        f'[network]\nname = "regtest"\n[bitcoind]\nurl = "http://127.0.0.1:{free_port()}"\n'
        'rpc_user = "oracle"\n[api]\nport = 0\n',
        encoding="utf-8",
    )
    return path


def bme_oracle(*args: str) -> list[str]:
    return [sys.executable, "-m", "oracle", *args]


def daemon_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "ORACLE_BITCOIND__RPC_PASSWORD": "x"}


async def postgres_holder_pid(url: str) -> int | None:
    """The pid named by the application_name of the session holding the advisory lock."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        name = await connection.fetchval(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await connection.close()
    return int(name.rsplit(" ", 1)[1]) if name else None


def sqlite_holder_pid(sqlite_file: Path) -> int | None:
    """The pid written into ``<database>.lock`` by the daemon that holds it."""
    lock = Path(f"{sqlite_file}.lock")
    text = lock.read_text(encoding="utf-8") if lock.exists() else ""
    return int(text.split()[1]) if text.startswith("pid ") else None


async def holder_pid(url: str, sqlite_file: Path | None) -> int | None:
    if sqlite_file is None:
        return await postgres_holder_pid(url)
    return sqlite_holder_pid(sqlite_file)


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env=daemon_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def daemon_db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, Path | None]]:
    """(url, SQLite file or None): a migrated database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "oracle.sqlite"
        await migrate.upgrade(f"sqlite+aiosqlite:///{path}")
        yield f"sqlite+aiosqlite:///{path}", path
        return
    name = await create_database()
    try:
        await migrate.upgrade(sqlalchemy_url(name))
        yield sqlalchemy_url(name), None
    finally:
        await drop_database(name)


async def test_a_second_run_on_the_same_database_is_refused(
    daemon_db: tuple[str, Path | None], tmp_path: Path
) -> None:
    plain, sqlite_file = daemon_db
    # trust authentication ignores the password; it must not reach the message
    url = plain.replace("://postgres@", "://postgres:s3cret-pw@", 1)
    backend = "sqlite" if sqlite_file else "postgres"
    config = daemon_toml(tmp_path / "oracle.toml")
    args = bme_oracle("run", "--config", str(config), "--db", url)
    first = start(args, tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while await holder_pid(plain, sqlite_file) != first.pid:
            assert first.poll() is None, f"the first daemon exited with {first.returncode}"
            assert time.monotonic() < deadline, "the first daemon never took the lock"
            await asyncio.sleep(0.2)
        second = await asyncio.to_thread(
            subprocess.run,
            args,
            env=daemon_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        assert second.returncode == 69  # EX_UNAVAILABLE: another daemon holds the database
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith("bme-oracle: error: another bme-oracle daemon already")
        if backend == "postgres":
            assert "postgresql+asyncpg://postgres:***@127.0.0.1:5432/" in message
            assert f"pid {first.pid}" in message  # the holder, from pg_stat_activity
        else:
            assert f"database {url}" in message and f"pid {first.pid} " in message
        assert "s3cret-pw" not in second.stderr + second.stdout
        assert first.poll() is None  # the first one runs on, untouched
        first.kill()  # even SIGKILL frees the database: a restart is never blocked
        first.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                lock = await acquire_database_lock(url)
                break
            except DaemonAlreadyRunning:  # the server notices the dead session soon after
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        await lock.release()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)


async def _backend_pid(lock: PostgresLock) -> int:
    connection = lock._connection
    assert connection is not None
    return int(connection.get_server_pid())


async def _terminate(pid: int) -> None:
    """End a server session (what a Postgres restart does to it) and wait until it is gone."""
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
        deadline = time.monotonic() + 20
        while await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
        ):
            assert time.monotonic() < deadline, f"session {pid} did not end"
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_the_postgres_lock_is_taken_again_or_its_loss_is_told(pg_url: str) -> None:
    lost: list[DaemonAlreadyRunning] = []
    first = PostgresLock(pg_url, DatabaseConfig(url=pg_url), on_lost=lost.append)
    await first.acquire()
    try:
        # The lock's connection dies (a Postgres restart looks the same): taken again.
        await _terminate(await _backend_pid(first))
        await first.check()
        assert lost == [] and first._connection is not None
        assert await postgres_holder_pid(pg_url) == os.getpid()
        # Dies again, and another daemon takes the lock before this one looks: told.
        await _terminate(await _backend_pid(first))
        other = await acquire_database_lock(pg_url)
        try:
            with pytest.raises(DaemonAlreadyRunning, match="another bme-oracle daemon"):
                await first.check()
            # the watch task does the same on its own and calls on_lost
            watched = PostgresLock(
                pg_url, DatabaseConfig(url=pg_url), on_lost=lost.append, check_interval_s=0.05
            )
            watched._connection = None  # as if its connection had just died
            watched._watch = asyncio.create_task(watched._watch_loop())
            deadline = time.monotonic() + 20
            while not lost:
                assert time.monotonic() < deadline, "on_lost was not called"
                await asyncio.sleep(0.05)
            assert "already runs on database" in str(lost[0])
            await watched.release()
        finally:
            await other.release()
    finally:
        await first.release()
    assert await postgres_holder_pid(pg_url) is None  # released: nobody holds it


@pytest.mark.anvil
async def test_a_second_daemon_with_the_same_sender_key_is_refused(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    chain = anvil_factory()
    keys = make_dev_keys(tmp_path / "keys")
    address = await deploy_dev_contract(chain.url, keys)

    async def config(name: str) -> Config:
        url = f"sqlite+aiosqlite:///{tmp_path / name}"
        await migrate.upgrade(url)
        return Config(
            network=NetworkConfig("regtest"),
            database=DatabaseConfig(url=url),
            bitcoind=BitcoindConfig(
                url=f"http://127.0.0.1:{free_port()}", rpc_user="x", rpc_password=Secret("x")
            ),
            api=ApiConfig(enabled=False),
            publisher=publisher_config(chain.url, address, keys),
        )

    first = Service(await config("a.sqlite"))
    await first.open()
    try:
        second = Service(await config("b.sqlite"))  # another database, the same sender key
        with pytest.raises(DaemonAlreadyRunning, match=r"the sender key 0x[0-9a-fA-F]{40} on this"):
            await second.open()
        assert second.locks is not None and second.locks.database is None  # released
        sender = first.parts.publisher.manager.sender.address  # type: ignore[union-attr]
        lock_file = tmp_path / f"bme-oracle-sender-{sender.lower()}.lock"
        assert lock_file.read_text().startswith(f"pid {os.getpid()} ")
        # a third on the first's database is refused by the database lock first
        third = Service(dataclasses.replace(first.config))
        with pytest.raises(DaemonAlreadyRunning, match="holds database"):
            await third.open()
    finally:
        await first.close()
    again = Service(await config("b.sqlite"))
    await again.open()  # the first is gone: the key is free
    await again.close()
