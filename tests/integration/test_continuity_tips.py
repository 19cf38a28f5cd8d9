"""The effective tip against local Esplora servers serving real mainnet headers.

Three sources, quorum 2; one reports height 10^9 for its (real) tip block. The
epochs observed, the confirmations counted for publication, the reorg re-check
window and ``replay``'s range all follow the 2nd highest tip, never the inflated one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oracle.agreement.crosscheck import Agreed
from oracle.agreement.reorg import RetargetOrphaned
from oracle.agreement.watcher import EpochObserved, RetargetWatcher, WatchEvent
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, get_network
from oracle.config import Config
from oracle.config import load as load_config
from oracle.errors import SourceUnavailable
from oracle.pipeline import Pipeline
from oracle.replay import run_replay
from oracle.sources.esplora import EsploraSource
from oracle.sources.types import HeaderSource
from oracle.store import migrate
from oracle.store.repository import Repository
from tests.fixtures.restreplay import (
    Fault,
    ReplayServer,
    mainnet_esplora_routes,
    mainnet_hashes,
    refused_url,
)
from tests.integration.test_continuity_sources import FAST, Quiet

MAINNET = get_network("mainnet")
HASHES = mainnet_hashes()
EPOCH = 411
RETARGET = EPOCH * EPOCH_BLOCKS  # 828,576
INFLATED = 10**9
Replay = Callable[..., Any]


@dataclass
class Landed:
    status: str = "confirmed"
    tx_hash: str | None = "0x" + "ab" * 32
    function: str = "submit"


class Recorder:
    """A publisher that lands everything it is given and remembers what."""

    chain_id = 31337
    contract_address = "0x" + "11" * 20

    def __init__(self) -> None:
        self.epochs: list[int] = []

    async def publish_epoch(
        self, epoch: int, raw_header: bytes, last_header: bytes | None
    ) -> Landed:
        self.epochs.append(epoch)
        return Landed()

    async def correction(self, epoch: int, orphaned_hex: str, *, confirmations: int) -> Any:
        raise AssertionError("nothing was published in these tests")


async def esplora(replay: Replay, name: str, tip: int) -> tuple[ReplayServer, HeaderSource]:
    server: ReplayServer = await replay("esplora", tip_height=tip)
    server.routes = mainnet_esplora_routes()
    source = EsploraSource(name=name, base_url=server.url, policy=FAST, poll_interval_s=0.05)
    return server, source


def inflate(server: ReplayServer) -> None:
    """The server's real tip block, reported at height 10^9."""
    status = {"in_best_chain": True, "height": INFLATED, "next_best": None}
    route = f"/block/{HASHES[server.tip_height]}/status"
    server.routes[route] = {"type": "application/json", "body": json.dumps(status)}


async def one_pass(
    watcher: RetargetWatcher, pipeline: Pipeline, sources: list[HeaderSource]
) -> list[WatchEvent]:
    """What the daemon does per burst of tips: observe, store, publish what is confirmed."""
    async with asyncio.timeout(60):  # one source's tip must not make this unbounded
        events = await watcher.handle_tips([await s.tip() for s in sources])
        for event in events:
            await pipeline.handle(event)
        assert watcher.best_height is not None
        await pipeline.publish_confirmed(watcher.best_height)
    return events


def asked_heights(*servers: ReplayServer) -> set[int]:
    paths = (p.removeprefix("/block-height/") for s in servers for p in s.requests)
    return {int(p) for p in paths if p.isdigit()}


