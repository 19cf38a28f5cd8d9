"""The HTTP API on a real TCP port over a real repository (Postgres and SQLite) of mainnet data.

Every endpoint and every error status; values checked against independent
figures (DESIGN.md's BME checks, the fixed-point formula done by hand here,
mempool.space's published vector, the real headers that followed).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from oracle.api import ROUTES, build_app, start_api
from oracle.api.state import ApiState
from oracle.bitcoin.difficulty import DIFF1_TARGET, bits_to_target
from oracle.config import DatabaseConfig
from oracle.monitor.health import SourceHealth
from oracle.monitor.metrics import Metrics
from oracle.store.repository import Repository, open_repository
from tests.fixtures.postgres import BACKENDS, create_database, drop_database, sqlalchemy_url
from tests.integration.api_world import (
    HEADERS,
    NET,
    SECRET,
    VECTOR_NOW,
    CsvChain,
    SourceBoard,
    fill,
    make_context,
)
from tests.integration.test_store_data import retarget_headers


@dataclass
class World:
    repository: Repository
    chain: CsvChain
    board: SourceBoard
    metrics: Metrics
    client: aiohttp.ClientSession
    state: ApiState

    async def get(self, path: str, method: str = "GET") -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.client.request(method, path) as response:
            if response.content_type == "application/json":
                body: Any = await response.json()
            else:
                body = await response.text()
            return response.status, body, response


@pytest_asyncio.fixture(scope="module", params=BACKENDS)
async def world_module(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _store_templates: Any,
) -> AsyncIterator[World]:
    database = None
    if request.param == "sqlite":
        path = Path(tmp_path_factory.mktemp("api")) / "store.sqlite"
        shutil.copyfile(await _store_templates.sqlite_template(), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        database = await create_database(template=await _store_templates.postgres_template())
        url = sqlalchemy_url(database)
    repository = await open_repository(url)
    await fill(repository)
    chain, board, metrics = CsvChain(), SourceBoard(), Metrics(NET)
    context = make_context(repository, chain=chain, board=board, metrics=metrics)
    runner, port = await start_api(context, host="127.0.0.1", port=0)
    client = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}")
    assert context.state is not None
    try:
        yield World(repository, chain, board, metrics, client, context.state)
    finally:
        await client.close()
        await runner.cleanup()
        await repository.close()
        if database is not None:
            await drop_database(database)


@pytest.fixture
def world(world_module: World) -> World:
    """The shared world, reset: tip back at mempool's vector (the chain reading of the last
    test forgotten), every source healthy."""
    world_module.chain.tip_height = 830027
    world_module.chain.broken = False
    world_module.board.sources[:] = [SourceHealth("bitcoind", True), SourceHealth("esplora", True)]
    assert world_module.state.chain_status is not None
    world_module.state.chain_status.forget()
    return world_module


def _expected_fixed(epochs: list[int]) -> int:
    """DESIGN.md's fixed point, by hand: floor(sum S_i target_i 86400 10^22 / (T 2016 2^32 D1))."""
    total = 0
    for epoch in epochs:
        header = retarget_headers()[epoch]
        subsidy_sat = 2016 * (5_000_000_000 >> (header.height // 210_000))
        total += subsidy_sat * bits_to_target(header.bits)
    return total * 86400 * 10**22 // (len(epochs) * 2016 * 2**32 * DIFF1_TARGET)


def _assert_error(status: int, body: Any, expected: int, code: str | None = None) -> None:
    assert status == expected, body
    assert body["error"]["status"] == expected
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code


# -- monitoring endpoints ----------------------------------------------------------------------


async def test_health(world: World) -> None:
    status, body, _ = await world.get("/health")
    assert (status, body) == (200, {"status": "ok"})
    async with world.client.head("/health") as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_ready_when_database_sources_and_chain_answer(world: World) -> None:
    status, body, _ = await world.get("/ready")
    assert status == 200
    assert body["ready"] is True and body["reasons"] == []
    assert body["checks"]["sources"] == {
        "quorum": 2,
        "healthy": 2,
        "detail": [
            {"name": "bitcoind", "healthy": True, "reason": ""},
            {"name": "esplora", "healthy": True, "reason": ""},
        ],
    }


async def test_not_ready_below_quorum_or_without_chain(world: World) -> None:
    world.board.sources[1] = SourceHealth("esplora", False, "stale: last success 4000 s ago")
    world.chain.broken = True
    status, body, _ = await world.get("/ready")
    assert status == 503
    assert body["ready"] is False
    assert body["reasons"][0] == (
        "1 of 2 sources healthy, quorum is 2 (esplora: stale: last success 4000 s ago)"
    )
    assert body["reasons"][1].startswith("chain unreachable: HeightNotFound")
    assert body["checks"]["database"] is True and body["checks"]["chain"] is False


async def test_metrics_count_requests_by_route_template(world: World) -> None:
    await world.get("/v1/retargets/411")
    await world.get("/v1/retargets/nope")
    await world.get("/no/such/path")
    status, body, response = await world.get("/metrics")
    assert status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body)}
    samples = [
        s.labels for s in families["bme_oracle_api_requests"].samples if s.name.endswith("_total")
    ]
    assert {"route": "/v1/retargets/{epoch}", "method": "GET", "status": "200"} in samples
    assert {"route": "/v1/retargets/{epoch}", "method": "GET", "status": "400"} in samples
    assert {"route": "unmatched", "method": "GET", "status": "404"} in samples
    assert "bme_oracle_source_tip_lag_blocks" in families or "bme_oracle_info" in families


