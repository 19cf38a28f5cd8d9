"""The dashboard at ``/`` over a real store of mainnet data, over HTTP and in headless Chromium.

The store holds every mainnet retarget 0..413 (``api_world.fill``) plus a
submission with a replaced transaction and a day of source-health samples; the
chain view is the recorded headers at mempool.space's vector. Over HTTP: the
page is HTML with every section, each chart has exactly one point per datum,
the figures equal the JSON API's, and a broken chain or readiness probe shows
as "unavailable" instead of failing the page. In a real headless Chromium
(Debian ``chromium``, DevTools protocol, ``tests/fixtures/chromium.py``): the
page renders with no console error or exception, requests nothing but itself,
draws every point inside its chart, and axe-core (pinned in scripts/setup)
finds no accessibility violation.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from oracle.api import build_app, start_api
from oracle.api.dashboard import INDEX_DAYS
from oracle.api.dashboard_page import DashboardData, render_dashboard
from oracle.api.openapi import build_document
from oracle.api.routes import ROUTES
from oracle.api.svgchart import HEIGHT, WIDTH
from oracle.config import DatabaseConfig
from oracle.index.bme import EpochTarget, bme_series
from oracle.store.repository import Repository, open_repository
from tests.fixtures.chromium import axe_source, launch_chromium
from tests.fixtures.postgres import BACKENDS, create_database, drop_database, sqlalchemy_url
from tests.integration.api_world import (
    CHAIN_ID,
    CONTRACT,
    NET,
    SECRET,
    VECTOR_NOW,
    CsvChain,
    fill,
    make_context,
)

ROOT = Path(__file__).resolve().parents[2]
#: The submission the world adds for a published epoch: a first attempt, then its replacement.
SUBMITTED_EPOCH = 411
FIRST_TX = "0x" + "aa" * 32
FINAL_TX = f"0x{SUBMITTED_EPOCH:064x}"  # the tx fill() recorded as the publication


@dataclass
class World:
    repository: Repository
    chain: CsvChain
    client: aiohttp.ClientSession
    base_url: str

    async def page(self) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.client.get("/") as response:
            return response.status, await response.text(), response


async def _add_submission_and_health(repository: Repository) -> None:
    submission = await repository.create_submission(
        CHAIN_ID,
        CONTRACT,
        SUBMITTED_EPOCH,
        ["0x" + "11" * 20],
        {"epoch": SUBMITTED_EPOCH},
        block_hash_hex="ab" * 32,
    )
    for nonce_fee, tx in ((30, FIRST_TX), (45, FINAL_TX)):
        await repository.add_submission_tx(
            submission,
            nonce=7,
            tx_hash=tx,
            raw_tx=bytes.fromhex("02f8") + tx.encode(),
            max_fee_per_gas=nonce_fee * 10**9,
            max_priority_fee_per_gas=2 * 10**9,
        )
        await repository.transition_submission(submission, "broadcast", tx_hash=tx)
    await repository.transition_submission(
        submission, "mined", receipt={"transactionHash": FINAL_TX, "gasUsed": 61_234, "status": 1}
    )
    await repository.transition_submission(submission, "confirmed", tx_hash=FINAL_TX)
    now = datetime.fromtimestamp(VECTOR_NOW, UTC)
    for minute in range(1, 13):
        at = now - timedelta(minutes=5 * minute)
        await repository.record_health("bitcoind", 3.5 + minute, True, at=at)
        failing = minute % 4 == 0
        await repository.record_health(
            "esplora", None if failing else 80.0, not failing, "timeout" if failing else None, at
        )
    await repository.record_health("blockchain_com", None, False, "http_5xx", at=now)


@pytest_asyncio.fixture(scope="module", params=BACKENDS)
async def world_module(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _store_templates: Any,
) -> AsyncIterator[World]:
    database = None
    if request.param == "sqlite":
        path = Path(tmp_path_factory.mktemp("dashboard")) / "store.sqlite"
        shutil.copyfile(await _store_templates.sqlite_template(), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        database = await create_database(template=await _store_templates.postgres_template())
        url = sqlalchemy_url(database)
    repository = await open_repository(url)
    await fill(repository)
    await _add_submission_and_health(repository)
    chain = CsvChain()
    runner, port = await start_api(make_context(repository, chain=chain), host="127.0.0.1", port=0)
    base_url = f"http://127.0.0.1:{port}"
    client = aiohttp.ClientSession(base_url=base_url)
    try:
        yield World(repository, chain, client, base_url)
    finally:
        await client.close()
        await runner.cleanup()
        await repository.close()
        if database is not None:
            await drop_database(database)


@pytest.fixture
def world(world_module: World) -> World:
    world_module.chain.tip_height = 830027
    world_module.chain.broken = False
    return world_module


class _PointCounter(HTMLParser):
    """Counts ``<circle data-point>`` per ``data-chart`` / ``data-series``, as a browser would."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self._chart = ""
        self._series = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-chart" in found:
            self._chart = found["data-chart"] or ""
        if "data-series" in found:
            self._series = found["data-series"] or ""
            self.counts.setdefault(f"{self._chart}/{self._series}", 0)
        if tag == "circle" and "data-point" in found:
            key = f"{self._chart}/{self._series}"
            self.counts[key] = self.counts.get(key, 0) + 1


