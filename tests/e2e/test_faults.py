"""The daemon under faults: signals, a lying source, restarts of bitcoind and Postgres, ZMQ silence.

Real processes throughout: regtest bitcoind nodes, the Postgres server, the
`bme-oracle run` console script for the signal tests.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.errors import HeightNotFound
from oracle.service import Service
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.types import Observation, Tip
from tests.e2e.helpers import (
    BIN,
    WebhookReceiver,
    daemon_config,
    http_get_json,
    node_source,
    peered_nodes,
    running,
    start_daemon,
    status_of,
    terminate,
    wait_for,
    wait_http,
)
from tests.fixtures.anvil import free_port
from tests.fixtures.bitcoind import NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_daemon_cleanly(
    sig: int, bitcoind_factory: NodeFactory, tmp_path: Path
) -> None:
    node = bitcoind_factory()
    port = free_port()
    config = tmp_path / "oracle.toml"
    config.write_text(
        f'[network]\nname = "regtest"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "o.sqlite"}"\n'
        f'[bitcoind]\nurl = "{node.url}"\nrpc_user = "{node.user}"\n'
        f'zmq_hashblock = "{node.zmq_url}"\npoll_interval_s = 1.0\n'
        f"[crosscheck]\nquorum = 1\nconfirmations = 0\n"
        f'[api]\nport = {port}\n[logging]\nformat = "json"\n'
        f"[service]\nshutdown_timeout_s = 5.0\n"
    )
    env = {"ORACLE_BITCOIND__RPC_PASSWORD": node.password}
    subprocess.run(
        [str(BIN), "db", "upgrade", "--db", f"sqlite+aiosqlite:///{tmp_path / 'o.sqlite'}"],
        check=True,
        capture_output=True,
    )
    with start_daemon(config, env) as proc:  # closes its output pipe on the way out
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc)
            node.mine(5)
            deadline = time.monotonic() + 30
            status, body = http_get_json(f"http://127.0.0.1:{port}/v1/retargets/0")
            while status != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                status, body = http_get_json(f"http://127.0.0.1:{port}/v1/retargets/0")
            assert status == 200, body  # the genesis epoch went through the whole pipeline
            started = time.monotonic()
            assert terminate(proc, sig) == 0
            assert time.monotonic() - started < 10
        finally:
            if proc.poll() is None:
                proc.kill()
        output = proc.stdout.read().decode() if proc.stdout else ""
    assert "service_stopped" in output
    assert node.password not in output  # no secret in the logs


async def test_lying_source_holds_publication_then_recovers(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    """Two honest peered nodes and one node on its own chain (same PoW rules, other blocks)."""
    a, b = peered_nodes(bitcoind_factory)
    liar = bitcoind_factory()
    async with WebhookReceiver() as hooks:
        config = daemon_config(pg_url, a, quorum=2, confirmations=0, webhooks=(hooks.url,))
        service = Service(
            config, extra_sources=[node_source(b, "bitcoind-b"), node_source(liar, "liar")]
        )
        async with running(service):
            liar.mine(2016 + 2, address="mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn")
            a.mine(2016 + 2)
            disputes = await wait_for(
                lambda: service.repository.list_disagreements("regtest", limit=10),
                what="disagreement recorded",
            )
            assert any(d.epoch == 1 for d in disputes)
            assert await status_of(service, 1) != "agreed"  # nothing agreed with a liar around
            await wait_for(lambda: _has(hooks, "disagreement"), 20, "disagreement alert")
            liar.stop()  # the liar goes away: its failures do not count, the honest quorum does
            a.mine(1)
            await wait_for(lambda: _agreed(service, 1), 60, "epoch 1 agreed after the liar left")
            record = await service.repository.get_retarget("regtest", 1)
            assert record.block_hash_hex == a.rpc("getblockhash", 2016)


class OneEpochBehind:
    """A real node's headers served one epoch late: at height h, the header of h - 2016,
    under the node's real tip. Proof of work, linkage and the retarget rule all pass."""

    def __init__(self, inner: BitcoindSource, name: str) -> None:
        self.inner = inner
        self.name = name

    def _tip(self, tip: Tip) -> Tip:
        return Tip(self.name, tip.height, tip.block_hash_hex, tip.observed_at)

    async def tip(self) -> Tip:
        return self._tip(await self.inner.tip())

    async def header_at(self, height: int) -> Observation:
        if height < EPOCH_BLOCKS:
            raise HeightNotFound("before the lag", source=self.name, request=f"height {height}")
        seen = await self.inner.header_at(height - EPOCH_BLOCKS)
        return Observation(self.name, height, seen.block_hash_hex, seen.header, seen.observed_at)

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return [await self.header_at(height) for height in heights]

    async def new_blocks(self) -> AsyncIterator[Tip]:
        async for tip in self.inner.new_blocks():
            yield self._tip(tip)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_source_one_epoch_behind_neither_stalls_nor_fools_the_daemon(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    """Two honest peered nodes and a third source serving one of them an epoch late:
    every retarget is agreed on the real block, nothing is disputed, and the lagging
    claims are stored unverified with the block they named (issue 12, continuity)."""
    a, b = peered_nodes(bitcoind_factory)
    lagging = OneEpochBehind(node_source(b, "behind-inner", zmq=False), "behind")
    config = daemon_config(pg_url, a, quorum=2, confirmations=0)
    service = Service(config, extra_sources=[node_source(b, "bitcoind-b"), lagging])
    async with running(service):
        a.mine(3 * EPOCH_BLOCKS + 2)
        for epoch in (1, 2, 3):
            await wait_for(lambda e=epoch: _agreed(service, e), 90, f"epoch {epoch} agreed")
        repo = service.repository
        assert await repo.list_disagreements("regtest", limit=10) == []
        for epoch in (1, 2, 3):
            record = await repo.get_retarget("regtest", epoch)
            assert record is not None
            assert record.block_hash_hex == a.rpc("getblockhash", epoch * EPOCH_BLOCKS)
            assert set(record.sources) == {"bitcoind", "bitcoind-b"}
            older = str(a.rpc("getblockhash", (epoch - 1) * EPOCH_BLOCKS))
            claims = await repo.observations("regtest", epoch)
            [claim] = [o for o in claims if o.source == "behind" and o.block_hash_hex]
            assert (claim.ok, claim.error_kind, claim.block_hash_hex) == (
                False,
                "unverified",
                older,
            )
            assert claim.raw_header == bytes.fromhex(a.rpc("getblockheader", older, False))
            assert claim.error_message is not None and "continuity" in claim.error_message


async def test_bitcoind_restart_and_zmq_silence(bitcoind_factory: NodeFactory, pg_url: str) -> None:
    node = bitcoind_factory()
    # ZMQ points at a port where nobody publishes: only the polling fallback can see blocks.
    silent_zmq = f"tcp://127.0.0.1:{free_port()}"
    config = daemon_config(pg_url, node, quorum=1, confirmations=0, zmq_url=silent_zmq)
    service = Service(config)
    async with running(service):
        node.mine(2016)
        await wait_for(lambda: _agreed(service, 1), 60, "epoch 1 via polling")
        node.stop()
        await asyncio.sleep(2)  # the daemon keeps running while its only source is down
        node.start()
        node.mine(2016)
        await wait_for(lambda: _agreed(service, 2), 60, "epoch 2 after bitcoind restart")


async def test_postgres_restart_under_the_daemon(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    node = bitcoind_factory()
    service = Service(daemon_config(pg_url, node, quorum=1, confirmations=0))
    async with running(service):
        node.mine(2016)
        await wait_for(lambda: _agreed(service, 1), 60, "epoch 1")
        await asyncio.to_thread(_restart_postgres)
        node.mine(2016)
        await wait_for(lambda: _agreed(service, 2), 90, "epoch 2 after Postgres restart")


def _restart_postgres() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def _agreed(service: Service, epoch: int) -> bool:
    return await status_of(service, epoch) in {"agreed", "published"}


async def _has(hooks: WebhookReceiver, kind: str) -> bool:
    return kind in hooks.kinds()
