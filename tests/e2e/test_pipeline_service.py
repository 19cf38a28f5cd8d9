"""The daemon (`Service`) in-process against two real regtest nodes and real Postgres.

Two peered regtest nodes are two independent RPC sources, so quorum 2 is real.
"""

from __future__ import annotations

import aiohttp
import pytest

from oracle.index.bme import EpochTarget, bme
from oracle.service import Service
from tests.e2e.helpers import daemon_config, node_source, peered_nodes, running, wait_for
from tests.fixtures.bitcoind import NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.postgres]


async def test_retarget_agreed_by_two_sources_with_indices_and_api(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    a, b = peered_nodes(bitcoind_factory)
    config = daemon_config(pg_url, a, quorum=2, confirmations=3)
    service = Service(config, extra_sources=[node_source(b, "bitcoind-b")])
    async with running(service):
        a.mine(2016 + 3)

        async def agreed():  # type: ignore[no-untyped-def]
            record = await service.repository.get_retarget("regtest", 1)
            return record if record is not None and record.status == "agreed" else None

        record = await wait_for(agreed, what="epoch 1 agreed")
        header = bytes.fromhex(a.rpc("getblockheader", a.rpc("getblockhash", 2016), False))
        assert record.raw_header == header
        assert set(record.sources) == {"bitcoind", "bitcoind-b"}
        assert {o.source for o in record.observations} >= {"bitcoind", "bitcoind-b"}
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