# -- retargets ---------------------------------------------------------------------------------


async def test_list_retargets_newest_first_with_paging(world: World) -> None:
    status, body, _ = await world.get("/v1/retargets")
    assert status == 200
    epochs = [r["epoch"] for r in body["retargets"]]
    assert epochs == list(range(413, 363, -1))
    assert body["next_before_epoch"] == 364
    status, page, _ = await world.get("/v1/retargets?limit=3&before_epoch=364")
    assert [r["epoch"] for r in page["retargets"]] == [363, 362, 361]
    status, tail, _ = await world.get("/v1/retargets?limit=10&before_epoch=5")
    assert [r["epoch"] for r in tail["retargets"]] == [4, 3, 2, 1, 0]
    assert tail["next_before_epoch"] is None
    by_epoch = {r["epoch"]: r for r in body["retargets"]}
    # sources-api.md: 828576 = first block of epoch 411, bits 1703ba5d, difficulty 75502165623893.72
    assert by_epoch[411]["bits"] == "1703ba5d"
    assert by_epoch[411]["height"] == 828576
    assert by_epoch[411]["time"] == 1706888526
    assert by_epoch[411]["difficulty"].startswith("75502165623893.7")
    assert by_epoch[411]["status"] == "published"
    assert by_epoch[413]["status"] == "agreed"


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=abc", "limit=-1", "limit=1.5", "before_epoch=x", "limit="],
)
async def test_list_retargets_rejects_bad_parameters(world: World, query: str) -> None:
    status, body, _ = await world.get(f"/v1/retargets?{query}")
    _assert_error(status, body, 400, "bad_parameter")


async def test_retarget_detail_with_every_observation(world: World) -> None:
    status, body, _ = await world.get("/v1/retargets/412")
    assert status == 200
    header = retarget_headers()[412]
    assert body["block_hash"] == header.block_hash_hex
    assert body["header_hex"] == header.raw.hex()
    by_source = {o["source"]: o for o in body["observations"]}
    assert set(by_source) == {"bitcoind", "esplora", "liar", "blockchain_com"}
    assert by_source["bitcoind"]["block_hash"] == header.block_hash_hex
    assert by_source["liar"]["block_hash"] != header.block_hash_hex
    failure = by_source["blockchain_com"]
    assert failure["ok"] is False and failure["error_kind"] == "timeout"
    assert SECRET not in failure["error_message"]
    assert "http://***@127.0.0.1:9/q" in failure["error_message"]
    assert [i["n_days"] for i in body["indices"]] == [14, 28]
    assert body["indices"][0]["value_fixed"] == str(_expected_fixed([412]))
    assert body["indices"][1]["value_fixed"] == str(_expected_fixed([411, 412]))


async def test_retarget_detail_shows_publications_and_orphans(world: World) -> None:
    status, published, _ = await world.get("/v1/retargets/411")
    assert published["status"] == "published"
    assert published["publications"] == [
        {
            "chain_id": 31337,
            "contract_address": "0x" + "ab" * 20,
            "tx_hash": f"0x{411:064x}",
            "block_hash": retarget_headers()[411].block_hash_hex,
            "published_at": published["published_at"],
        }
    ]
    status, reorged, _ = await world.get("/v1/retargets/413")
    assert (status, reorged["status"]) == (200, "agreed")
    assert [
        (b["status"], b["block_hash"] != reorged["block_hash"]) for b in reorged["other_blocks"]
    ] == [("orphaned", True)]


