"""The API answers from memory: the snapshot follows the pipeline, queries match the pure math,
answers are cacheable, and backends are asked a bounded number of times.

Real parts throughout: the daemon's own wiring (``build_components`` + ``build_api``)
over a real SQLite store of the mainnet retargets; the bundled checkpoints as
the source a real watcher and pipeline agree new epochs from; an Esplora
adapter talking HTTP to a local server that serves real mainnet headers (the
only way public block APIs can be reached here). Expected values come from
``oracle.index`` computed independently per query.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from oracle.api.views import DIFFICULTY_POINT_FIELDS, INDEX_POINT_FIELDS
from oracle.bitcoin.difficulty import bits_to_target
from oracle.config import (
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    DatabaseConfig,
    NetworkConfig,
    RestSourceConfig,
)
from oracle.index.bme import EpochTarget, bme_series, epoch_at_time
from oracle.index.lookup import bme_at_epoch
from oracle.sources.checkpoints import CheckpointSource, mainnet_checkpoints
from oracle.store.records import AgreedInput
from oracle.store.repository import open_repository
from oracle.wiring import Components, build_api, build_components
from tests.fixtures.restreplay import ReplayServer, mainnet_esplora_routes
from tests.integration.api_world import NET, fill
from tests.integration.test_store_data import retarget_headers

HISTORY = [EpochTarget.from_bits(e, h.bits, h.time) for e, h in sorted(retarget_headers().items())]
TIMES = [t.time for t in HISTORY]


async def _store(tmp_path: Path, templates: Any) -> str:
    path = tmp_path / "store.sqlite"
    shutil.copyfile(await templates.sqlite_template(), path)
    return f"sqlite+aiosqlite:///{path}"


def _config(url: str, **extra: Any) -> Config:
    return Config(
        network=NetworkConfig("mainnet"),
        database=DatabaseConfig(url=url),
        bitcoind=BitcoindConfig(enabled=False),
        crosscheck=CrossCheckConfig(quorum=1, confirmations=6),
        **extra,
    )


async def _get(client: TestClient, path: str, **headers: str) -> tuple[int, Any, Any]:
    async with client.get(path, headers=headers) as response:
        if response.content_type == "application/json":
            return response.status, await response.json(), response
        return response.status, await response.read(), response


@pytest_asyncio.fixture(scope="module")
async def world_url(tmp_path_factory: pytest.TempPathFactory, _store_templates: Any) -> str:
    """The API tests' store (every mainnet retarget, index values, a dispute, an orphan)."""
    url = await _store(tmp_path_factory.mktemp("snapshot"), _store_templates)
    repository = await open_repository(url)
    try:
        await fill(repository)
    finally:
        await repository.close()
    return url


@pytest_asyncio.fixture(scope="module")
async def daemon(world_url: str) -> AsyncIterator[tuple[Components, TestClient]]:
    """The daemon's API wiring over that store, the checkpoints as its (idle) source."""
    components = await build_components(
        _config(world_url), sources=[CheckpointSource()], publish=False
    )
    client = TestClient(TestServer(build_api(components)))
    await client.start_server()
    try:
        yield components, client
    finally:
        await client.close()
        await components.close()


# -- the snapshot follows the pipeline -------------------------------------------------------