async def test_an_inflated_tip_moves_neither_the_range_nor_the_confirmations(
    replay: Replay, repository: Repository
) -> None:
    a_server, a = await esplora(replay, "a", RETARGET + 4)
    b_server, b = await esplora(replay, "b", RETARGET + 3)
    c_server, c = await esplora(replay, "inflated", RETARGET + 4)
    inflate(c_server)
    sources = [a, b, c]
    publisher = Recorder()
    pipeline = Pipeline(
        network="mainnet",
        repository=repository,
        notifier=Quiet(),
        confirmations=6,
        publisher=publisher,
    )
    watcher = RetargetWatcher(sources, MAINNET, quorum=2)
    try:
        assert (await c.tip()).height == INFLATED
        events = await one_pass(watcher, pipeline, sources)
        # tips [r+4, r+3, 10^9], quorum 2: the effective tip is the 2nd highest, r+4
        assert watcher.best_height == RETARGET + 4
        observed = [e for e in events if isinstance(e, EpochObserved)]
        assert [e.epoch for e in observed] == [EPOCH]
        assert isinstance(observed[0].outcome, Agreed)
        assert observed[0].outcome.sources == ("a", "b", "inflated")
        assert max(asked_heights(a_server, b_server, c_server)) == RETARGET
        assert publisher.epochs == []  # 4 confirmations, not 10^9 - 828,576
        a_server.tip_height = b_server.tip_height = RETARGET + 6
        events = await one_pass(watcher, pipeline, sources)
        assert watcher.best_height == RETARGET + 6
        assert publisher.epochs == [EPOCH]  # 6 real confirmations
    finally:
        for source in sources:
            await source.close()
    record = await repository.get_retarget("mainnet", EPOCH)
    assert record is not None and record.status == "published"


async def test_an_inflated_tip_does_not_switch_off_the_reorg_recheck(
    replay: Replay, repository: Repository
) -> None:
    a_server, a = await esplora(replay, "a", RETARGET + 10)
    b_server, b = await esplora(replay, "b", RETARGET + 10)
    c_server, c = await esplora(replay, "inflated", RETARGET + 10)
    inflate(c_server)
    sources = [a, b, c]
    pipeline = Pipeline(network="mainnet", repository=repository, notifier=Quiet(), confirmations=6)
    watcher = RetargetWatcher(sources, MAINNET, quorum=2)
    try:
        await one_pass(watcher, pipeline, sources)
        assert EPOCH in watcher.agreed
        # the honest two now serve another block at the retarget height: a reorg
        for server in (a_server, b_server):
            path = f"/block-height/{RETARGET}"
            server.faults.append(Fault("wrong_hash", path_contains=path, other_height=RETARGET + 1))
        events = await one_pass(watcher, pipeline, sources)
    finally:
        for source in sources:
            await source.close()
    orphans = [e for e in events if isinstance(e, RetargetOrphaned)]
    assert {o.source for o in orphans} == {"a", "b"}
    assert all(o.stored_hash_hex == HASHES[RETARGET] for o in orphans)
    assert EPOCH not in watcher.agreed  # re-observed: the new answers do not verify
    record = await repository.get_retarget("mainnet", EPOCH)
    assert record is not None and record.status == "orphaned"


def replay_config(path: Path, db: str, urls: dict[str, str]) -> Config:
    path.write_text(
        f'[network]\nname = "mainnet"\n[database]\nurl = "{db}"\n[bitcoind]\nenabled = false\n'
        "[crosscheck]\nquorum = 2\n"
        + "".join(
            f'[[sources]]\nname = "{name}"\nkind = "esplora"\nbase_url = "{url}"\n'
            "max_retries = 0\nrate_limit_per_s = 0\n"
            for name, url in urls.items()
        )
    )
    return load_config(path, environ={})


async def test_replay_is_bounded_by_the_quorum_tip(replay: Replay, tmp_path: Path) -> None:
    """``replay --to-epoch 10000000`` with one source at 10^9: cut at the 2nd highest tip."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'oracle.sqlite'}"
    await migrate.upgrade(db)
    servers = {
        "a": await replay("esplora", tip_height=RETARGET + 4),
        "b": await replay("esplora", tip_height=RETARGET + 3),
        "inflated": await replay("esplora", tip_height=RETARGET + 4),
    }
    for server in servers.values():
        server.routes = mainnet_esplora_routes()
    inflate(servers["inflated"])
    config = replay_config(tmp_path / "c.toml", db, {k: s.url for k, s in servers.items()})
    async with asyncio.timeout(60):
        summary = await run_replay(
            config, range(EPOCH, 10_000_000), publish=False, checkpoints=False, progress=False
        )
    assert summary.agreed == [EPOCH]
    assert summary.beyond_tip == range(EPOCH + 1, 10_000_000)
    # one tip for a quorum of two: nothing to replay to
    lone = replay_config(
        tmp_path / "lone.toml", db, {"inflated": servers["inflated"].url, "down": refused_url()}
    )
    with pytest.raises(SourceUnavailable, match="only 1 source"):
        await run_replay(
            lone, range(EPOCH, 10_000_000), publish=False, checkpoints=False, progress=False
        )