@pytest.mark.parametrize("epoch", ["-1", "abc", "1e3", "4.0", "9999999999", "%20"])
async def test_retarget_bad_epoch_is_400(world: World, epoch: str) -> None:
    status, body, _ = await world.get(f"/v1/retargets/{epoch}")
    _assert_error(status, body, 400, "bad_parameter")


async def test_retarget_missing_epoch_is_404(world: World) -> None:
    status, body, _ = await world.get("/v1/retargets/414")
    _assert_error(status, body, 404, "not_found")


# -- index -------------------------------------------------------------------------------------


async def test_index_latest_is_the_stored_value(world: World) -> None:
    status, body, _ = await world.get("/v1/index/14")
    assert status == 200
    assert (body["epoch"], body["height"], body["status"]) == (413, 832608, "agreed")
    assert body["stored"] is True and body["at"] is None
    assert body["value_fixed"] == str(_expected_fixed([413]))
    numerator, denominator = (int(x) for x in body["value_exact"].split("/"))
    assert numerator * 10**18 // denominator == int(body["value_fixed"])
    whole, places = divmod(numerator * 10**30 // denominator, 10**30)
    assert body["value"] == f"{whole}.{places:030d}"  # truncated, 30 places
    status, body84, _ = await world.get("/v1/index/84")
    assert body84["stored"] is False  # not stored: computed from agreed history
    assert body84["value_fixed"] == str(_expected_fixed(list(range(408, 414))))


async def test_index_at_time_matches_design_checks(world: World) -> None:
    t_572544 = retarget_headers()[284].time
    status, body, _ = await world.get(f"/v1/index/14?at={t_572544}")
    assert (status, body["epoch"], body["value_scientific"]) == (200, 284, "3.958E-05")
    assert body["at"] == t_572544 and body["stored"] is False
    status, before, _ = await world.get(f"/v1/index/14?at={t_572544 - 1}")
    assert before["epoch"] == 283
    t_574560 = retarget_headers()[285].time
    status, bme28, _ = await world.get(f"/v1/index/28?at={t_574560}")
    assert (bme28["epoch"], bme28["value_scientific"]) == (285, "3.855E-05")
    assert bme28["value_fixed"] == str(_expected_fixed([284, 285]))
    status, stored, _ = await world.get(f"/v1/index/28?at={retarget_headers()[350].time + 60}")
    assert (stored["epoch"], stored["stored"]) == (350, True)
    assert stored["value_fixed"] == str(_expected_fixed([349, 350]))
    status, genesis, _ = await world.get("/v1/index/14?at=1231006505")
    assert (status, genesis["epoch"]) == (200, 0)


@pytest.mark.parametrize("n", ["15", "0", "-14", "abc", "14.0", "28e0", "14000014", "%2014"])
async def test_index_bad_n_is_400(world: World, n: str) -> None:
    status, body, _ = await world.get(f"/v1/index/{n}")
    _assert_error(status, body, 400, "bad_parameter")


@pytest.mark.parametrize("at", ["1.5", "abc", "", "1e9", "0x10", "99999999999999999999"])
async def test_index_non_integer_at_is_400(world: World, at: str) -> None:
    status, body, _ = await world.get(f"/v1/index/14?at={at}")
    _assert_error(status, body, 400, "bad_parameter")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/index/14?at=-5",  # before the genesis block
        "/v1/index/28?at=1231006505",  # BME28 at epoch 0 needs epoch -1
        "/v1/index/140000",  # 10,000 epochs: more than exist
    ],
)
async def test_index_unavailable_is_404(world: World, path: str) -> None:
    status, body, _ = await world.get(path)
    _assert_error(status, body, 404, "not_found")


# -- status ------------------------------------------------------------------------------------