async def test_pipeline_events_refresh_what_the_api_serves(
    tmp_path: Path, _store_templates: Any
) -> None:
    url = await _store(tmp_path, _store_templates)
    checkpoints = mainnet_checkpoints()
    repository = await open_repository(url)
    try:  # history up to epoch 400, as a daemon would have stored it
        await repository.record_agreed_many(
            NET,
            [
                AgreedInput(
                    e,
                    e * 2016,
                    checkpoints[e * 2016].block_hash_hex,
                    checkpoints[e * 2016].bits,
                    checkpoints[e * 2016].time,
                    checkpoints[e * 2016].raw,
                    ("checkpoints",),
                )
                for e in range(401)
            ],
        )
    finally:
        await repository.close()
    source = CheckpointSource()
    components = await build_components(_config(url), sources=[source], publish=False)
    async with TestClient(TestServer(build_api(components))) as client:
        try:
            status, before, response = await _get(client, "/v1/retargets?limit=3")
            assert status == 200 and [r["epoch"] for r in before["retargets"]] == [400, 399, 398]
            old_etag = response.headers["ETag"]
            status, body, _ = await _get(client, "/v1/index/14")
            assert (status, body["epoch"], body["stored"]) == (200, 400, False)
            # The watcher sees the checkpoints' tip (878,976); the pipeline stores epochs
            # 401..436 (414..436 from their retarget header alone: the [1/4, 4] bound).
            events = await components.watcher.handle_tips([await source.tip()])
            assert len(events) == 36
            state = components.api
            assert state is not None
            with state.deferring():  # as during the daemon's pass: no rebuild yet
                for event in events[:6]:
                    await components.pipeline.handle(event)
                status, during, _ = await _get(client, "/v1/retargets?limit=1")
                assert [r["epoch"] for r in during["retargets"]] == [400]
            status, between, _ = await _get(client, "/v1/retargets?limit=1")
            assert [r["epoch"] for r in between["retargets"]] == [406]  # rebuilt after it
            for event in events[6:]:
                await components.pipeline.handle(event)
            # The next request already sees them (it waits for the rebuild in flight).
            status, after, response = await _get(client, "/v1/retargets?limit=3")
            assert [r["epoch"] for r in after["retargets"]] == [436, 435, 434]
            assert response.headers["ETag"] != old_etag
            status, body, _ = await _get(client, "/v1/index/14")
            assert (body["epoch"], body["stored"]) == (436, True)  # the index stage's value
            status, detail, _ = await _get(client, "/v1/retargets/413")
            assert [o["source"] for o in detail["observations"]] == ["checkpoints"]
            assert [i["n_days"] for i in detail["indices"]] == [14, 28, 84]
            assert state.refreshes <= 1 + len(events)
        finally:
            await components.close()


async def test_an_unchanged_store_keeps_the_snapshot(
    daemon: tuple[Components, TestClient],
) -> None:
    """The periodic rebuild asks the store's marker first: nothing changed, nothing rebuilt."""
    components, client = daemon
    state = components.api
    assert state is not None
    before = await state.snapshot()
    state.data_changed()
    assert await state.settled() is before
    await _get(client, "/v1/retargets")
    assert await state.snapshot() is before


# -- queries answered from the arrays, equal to the pure computation ----------------------------


async def test_index_at_any_time_equals_the_pure_computation(
    daemon: tuple[Components, TestClient],
) -> None:
    _, client = daemon
    rng = random.Random(414)
    times = [TIMES[0] - 1, TIMES[0], TIMES[-1], TIMES[-1] + 10**6]
    times += [t + d for t in rng.sample(TIMES, 40) for d in (-1, 0, 1)]
    times += [rng.randint(TIMES[0], TIMES[-1]) for _ in range(40)]
    for n_days in (14, 28, 56, 84, 168, 700):
        for at in times:
            status, body, _ = await _get(client, f"/v1/index/{n_days}?at={at}")
            try:
                epoch = epoch_at_time(HISTORY, at)
                expected = bme_at_epoch(n_days, epoch, HISTORY)
            except Exception:  # the pure path says "unavailable": the API says 404
                assert status == 404, (n_days, at, body)
                continue
            assert status == 200, (n_days, at, body)
            assert (body["epoch"], body["at"], body["n_days"]) == (epoch, at, n_days)
            assert body["value_fixed"] == str(expected.fixed)
            assert body["value_exact"] == f"{expected.value.numerator}/{expected.value.denominator}"
            # The fill stored BME14/28 from epoch 300 on: those are served as stored.
            assert body["stored"] is (n_days in (14, 28) and epoch >= 300)