async def expected_points(repository: Repository) -> dict[str, int]:
    """One point per datum: every agreed epoch's difficulty, every epoch with a BME_N."""
    history = await repository.agreed_history(NET)
    targets = [EpochTarget.from_bits(h.epoch, h.bits, h.time) for h in history]
    counts = {"difficulty/difficulty": len(history)}
    for n in INDEX_DAYS:
        counts[f"bme/bme{n}"] = len(bme_series(n, targets))
    return counts


# -- over HTTP ---------------------------------------------------------------------------------


async def test_page_is_html_with_every_section_and_one_point_per_datum(world: World) -> None:
    status, body, response = await world.page()
    assert status == 200
    assert response.content_type == "text/html" and response.charset == "utf-8"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    for heading in (
        "Epoch 411",
        "BME indices now",
        "Difficulty",
        "Sources' health",
        "Recent disagreements",
        "Publications",
    ):
        assert f">{heading}</h2>" in body, heading
    counter = _PointCounter()
    counter.feed(body)
    expected = await expected_points(world.repository)
    assert counter.counts == expected
    assert expected == {
        "difficulty/difficulty": 414,
        "bme/bme14": 414,
        "bme/bme28": 413,
        "bme/bme84": 409,
    }
    assert "<script" not in body and "http://" not in body and "https://" not in body
    assert SECRET not in body


async def test_figures_equal_the_json_api(world: World) -> None:
    _, body, _ = await world.page()
    async with world.client.get("/v1/status") as response:
        status = await response.json()
    assert f"Block {status['blocks_in_epoch']:,} of 2,016" in body
    assert f"{status['difficulty_change_percent']:+.2f} %" in body
    assert status["projected_bme14"]["value_scientific"] in body
    for n in INDEX_DAYS:
        async with world.client.get(f"/v1/index/{n}") as response:
            index = await response.json()
        card = re.search(rf"<h3>BME{n}</h3>(.*?)</div>", body)
        assert card is not None
        assert index["value_scientific"] in card[1]
        assert f"at epoch {index['epoch']}" in card[1]
        assert index["value_fixed"] in card[1]
    async with world.client.get("/v1/retargets/413") as response:
        latest = await response.json()
    whole, fraction = latest["difficulty"].split(".")
    assert f"Epoch 413: {int(whole):,}.{fraction[:2]} (bits {latest['bits']}" in body


async def test_tables_show_sources_disagreements_and_publications_with_transactions(
    world: World,
) -> None:
    _, body, _ = await world.page()
    sources = body[body.index('id="h-sources"') : body.index('id="h-disagreements"')]
    assert 'class="badge ok">ready</span>' in sources
    assert re.search(r'<th scope="row">esplora</th>.*?>12</td>.*?>9</td>.*?>3</td>', sources)
    assert "timeout: 3" in sources and "http_5xx: 1" in sources
    disagreements = body[body.index('id="h-disagreements"') : body.index('id="h-publications"')]
    assert '<th scope="row">412</th><td>field</td><td>block_hash</td>' in disagreements
    publications = body[body.index('id="h-publications"') :]
    assert publications.count('<th scope="row">') == 12  # the newest 12 published epochs
    row = re.search(rf'<th scope="row">{SUBMITTED_EPOCH}</th>(.*?)</tr>', publications)
    assert row is not None
    assert FINAL_TX in row[1] and FIRST_TX in row[1]
    assert "confirmed, 2 attempt(s)" in row[1]
    assert "gas used 61,234" in row[1] and "max fee 45.000 gwei" in row[1]
    assert "published by another node" in publications  # epoch 410: no submission stored


async def test_chain_trouble_shows_unavailable_instead_of_failing(world: World) -> None:
    world.chain.broken = True
    status, body, _ = await world.page()
    assert status == 200
    assert "Next-retarget estimate unavailable: cannot read the chain (HeightNotFound)" in body
    assert "Current epoch</h2>" in body and "BME indices now" in body
    context = make_context(world.repository, chain=None)

    async def broken_readiness() -> Any:
        raise RuntimeError(f"probe crashed near {SECRET}")

    app = build_app(dataclasses.replace(context, readiness=broken_readiness))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        body = await response.text()
    assert response.status == 200
    assert "estimate unavailable: this oracle has no chain connection" in body
    assert "Readiness unavailable: the readiness check failed (RuntimeError)" in body
    assert SECRET not in body


