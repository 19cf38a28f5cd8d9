"""The daemon (`Service`) in-process against two real regtest nodes and real Postgres.

Two peered regtest nodes are two independent RPC sources, so quorum 2 is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from oracle.bme import EpochTarget, bme
from oracle.config import (
    ApiConfig,
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    DatabaseConfig,
    NetworkConfig,
    Secret,
)
from oracle.service import Service
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.rpc import RpcCredentials
from tests.fixtures.bitcoind import BitcoindNode, NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.postgres]


def node_source(node: BitcoindNode, name: str) -> BitcoindSource:
    return BitcoindSource(
        name=name,
        url=node.url,
        credentials=RpcCredentials(user=node.user, password=node.password),
        zmq_hashblock=node.zmq_url,
        poll_interval_s=1.0,
    )


def daemon_config(db_url: str, node: BitcoindNode, *, quorum: int, confirmations: int) -> Config:
    return Config(
        network=NetworkConfig("regtest"),
        database=DatabaseConfig(url=db_url),
        bitcoind=BitcoindConfig(
            url=node.url,
            rpc_user=node.user,
            rpc_password=Secret(node.password),
            zmq_hashblock=node.zmq_url,
            poll_interval_s=1.0,
        ),
        crosscheck=CrossCheckConfig(
            quorum=quorum, confirmations=confirmations, use_checkpoints=False
        ),
        api=ApiConfig(enabled=True, host="127.0.0.1", port=0),
    )


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[asyncio.Task[int]]:
    ready = asyncio.Event()

    async def on_ready(_service: Service) -> None:
        ready.set()

    service.on_ready = on_ready
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield task
    finally:
        service.stop_event.set()
        assert await asyncio.wait_for(task, 30) == 0


async def wait_for(predicate, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def peered_nodes(factory: NodeFactory) -> tuple[BitcoindNode, BitcoindNode]:
    a = factory(listen=True)
    b = factory(listen=True)
    b.rpc("addnode", f"127.0.0.1:{a.p2p_port}", "onetry")
    return a, b


async def test_retarget_agreed_by_two_sources_with_indices(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    a, b = peered_nodes(bitcoind_factory)
    config = daemon_config(pg_url, a, quorum=2, confirmations=3)
    service = Service(config, extra_sources=[node_source(b, "bitcoind-b")])
    async with running(service):
        a.mine(2016 + 3)
        record = await wait_for(lambda: _agreed(service, 1))
        header = bytes.fromhex(a.rpc("getblockheader", a.rpc("getblockhash", 2016), False))
        assert record.raw_header == header
        assert set(record.sources) == {"bitcoind", "bitcoind-b"}
        observations = (await service.repository.get_retarget("regtest", 1)).observations
        assert {o.source for o in observations} == {"bitcoind", "bitcoind-b"}
        value = await service.repository.index_value("regtest", 14, 1)
        expected = bme(14, [EpochTarget.from_bits(1, 0x207FFFFF)])
        assert value is not None and value.fixed == expected.fixed
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{service.api_url}/health") as response:
                assert response.status == 200
            async with http.get(f"{service.api_url}/ready") as response:
                body = await response.json()
                # no publisher configured: the bitcoin sources stand in as "the chain"
                assert response.status == 200, body
            async with http.get(f"{service.api_url}/v1/retargets/1") as response:
                body = await response.json()
                assert response.status == 200, body
                assert body["block_hash"] == record.block_hash_hex
            async with http.get(f"{service.api_url}/v1/index/14") as response:
                body = await response.json()
                assert response.status == 200, body
                assert str(expected.fixed) in str(body)
            async with http.get(f"{service.api_url}/metrics") as response:
                text = await response.text()
                assert "bme_oracle_last_agreed_epoch" in text


async def _agreed(service: Service, epoch: int):  # type: ignore[no-untyped-def]
    record = await service.repository.get_retarget("regtest", epoch)
    return record if record is not None and record.status in {"agreed", "published"} else None