async def test_history_from_to_equals_the_pure_series(
    daemon: tuple[Components, TestClient],
) -> None:
    _, client = daemon
    rng = random.Random(84)
    ranges: list[tuple[int | None, int | None]] = [(None, None), (TIMES[300], None)]
    ranges += [(None, TIMES[10] - 1), (TIMES[5], TIMES[5]), (TIMES[200], TIMES[100])]
    for _ in range(8):
        start, end = sorted(rng.sample(range(TIMES[0] - 10**6, TIMES[-1] + 10**6), 2))
        ranges.append((start, end))  # from after to (200 -> 100 above): no points
    for n_days in (14, 84, 168):
        series = bme_series(n_days, HISTORY)
        for start, end in ranges:
            query = "&".join(
                f"{name}={value}"
                for name, value in (("from", start), ("to", end))
                if value is not None
            )
            status, body, _ = await _get(client, f"/v1/index/{n_days}/history?{query}")
            assert status == 200, body
            assert (body["from"], body["to"], body["n_days"]) == (start, end, n_days)
            first = 0 if start is None or start < TIMES[0] else epoch_at_time(HISTORY, start)
            last = 413 if end is None else (epoch_at_time(HISTORY, end) if end >= TIMES[0] else -1)
            expected = [series[e] for e in range(first, last + 1) if e in series]
            assert [p["epoch"] for p in body["points"]] == [v.epoch for v in expected]
            assert [p["value_fixed"] for p in body["points"]] == [str(v.fixed) for v in expected]
            for point in body["points"]:
                assert (point["height"], point["time"]) == (
                    point["epoch"] * 2016,
                    TIMES[point["epoch"]],
                )


async def test_difficulty_history_json_and_csv(daemon: tuple[Components, TestClient]) -> None:
    _, client = daemon
    status, body, _ = await _get(client, f"/v1/difficulty/history?from={TIMES[400]}")
    assert status == 200
    assert [p["epoch"] for p in body["points"]] == list(range(400, 414))
    headers = retarget_headers()
    for point in body["points"]:
        header = headers[point["epoch"]]
        assert point["bits"] == f"{header.bits:08x}"
        whole = (0xFFFF << 208) // bits_to_target(header.bits)
        assert point["difficulty"].startswith(f"{whole}.")
    status, raw, response = await _get(
        client, f"/v1/difficulty/history?from={TIMES[400]}&format=csv"
    )
    assert status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = raw.decode()
    assert text.endswith("\r\n") and text.count("\r\n") == 15  # header + 14 rows, CRLF
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(DIFFICULTY_POINT_FIELDS)
    assert rows == [{k: str(v) for k, v in p.items()} for p in body["points"]]


async def test_index_history_csv_has_the_json_points(daemon: tuple[Components, TestClient]) -> None:
    _, client = daemon
    query = f"from={TIMES[350]}&to={TIMES[360] + 5}"
    status, body, _ = await _get(client, f"/v1/index/84/history?{query}")
    status, raw, response = await _get(client, f"/v1/index/84/history?{query}&format=csv")
    assert status == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert tuple(rows[0]) == INDEX_POINT_FIELDS
    assert [r["epoch"] for r in rows] == [str(e) for e in range(350, 361)]
    assert rows == [{k: str(v) for k, v in p.items()} for p in body["points"]]
    status, body, _ = await _get(client, "/v1/index/84/history?format=xml")
    assert (status, body["error"]["code"]) == (400, "bad_parameter")
    status, body, _ = await _get(client, "/v1/index/84/history?from=soon")
    assert (status, body["error"]["code"]) == (400, "bad_parameter")
    status, body, _ = await _get(client, "/v1/index/84/history?format=")
    assert (status, body["error"]["code"]) == (400, "bad_parameter")


@pytest.mark.parametrize(
    "query",
    [
        "/v1/retargets?limit=5&limit=500",
        "/v1/index/14?at=1&at=2",
        "/v1/index/14/history?format=csv&format=json",
        "/v1/difficulty/history?from=1&from=2",
        "/v1/disagreements?kind=field&kind=conflicting_attestation",
    ],
)
async def test_a_parameter_given_twice_is_refused(
    daemon: tuple[Components, TestClient], query: str
) -> None:
    """Ambiguous, so a 400 rather than a silent choice of one of the values."""
    _, client = daemon
    status, body, _ = await _get(client, query)
    assert (status, body["error"]["code"]) == (400, "bad_parameter"), body


