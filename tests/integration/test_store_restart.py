"""Postgres restarted in the middle of a run of writes: nothing acknowledged is lost,
nothing is written twice.

Why: the oracle runs for months; its database will restart under it. Writes in
flight must be retried (they are idempotent) or reported, never dropped, and a
retried write whose first commit did land must not be stored twice. This
restarts the machine's real Postgres cluster (a short outage), always starting
it again in ``finally``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from sqlalchemy import func, select

from oracle.config import DatabaseConfig
from oracle.store import migrate
from oracle.store.models import Observation, Retarget, Submission, SubmissionEvent
from oracle.store.repository import Repository, open_repository
from oracle.store.session import create_engine
from tests.integration.test_store_data import retarget_headers

pytestmark = pytest.mark.postgres

CONTRACT = "0x" + "ab" * 20
SIGNERS = ["0x" + "11" * 20]
TX = "0x" + "77" * 32
WRITES_BEFORE_RESTART = 40
WRITES_AFTER_RESTART = 30


def _cluster() -> list[str]:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return [versions[-1], "main"]


async def _pg_ctl(action: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        *_cluster(),
        action,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stderr.decode(errors="replace")


async def _ensure_running() -> None:
    process = await asyncio.create_subprocess_exec("pg_isready", "-q", "-h", "127.0.0.1")
    if await process.wait() != 0:
        await _pg_ctl("start")


def _require_pg_ctlcluster() -> None:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        pytest.fail("pg_ctlcluster is needed to restart the test Postgres (see DESIGN.md)")


@pytest_asyncio.fixture
async def restart_repository(postgres_url: str) -> AsyncIterator[Repository]:
    _require_pg_ctlcluster()
    await migrate.upgrade(postgres_url)
    config = DatabaseConfig(url=postgres_url, write_retry_s=60.0, connect_timeout_s=2.0)
    repository = await open_repository(postgres_url, config)
    try:
        yield repository
    finally:
        await repository.close()


async def _one_epoch(repository: Repository, epoch: int) -> None:
    """A pipeline step's worth of writes for one epoch, each its own transaction."""
    header = retarget_headers()[epoch]
    await repository.record_observations(
        "mainnet", [header.observation(s) for s in ("bitcoind", "esplora", "blockchain_com")]
    )
    await repository.record_agreed_many("mainnet", [header.agreed()])
    sid = await repository.create_submission(
        1, CONTRACT, epoch, SIGNERS, {"epoch": epoch}, block_hash_hex=header.block_hash_hex
    )
    await repository.add_submission_tx(
        sid,
        nonce=epoch,
        tx_hash=TX[:-4] + f"{epoch:04x}",
        raw_tx=b"\x02" + epoch.to_bytes(4, "big"),
        max_fee_per_gas=10**10,
        max_priority_fee_per_gas=10**9,
    )
    await repository.transition_submission(sid, "broadcast", tx_hash=TX[:-4] + f"{epoch:04x}")


async def test_postgres_restart_loses_nothing_and_duplicates_nothing(
    restart_repository: Repository, postgres_url: str
) -> None:
    acknowledged: list[int] = []
    warmed_up, restarted = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        after = 0
        for epoch in sorted(retarget_headers()):
            await _one_epoch(restart_repository, epoch)
            acknowledged.append(epoch)
            if len(acknowledged) >= WRITES_BEFORE_RESTART:
                warmed_up.set()
            if restarted.is_set():
                after += 1
                if after >= WRITES_AFTER_RESTART:
                    return
            await asyncio.sleep(0.002)
        raise AssertionError("ran out of epochs before the restart finished")

    async def restarter() -> None:
        await warmed_up.wait()
        try:
            status, stderr = await _pg_ctl("restart")
            assert status == 0, stderr
        finally:
            await _ensure_running()
            restarted.set()

    with structlog.testing.capture_logs() as logs:
        async with asyncio.TaskGroup() as group:  # a failing writer cancels the restarter
            group.create_task(writer())
            group.create_task(restarter())

    recovered = [e for e in logs if e["event"] == "store_recovered"]
    assert recovered, "no write was in flight during the restart; the test proved nothing"

    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as connection:

            async def count(model: type, *where: object) -> int:
                query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
                return int((await connection.execute(query)).scalar_one())

            n = len(acknowledged)
            assert await count(Retarget, Retarget.status == "agreed") == n
            assert await count(Retarget) == n
            assert await count(Observation) == 3 * n
            assert await count(Submission) == n
            assert await count(SubmissionEvent) == 2 * n  # signed + broadcast, each exactly once
            epochs = (await connection.execute(select(Retarget.epoch))).scalars().all()
            assert sorted(epochs) == sorted(acknowledged)
    finally:
        await engine.dispose()
