""" "Already on chain" names its transaction through an RPC that refuses wide log ranges.

Public EVM providers refuse ``eth_getLogs`` over more than 10,000 blocks (and some
refuse it altogether). A local aiohttp proxy in front of a real anvil behaves like
them; the chain has tens of thousands of blocks before and after the contract's
deployment (anvil's genesis is block 100,000: a long history without mining it
block by block). The publisher finds the deployment block once, reads the events in
bounded chunks, and a lookup that fails entirely is not a failure of the publication.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from oracle.bitcoin.header import parse_header
from oracle.publish.publisher import build_publisher
from oracle.store.repository import Repository
from tests.fixtures.anvil import KEYSTORE_PASSWORD, AnvilNode, ChainAccounts, OnChain
from tests.integration.test_txmanager import mainnet_checkpoint
from tests.integration.test_txmanager_publisher import (
    GENESIS,
    HEADERS,
    last_header,
    publisher_config,
)

pytestmark = pytest.mark.anvil

MAX_RANGE = 10_000


@dataclass
class RangeLimitedRpc:
    """JSON-RPC proxy to ``upstream`` refusing ``eth_getLogs`` wider than ``MAX_RANGE``
    blocks (or every ``eth_getLogs`` with ``refuse_logs``), as public providers do."""

    upstream: str
    refuse_logs: bool = False
    max_range: int = MAX_RANGE
    url: str = ""
    ranges: list[tuple[int, int]] = field(default_factory=list)
    refused: int = 0

    async def _block(self, session: aiohttp.ClientSession, tag: Any) -> int:
        if tag in (None, "latest", "pending", "safe", "finalized"):
            reply = await self._forward(
                session, {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}
            )
            return int(reply["result"], 16)
        return 0 if tag == "earliest" else int(tag, 16)

    async def _forward(self, session: aiohttp.ClientSession, call: Any) -> Any:
        async with session.post(self.upstream, json=call) as response:
            return await response.json(content_type=None)

    async def _answer(self, session: aiohttp.ClientSession, call: dict[str, Any]) -> Any:
        if call.get("method") == "eth_getLogs":
            query = call["params"][0]
            low = await self._block(session, query.get("fromBlock", "earliest"))
            high = await self._block(session, query.get("toBlock", "latest"))
            if self.refuse_logs or high - low + 1 > self.max_range:
                self.refused += 1
                return {
                    "jsonrpc": "2.0",
                    "id": call.get("id"),
                    "error": {"code": -32005, "message": "query exceeds max block range 10000"},
                }
            self.ranges.append((low, high))
        return await self._forward(session, call)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[RangeLimitedRpc]:
        async with aiohttp.ClientSession() as session:

            async def handle(request: web.Request) -> web.Response:
                body = json.loads(await request.read())
                if isinstance(body, list):
                    answer: Any = [await self._answer(session, call) for call in body]
                else:
                    answer = await self._answer(session, body)
                return web.json_response(answer)

            app = web.Application()
            app.router.add_post("/", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
            try:
                yield self
            finally:
                await runner.cleanup()


async def test_already_on_chain_is_found_in_chunks_from_the_deployment_block(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> None:
    node = anvil_factory(extra_args=("--number", "100000"))  # a long history already
    onchain = OnChain(node, test_accounts)
    oracle = await onchain.deploy(genesis=mainnet_checkpoint(GENESIS), threshold=2)
    config = publisher_config(node, test_accounts, oracle.address, KEYSTORE_PASSWORD)
    direct = await build_publisher(config, repository, poll_interval_s=0.05)
    try:
        landed = await direct.publish_epoch(410, HEADERS[410], last_header(410))
        assert landed.status == "confirmed" and landed.tx_hash is not None
    finally:
        await direct.close()
    node.call("anvil_mine", hex(350))  # blocks after the event
    block = parse_header(HEADERS[410]).block_hash_hex

    async with RangeLimitedRpc(node.url).serve() as proxy:
        limited = replace(config, publisher=replace(config.publisher, rpc_url=proxy.url))
        publisher = await build_publisher(limited, repository, poll_interval_s=0.05)
        try:
            assert await publisher.accepted_tx_hash(410, block) == landed.tx_hash
            deployed_at = await publisher.deployment_block()
            assert 100_000 < deployed_at < 100_010
            assert node.call("eth_getCode", oracle.address, hex(deployed_at)) != "0x"
            assert node.call("eth_getCode", oracle.address, hex(deployed_at - 1)) == "0x"
            again = await publisher.publish_epoch(410, HEADERS[410], last_header(410))
            assert (again.status, again.tx_hash) == ("already_on_chain", landed.tx_hash)
            assert await publisher.accepted_tx_hash(410, "00" * 32) is None
        finally:
            await publisher.close()
        assert proxy.refused == 0
        assert proxy.ranges and min(low for low, _ in proxy.ranges) == deployed_at

    # A provider with a narrower limit: the same lookup in many chunks, newest first.
    async with RangeLimitedRpc(node.url, max_range=100).serve() as proxy:
        narrow = replace(config, publisher=replace(config.publisher, rpc_url=proxy.url))
        publisher = await build_publisher(narrow, repository, poll_interval_s=0.05)
        publisher.log_chunk_blocks = 100
        try:
            assert await publisher.accepted_tx_hash(410, block) == landed.tx_hash
            assert await publisher.accepted_tx_hash(410, "00" * 32) is None
        finally:
            await publisher.close()
        assert proxy.refused == 0
        assert len(proxy.ranges) >= 8 and all(h - lo + 1 <= 100 for lo, h in proxy.ranges)
        assert min(low for low, _ in proxy.ranges) == deployed_at

    async with RangeLimitedRpc(node.url, refuse_logs=True).serve() as proxy:
        refusing = replace(config, publisher=replace(config.publisher, rpc_url=proxy.url))
        publisher = await build_publisher(refusing, repository, poll_interval_s=0.05)
        try:
            # No event can be read at all: the publication stands, without its tx hash.
            again = await publisher.publish_epoch(410, HEADERS[410], last_header(410))
            assert (again.status, again.tx_hash) == ("already_on_chain", None)
        finally:
            await publisher.close()
        assert proxy.refused >= 1
    await onchain.w3.provider.disconnect()