# -- HTTP caching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/retargets",
        "/v1/retargets?limit=7&before_epoch=300",
        "/v1/retargets/412",
        "/v1/index/84",
        "/v1/index/28?at=1700000000",
        "/v1/index/14/history",
        "/v1/difficulty/history?format=csv",
        "/v1/disagreements",
        "/openapi.json",
    ],
)
async def test_etag_and_not_modified(daemon: tuple[Components, TestClient], path: str) -> None:
    _, client = daemon
    status, _, response = await _get(client, path)
    assert status == 200
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    assert response.headers["Cache-Control"] == "public, max-age=5"
    async with client.get(path, headers={"If-None-Match": etag}) as again:
        assert again.status == 304
        assert await again.read() == b""
        assert again.headers["ETag"] == etag
    async with client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}) as weak:
        assert weak.status == 304
    async with client.get(path, headers={"If-None-Match": '"other"'}) as changed:
        assert changed.status == 200 and await changed.read()


async def test_monitoring_answers_are_not_cached(daemon: tuple[Components, TestClient]) -> None:
    _, client = daemon
    for path in ("/health", "/ready", "/metrics"):
        async with client.get(path) as response:
            assert response.headers["Cache-Control"] == "no-cache", path


# -- bounded backend calls --------------------------------------------------------------------


@pytest_asyncio.fixture
async def esplora() -> AsyncIterator[ReplayServer]:
    """A local Esplora serving real mainnet headers; tip at mempool's vector (830027)."""
    server = ReplayServer(kind="esplora", tip_height=830027)
    server.routes.update(mainnet_esplora_routes())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_status_and_ready_cost_a_bounded_number_of_backend_calls(
    world_url: str, esplora: ReplayServer
) -> None:
    """Public block APIs alone (no bitcoind): /v1/status works, and 300 concurrent requests of
    /v1/status and of /ready cost a handful of HTTP requests to the API and database pings."""
    source = RestSourceConfig(
        name="esplora", kind="esplora", base_url=esplora.url, rate_limit_per_s=200.0
    )
    components = await build_components(
        _config(world_url, sources=(source,)), publish=False, record_health=False
    )
    pings = 0
    ping = components.repository.ping

    async def counted_ping() -> None:
        nonlocal pings
        pings += 1
        await ping()

    components.repository.ping = counted_ping  # type: ignore[method-assign]
    try:
        async with TestClient(TestServer(build_api(components))) as client:
            state = components.api
            assert state is not None and state.chain_status is not None
            esplora.requests.clear()
            answers = await asyncio.gather(*(_get(client, "/v1/status") for _ in range(300)))
            assert {status for status, _, _ in answers} == {200}
            assert {body["tip"]["height"] for _, body, _ in answers} == {830027}
            assert answers[0][1]["epoch"] == 411 and answers[0][1]["current_bits"] == "1703ba5d"
            # One reading: the tip twice (begin, end) and its header; the epoch starts
            # come from the store. Each is two Esplora requests.
            assert len(esplora.requests) <= 6, esplora.requests
            assert state.chain_status.readings == 1

            esplora.requests.clear()
            answers = await asyncio.gather(*(_get(client, "/ready") for _ in range(300)))
            assert {status for status, _, _ in answers} <= {200, 503}
            assert all(body["checks"]["database"] for _, body, _ in answers)
            assert all(body["checks"]["chain"] for _, body, _ in answers)
            tip_reads = [p for p in esplora.requests if p == "/blocks/tip/hash"]
            assert len(tip_reads) <= 1 and pings <= 1, (esplora.requests, pings)

            # A new block: the daemon notes the tip; one more reading, whoever asks.
            esplora.tip_height = 830028
            esplora.requests.clear()
            state.note_tip(830028, esplora.hash_at(830028))
            await state.chain_status.refresh()
            answers = await asyncio.gather(*(_get(client, "/v1/status") for _ in range(300)))
            assert {body["tip"]["height"] for _, body, _ in answers} == {830028}
            assert len(esplora.requests) <= 6, esplora.requests
            assert state.chain_status.readings == 2
    finally:
        await components.close()
