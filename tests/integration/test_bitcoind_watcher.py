"""RetargetWatcher on the real regtest node: retargets, a reorg across a boundary, restart, CLI.

Regtest never retargets (bits stay 0x207fffff), which verification accepts; the
node is mined across real 2016-block boundaries with ``generatetoaddress``.
Expected hashes come from the node's own RPC, never from the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import pytest

from oracle.agreement.crosscheck import Agreed, Insufficient
from oracle.agreement.reorg import TIP_LOWER, RetargetOrphaned, TipRegressed
from oracle.agreement.watcher import EpochObserved, RetargetWatcher, WatchEvent
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, get_network
from oracle.errors import SourceError, SourceUnavailable, SourceWarmingUp
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.rpc import RpcCredentials
from tests.fixtures.bitcoind import ROOT, BitcoindNode, NodeFactory

pytestmark = pytest.mark.bitcoind
REGTEST = get_network("regtest")
REGTEST_BITS = 0x207FFFFF


def two_sources(node: BitcoindNode) -> list[BitcoindSource]:
    """ZMQ + user/password, and cookie auth with polling only: two ways into the node."""
    return [
        BitcoindSource(
            name="zmq",
            url=node.url,
            zmq_hashblock=node.zmq_url,
            poll_interval_s=0.2,
            timeout_s=10,
            credentials=RpcCredentials(user=node.user, password=node.password),
        ),
        BitcoindSource(
            name="cookie",
            url=node.url,
            poll_interval_s=0.2,
            timeout_s=10,
            credentials=RpcCredentials(cookie_file=str(node.cookie_file)),
        ),
    ]


class Collector:
    """Runs ``watcher.run()`` in the background and lets the test wait for events."""

    def __init__(self, watcher: RetargetWatcher) -> None:
        self.watcher = watcher
        self.events: list[WatchEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.watcher.run():
            self.events.append(event)
            self._changed.set()

    async def wait_for(
        self, predicate: Callable[[WatchEvent], bool], timeout_s: float = 30
    ) -> WatchEvent:
        async with asyncio.timeout(timeout_s):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for source in self.watcher.sources:
            await source.close()


@contextlib.asynccontextmanager
async def watching(watcher: RetargetWatcher) -> AsyncIterator[Collector]:
    collector = Collector(watcher)
    try:
        yield collector
    finally:
        await collector.stop()


def agreed_on(epoch: int, block_hash: str | None = None) -> Callable[[WatchEvent], bool]:
    def check(event: WatchEvent) -> bool:
        return (
            isinstance(event, EpochObserved)
            and isinstance(event.outcome, Agreed)
            and event.epoch == epoch
            and (block_hash is None or event.outcome.block_hash_hex == block_hash)
        )

    return check


async def test_watcher_agrees_on_each_retarget_across_boundaries(bitcoind: BitcoindNode) -> None:
    first_epoch = bitcoind.height() // EPOCH_BLOCKS + 1
    watcher = RetargetWatcher(two_sources(bitcoind), REGTEST, quorum=2, start_epoch=first_epoch)
    async with watching(watcher) as events:
        await asyncio.to_thread(bitcoind.mine_to, (first_epoch + 2) * EPOCH_BLOCKS + 1)
        for epoch in range(first_epoch, first_epoch + 3):
            event = await events.wait_for(agreed_on(epoch))
            assert isinstance(event, EpochObserved) and isinstance(event.outcome, Agreed)
            outcome = event.outcome
            assert outcome.block_hash_hex == bitcoind.rpc("getblockhash", epoch * EPOCH_BLOCKS)
            assert outcome.header.hex() == bitcoind.rpc(
                "getblockheader", outcome.block_hash_hex, False
            )
            assert outcome.bits == REGTEST_BITS and outcome.sources == ("cookie", "zmq")
            assert {v.method for v in event.verifications.values()} == {"retarget_rule"}
    observed = [e.epoch for e in events.events if isinstance(e, EpochObserved)]
    assert observed[:1] == [first_epoch] and set(range(first_epoch, first_epoch + 3)) <= set(
        observed
    )


async def test_reorg_across_a_retarget_boundary(bitcoind: BitcoindNode) -> None:
    boundary = bitcoind.next_boundary()
    epoch = boundary // EPOCH_BLOCKS
    await asyncio.to_thread(bitcoind.mine_to, boundary - 1)
    other_address = bitcoind.rpc("getnewaddress")
    watcher = RetargetWatcher(two_sources(bitcoind), REGTEST, quorum=2, start_epoch=epoch)
    async with watching(watcher) as events:
        chain_a = await asyncio.to_thread(bitcoind.mine, 4)  # A0 at the boundary + 3 on top
        await events.wait_for(agreed_on(epoch, chain_a[0]))

        bitcoind.rpc("invalidateblock", chain_a[0])  # no hashblock: polling must see it
        regressed = await events.wait_for(lambda e: isinstance(e, TipRegressed))
        assert isinstance(regressed, TipRegressed) and regressed.kind == TIP_LOWER
        assert regressed.current.height == boundary - 1

        chain_b = await asyncio.to_thread(bitcoind.mine, 2, other_address)  # competing B0, B1
        assert chain_b[0] != chain_a[0]
        orphan = await events.wait_for(lambda e: isinstance(e, RetargetOrphaned))
        assert isinstance(orphan, RetargetOrphaned)
        assert (orphan.epoch, orphan.stored_hash_hex, orphan.current_hash_hex) == (
            epoch,
            chain_a[0],
            chain_b[0],
        )
        await events.wait_for(agreed_on(epoch, chain_b[0]))

        bitcoind.rpc("reconsiderblock", chain_a[0])  # A is longer: the node goes back to it
        back = await events.wait_for(
            lambda e: isinstance(e, RetargetOrphaned) and e.stored_hash_hex == chain_b[0]
        )
        assert isinstance(back, RetargetOrphaned) and back.current_hash_hex == chain_a[0]
        await events.wait_for(agreed_on(epoch, chain_a[0]))
    assert bitcoind.rpc("getblockhash", boundary) == chain_a[0]
    orphans = [e for e in events.events if isinstance(e, RetargetOrphaned)]
    assert {o.source for o in orphans} == {"zmq", "cookie"}  # both sources saw each reorg


async def poll_until_up(source: BitcoindSource, timeout_s: float = 60) -> list[SourceError]:
    """Errors seen while polling a starting node every 2 ms, until it answers."""
    errors: list[SourceError] = []
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                await source.tip()
                return errors
            except SourceError as exc:
                errors.append(exc)
            await asyncio.sleep(0.002)


async def test_node_stopped_and_restarted_under_the_watcher(bitcoind_factory: NodeFactory) -> None:
    node = bitcoind_factory()
    await asyncio.to_thread(node.mine, EPOCH_BLOCKS - 5)
    watcher = RetargetWatcher(two_sources(node), REGTEST, quorum=2, start_epoch=0)
    async with watching(watcher) as events:
        await events.wait_for(agreed_on(0))
        await asyncio.to_thread(node.stop)
        outcome, results = await watcher.observe_epoch(0)  # the node is down
        assert isinstance(outcome, Insufficient)
        assert {r.kind for r in results} == {"unavailable"}  # type: ignore[union-attr]
        node.start(wait=False)  # same ports and datadir, new cookie; not waiting for RPC
        errors = await poll_until_up(watcher.sources[0])
        assert {type(e) for e in errors} <= {SourceUnavailable, SourceWarmingUp}, errors
        assert any(isinstance(e, SourceWarmingUp) for e in errors)  # RPC -28 while loading
        mined = await asyncio.to_thread(node.mine, 10)
        event = await events.wait_for(agreed_on(1))
    assert isinstance(event, EpochObserved) and isinstance(event.outcome, Agreed)
    assert event.outcome.block_hash_hex == mined[4] == node.rpc("getblockhash", EPOCH_BLOCKS)


def test_watch_command_prints_each_retarget_as_agreed(bitcoind: BitcoindNode) -> None:
    boundary = bitcoind.next_boundary()
    bitcoind.mine_to(boundary)
    userinfo = f"{quote(bitcoind.user, safe='')}:{quote(bitcoind.password, safe='')}"
    url = bitcoind.url.replace("http://", f"http://{userinfo}@")
    command = [
        sys.executable,
        "-m",
        "oracle",
        "watch",
        "--bitcoind-url",
        url,
        "--zmq",
        bitcoind.zmq_url,
        "--network",
        "regtest",
        "--quorum",
        "1",
        "--poll-interval-s",
        "0.2",
        "--max-agreed",
        "2",
        "--json",
    ]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            first = json.loads(process.stdout.readline())
            bitcoind.mine(EPOCH_BLOCKS)
            second = json.loads(process.stdout.readline())
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
    for line, height in ((first, boundary), (second, boundary + EPOCH_BLOCKS)):
        assert line["event"] == "agreed" and line["height"] == height
        assert line["block_hash"] == bitcoind.rpc("getblockhash", height)
        assert line["bits"] == "207fffff" and line["sources"] == ["bitcoind"]