async def test_store_down_is_a_503_and_an_empty_store_an_empty_page() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    repository = await open_repository(
        url, DatabaseConfig(url=url, connect_timeout_s=0.5, write_retry_s=0.2), check_schema=False
    )
    try:
        app = build_app(make_context(repository, chain=CsvChain(), request_timeout_s=5.0))
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/")
            assert response.status == 503
            assert (await response.json())["error"]["status"] == 503
    finally:
        await repository.close()
    empty = DashboardData(
        network=NET,
        now=VECTOR_NOW,
        history=(),
        history_total=0,
        indices={n: () for n in INDEX_DAYS},
        estimate=None,
        estimate_error="no chain",
        readiness=None,
        readiness_error="no probe",
        source_health=(),
        health_since=VECTOR_NOW - 86400,
        disagreements=(),
        publications=(),
    )
    page = render_dashboard(empty)
    assert "data-point" not in page and page.count("No data yet.") == 2
    assert "No agreed retarget stored yet." in page and "Nothing published yet." in page
    assert "No disagreement recorded." in page and "Not enough agreed epochs yet." in page


async def test_openapi_documents_the_page_as_html() -> None:
    operation = build_document(ROUTES)["paths"]["/"]["get"]
    assert operation["operationId"] == "dashboard"
    assert list(operation["responses"]["200"]["content"]) == ["text/html"]
    assert set(operation["responses"]) == {"200", "503"}


# -- in a real browser -------------------------------------------------------------------------

_COUNT_POINTS = """(() => {
  const counts = {}, outside = [];
  for (const figure of document.querySelectorAll('figure[data-chart]')) {
    const svg = figure.querySelector('svg');
    const box = svg.getBoundingClientRect();
    for (const series of figure.querySelectorAll('g[data-series]')) {
      const key = figure.dataset.chart + '/' + series.dataset.series;
      const points = series.querySelectorAll('[data-point]');
      counts[key] = points.length;
      for (const p of points) {
        const r = p.getBoundingClientRect();
        if (r.width <= 0 || r.left < box.left - 1 || r.right > box.right + 1
            || r.top < box.top - 1 || r.bottom > box.bottom + 1) outside.push(key);
      }
    }
    const [, , w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
    counts['viewBox/' + figure.dataset.chart] = [w, h, box.width > 0 && box.height > 0];
  }
  return {counts, outside, scripts: document.scripts.length,
          images: document.images.length, title: document.title};
})()"""

_RUN_AXE = """axe.run(document, {resultTypes: ['violations']}).then(r => ({
  version: axe.version,
  violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})),
  passes: r.passes.length}))"""


def _pinned_axe_version() -> str:
    setup = (ROOT / "scripts" / "setup").read_text()
    found = re.search(r"^AXE_CORE_VERSION=(\S+)$", setup, re.MULTILINE)
    assert found is not None, "scripts/setup pins axe-core"
    return found[1]


def _console_problems(page: Any) -> list[str]:
    problems = [
        f"console.{e['type']}: {e.get('args')}"
        for e in page.events("Runtime.consoleAPICalled")
        if e["type"] in ("error", "assert", "warning")
    ]
    problems += [
        f"exception: {e['exceptionDetails']}" for e in page.events("Runtime.exceptionThrown")
    ]
    problems += [
        f"log {e['entry']['level']}: {e['entry'].get('text')} {e['entry'].get('url', '')}"
        for e in page.events("Log.entryAdded")
        if e["entry"]["level"] in ("error", "warning")
    ]
    return problems


@pytest.mark.parametrize("world_module", ["postgres"], indirect=True)
async def test_page_in_headless_chromium_draws_every_point_offline_and_passes_axe(
    world: World, tmp_path: Path
) -> None:
    expected = await expected_points(world.repository)
    axe = axe_source()
    _, body, _ = await world.page()
    (tmp_path / "dashboard.html").write_text(body)  # beside the screenshot, for a person to open
    async with launch_chromium(tmp_path) as browser:
        page = await browser.new_page()
        await page.navigate(f"{world.base_url}/")
        drawn = await page.evaluate(_COUNT_POINTS)

        counts = drawn["counts"]
        assert {k: v for k, v in counts.items() if "/" in k and "viewBox" not in k} == expected
        assert counts["viewBox/bme"] == counts["viewBox/difficulty"] == [WIDTH, HEIGHT, True]
        assert drawn["outside"] == []
        assert (drawn["scripts"], drawn["images"]) == (0, 0)
        assert drawn["title"] == f"bme-oracle dashboard · {NET}"

        requests = [e["request"]["url"] for e in page.events("Network.requestWillBeSent")]
        assert requests and requests[0] == f"{world.base_url}/"
        assert [u for u in requests if not u.startswith(f"{world.base_url}/")] == []

        metrics = await page.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await page.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                         "scale": 1},
            },
        )  # fmt: skip
        (tmp_path / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))

        # Audit the folded tables too, then run axe-core in the page.
        await page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        await page.evaluate(axe)
        audit = await page.evaluate(_RUN_AXE, await_promise=True)
        assert audit["version"] == _pinned_axe_version()
        assert audit["violations"] == []
        assert audit["passes"] > 10
        assert _console_problems(page) == []