async def test_status_reproduces_mempool_vector(world: World) -> None:
    status, body, _ = await world.get("/v1/status")
    assert status == 200
    assert body["now"] == VECTOR_NOW
    assert body["tip"] == {"height": 830027, "time": HEADERS[830027][0]}
    assert (body["epoch"], body["blocks_in_epoch"]) == (411, 1451)
    assert body["progress_percent"] == 71.97420634920636
    assert body["remaining_blocks"] == 565
    assert body["next_retarget_height"] == 830592
    assert body["epoch_start_time"] == 1706888526
    assert body["time_avg_ms"] == 553311
    assert body["remaining_time_ms"] == 312620715
    assert body["estimated_retarget_time_ms"] == 1708004001715
    assert body["difficulty_change_percent"] == pytest.approx(8.512745140778843, rel=1e-14)
    assert body["previous_retarget_percent_exact"] == "1791700/244317"
    assert body["current_bits"] == "1703ba5d"
    assert body["locked_in"] is False and body["next_bits"] is None
    assert body["projected_bme14"]["epoch"] == 412
    assert body["oracle"] == {"latest_epoch": 413, "latest_status": "agreed"}


async def test_status_follows_the_tip(world: World) -> None:
    """One chain reading per tip, and no stale epoch state: when the daemon learns of a new
    tip (last block, next epoch, a reorg back) the reading is redone and the answer follows."""
    chain_status = world.state.chain_status
    assert chain_status is not None

    async def at_tip(height: int) -> Any:
        world.chain.tip_height = height
        await chain_status.refresh()  # what the daemon's note_tip starts
        return await world.get("/v1/status")

    status, locked, _ = await at_tip(830591)
    assert locked["locked_in"] is True
    assert locked["next_bits"] == f"{HEADERS[830592][1]:08x}"  # the bits block 830592 carried
    # the last recorded header: first block of epoch 412
    status, early, _ = await at_tip(830592)
    assert (early["epoch"], early["blocks_in_epoch"]) == (412, 0)
    assert early["sliding_window"] is True
    assert early["epoch_start_time"] == HEADERS[830592][0]
    assert early["current_bits"] == locked["next_bits"]
    # A "reorg" back below the retarget: the old epoch is back at once.
    status, back, _ = await at_tip(830000)
    assert (status, back["epoch"], back["epoch_start_time"]) == (200, 411, 1706888526)


async def test_status_without_chain_is_503(world: World) -> None:
    world.chain.broken = True
    status, body, _ = await world.get("/v1/status")
    _assert_error(status, body, 503, "chain_unavailable")


async def test_status_with_no_chain_configured_is_503(world: World) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    app = build_app(make_context(world.repository, chain=None))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/status")
        _assert_error(response.status, await response.json(), 503, "chain_unavailable")


# -- disagreements -----------------------------------------------------------------------------


async def test_disagreements(world: World) -> None:
    status, body, _ = await world.get("/v1/disagreements")
    assert status == 200
    [row] = body["disagreements"]
    header = retarget_headers()[412]
    assert (row["epoch"], row["kind"], row["field"]) == (412, "field", "block_hash")
    assert row["claims"]["bitcoind"] == header.block_hash_hex
    status, none, _ = await world.get("/v1/disagreements?epoch=411")
    assert none["disagreements"] == []
    status, none, _ = await world.get("/v1/disagreements?kind=conflicting_attestation")
    assert none["disagreements"] == []
    status, one, _ = await world.get("/v1/disagreements?kind=field&epoch=412&limit=1")
    assert len(one["disagreements"]) == 1


@pytest.mark.parametrize("query", ["kind=nope", "epoch=-1", "limit=0", "epoch=x"])
async def test_disagreements_bad_parameters(world: World, query: str) -> None:
    status, body, _ = await world.get(f"/v1/disagreements?{query}")
    _assert_error(status, body, 400, "bad_parameter")


# -- methods, unknown paths, openapi, secrets --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/retargets"),
        ("PUT", "/health"),
        ("DELETE", "/v1/index/14"),
        ("PATCH", "/ready"),
    ],
)
async def test_read_only_other_methods_are_405(world: World, method: str, path: str) -> None:
    status, body, response = await world.get(path, method)
    _assert_error(status, body, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


async def test_unknown_path_is_json_404(world: World) -> None:
    status, body, _ = await world.get("/v2/everything")
    _assert_error(status, body, 404, "not_found")


async def test_openapi_document_lists_exactly_the_routed_endpoints(world: World) -> None:
    status, document, _ = await world.get("/openapi.json")
    assert status == 200
    app = build_app(make_context(world.repository, chain=world.chain))
    routed = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert routed == documented
    assert {path for path in document["paths"]} == {route.path for route in ROUTES}
    for path, item in document["paths"].items():
        path_params = {p["name"] for p in item["get"].get("parameters", []) if p["in"] == "path"}
        assert path_params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
    schemas = document["components"]["schemas"]
    for item in document["paths"].values():
        for response in item["get"]["responses"].values():
            for media in response.get("content", {}).values():  # a 304 has no body
                ref = media["schema"].get("$ref")
                assert ref is None or ref.rsplit("/", 1)[1] in schemas


async def test_no_answer_contains_a_secret(world: World) -> None:
    paths = [route.path.replace("{epoch}", "412").replace("{n}", "14") for route in ROUTES]
    for path in paths:
        async with world.client.get(path) as response:
            assert SECRET not in await response.text(), path


async def test_database_down_is_503_not_500() -> None:
    """A store that cannot be reached answers 503 promptly (no hang, no 500)."""
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    repository = await open_repository(
        url, DatabaseConfig(url=url, connect_timeout_s=0.5, write_retry_s=0.2), check_schema=False
    )
    try:
        runner, port = await start_api(
            make_context(repository, chain=CsvChain(), request_timeout_s=5.0),
            host="127.0.0.1",
            port=0,
        )
        try:
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
                for path in (
                    "/v1/retargets",
                    "/v1/retargets/1",
                    "/v1/index/14",
                    "/v1/disagreements",
                ):
                    async with client.get(path) as response:
                        body = await response.json()
                        _assert_error(response.status, body, 503)
                async with client.get("/ready") as response:
                    body = await response.json()
                    assert response.status == 503
                    assert body["reasons"][0].startswith("database unreachable")
                async with client.get("/health") as response:
                    assert response.status == 200
        finally:
            await runner.cleanup()
    finally:
        await repository.close()


# -- failure paths and extension ---------------------------------------------------------------


async def test_added_route_is_served_and_documented_and_bugs_are_opaque_500s(world: World) -> None:
    """Adding an endpoint is one Route; an unexpected exception is a JSON 500 without details."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from oracle.api import Route

    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError(f"bug that mentions {SECRET}")

    routes = (*ROUTES, Route("/v1/boom", boom, "boom", "Always fails", "Health", errors=(500,)))
    app = build_app(make_context(world.repository, chain=world.chain), routes)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/boom")
        body = await response.json()
        _assert_error(response.status, body, 500, "internal_error")
        assert SECRET not in await response.text()
        document = await (await client.get("/openapi.json")).json()
        assert "/v1/boom" in document["paths"]


async def test_readiness_that_raises_is_a_503_with_a_reason(world: World) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    context = make_context(world.repository, chain=world.chain)

    async def broken() -> Any:
        raise RuntimeError("probe crashed")

    app = build_app(dataclasses.replace(context, readiness=broken))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/ready")
        body = await response.json()
        assert response.status == 503
        assert body["ready"] is False
        assert body["reasons"] == ["readiness check failed: RuntimeError"]


async def test_slow_chain_is_answered_with_503_not_a_hang(world: World) -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    class SlowChain(CsvChain):
        async def tip(self) -> tuple[int, int]:
            await asyncio.sleep(5)
            return await super().tip()

    app = build_app(make_context(world.repository, chain=SlowChain(), request_timeout_s=0.2))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/status")
        _assert_error(response.status, await response.json(), 503, "timeout")


async def test_status_rereads_when_a_block_arrives_during_the_reads(world: World) -> None:
    """A new tip between the reads would mix two chains into one estimate: read again."""
    from aiohttp.test_utils import TestClient, TestServer

    class GrowingChain(CsvChain):
        def __init__(self, tip_height: int, grow_times: int) -> None:
            super().__init__(tip_height=tip_height)
            self.grow_times = grow_times

        async def tip(self) -> tuple[int, int]:
            answer = await super().tip()
            if self.grow_times:  # the next tip() sees one more block
                self.grow_times -= 1
                self.tip_height += 1
            return answer

    once = build_app(make_context(world.repository, chain=GrowingChain(830027, grow_times=1)))
    async with TestClient(TestServer(once)) as client:
        response = await client.get("/v1/status")
        body = await response.json()
        assert response.status == 200
        assert body["tip"]["height"] == 830028  # the settled tip, read consistently
    always = build_app(make_context(world.repository, chain=GrowingChain(830027, grow_times=100)))
    async with TestClient(TestServer(always)) as client:
        response = await client.get("/v1/status")
        _assert_error(response.status, await response.json(), 503, "chain_moving")
