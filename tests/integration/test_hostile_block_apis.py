"""Block APIs that redirect, echo or answer big: no redirect followed, nothing echoed, caps fit.

* A 3xx is refused as a typed error naming the status; the redirect target is
  never asked (a compromised API could otherwise point the node at internal hosts).
* The public API (``/v1/retargets/{epoch}``, ``/ready``, the dashboard) shows our
  own words about a failing source, never what the source sent.
* Every shipped configuration sets ``max_response_bytes`` on every block API,
  and blockchain.com's cap takes a realistic whole block: a ~4 MB answer in the
  real format (real header fields, thousands of transactions) goes through the
  real adapter under each shipped config's policy.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oracle.api import start_api
from oracle.config import RestSourceConfig, load
from oracle.errors import SourceError, SourceMalformed, SourceOversized
from oracle.monitor.health import SourceHealth
from oracle.sources.blockchain_com import BlockchainComSource
from oracle.sources.esplora import EsploraSource
from oracle.sources.rest import HttpPolicy
from oracle.sources.types import SourceFailure
from oracle.store.records import ObservationInput
from oracle.store.repository import open_repository
from tests.conftest import ROOT
from tests.fixtures.restreplay import Fault, html_page, mainnet_hashes, whole_block_body
from tests.integration.api_world import NET, CsvChain, SourceBoard, fill, make_context

HASHES = mainnet_hashes()
TIP = 832608
RETARGET = 830592  # epoch 412
FAST = HttpPolicy(connect_timeout_s=1.0, read_timeout_s=2.0, max_retries=0, rate_limit_per_s=0)
SHIPPED = sorted([*ROOT.glob("deploy/*.toml"), *ROOT.glob("config/*.toml")])
#: What a whole mainnet block answer from blockchain.com can reach: ~7 MB for a full
#: block, more with large witnesses, twice that with two blocks at the height.
REALISTIC_WHOLE_BLOCK = 16_000_000
Replay = Callable[..., Awaitable[Any]]


def make(
    kind: str, url: str, policy: HttpPolicy = FAST, name: str = "api"
) -> EsploraSource | BlockchainComSource:
    cls = EsploraSource if kind == "esplora" else BlockchainComSource
    return cls(name=name, base_url=url, policy=policy)


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("kind", ["esplora", "blockchain_com"])
async def test_redirects_are_refused_and_never_followed(
    replay: Replay, kind: str, status: int
) -> None:
    target = await replay(kind, tip_height=TIP)  # "internal host" that must not be asked
    server = await replay(
        kind,
        tip_height=TIP,
        faults=[Fault("redirect", status=status, location=f"{target.url}/internal/admin")],
    )
    source = make(kind, server.url)
    try:
        for call in (source.tip, lambda: source.header_at(RETARGET)):
            with pytest.raises(SourceMalformed) as caught:
                await call()
            assert f"HTTP {status}: redirects are refused" in str(caught.value)
            assert "/internal/admin" not in str(caught.value)
    finally:
        await source.close()
    assert target.requests == []


# -- caps --------------------------------------------------------------------------------------


def test_every_shipped_config_caps_every_block_api() -> None:
    with_sources = 0
    for path in SHIPPED:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in raw.get("sources", []):
            with_sources += 1
            assert "max_response_bytes" in entry, f"{path.name}: {entry['name']} has no cap"
            if entry["kind"] == "blockchain_com":
                assert entry["max_response_bytes"] >= REALISTIC_WHOLE_BLOCK, path.name
        load(path, environ={})  # and the file still loads
    assert with_sources >= 6  # deploy/oracle.mainnet.toml and config/production.example.toml


def _shipped_blockchain_com() -> list[tuple[str, RestSourceConfig]]:
    return [
        (path.name, source)
        for path in SHIPPED
        for source in load(path, environ={}).sources
        if source.kind == "blockchain_com"
    ]


@pytest.fixture(scope="module")
def whole_block() -> str:
    from tests.fixtures.restreplay import ReplayServer

    return whole_block_body(
        ReplayServer(kind="blockchain_com", tip_height=TIP), RETARGET, min_bytes=4_000_000
    )


@pytest.mark.parametrize(
    ("config_name", "config"), _shipped_blockchain_com(), ids=lambda v: getattr(v, "name", v)
)
async def test_a_realistic_whole_block_fits_the_shipped_cap(
    replay: Replay, whole_block: str, config_name: str, config: RestSourceConfig
) -> None:
    assert 4_000_000 <= len(whole_block) < 5_000_000
    assert whole_block.count('"tx_index"') > 10_000  # thousands of transactions, in full
    policy = dataclasses.replace(
        HttpPolicy.from_config(config), rate_limit_per_s=0, connect_timeout_s=2, read_timeout_s=10
    )
    server = await replay(
        "blockchain_com",
        tip_height=TIP,
        faults=[Fault("body", f"/block-height/{RETARGET}", body=whole_block)],
    )
    source = BlockchainComSource(name="bcom", base_url=server.url, policy=policy)
    try:
        observation = await source.header_at(RETARGET)
    finally:
        await source.close()
    assert observation.block_hash_hex == HASHES[RETARGET]
    # and the same answer under the old 1 MB default could never have counted
    small = BlockchainComSource(name="bcom", base_url=server.url, policy=FAST)
    try:
        with pytest.raises(SourceOversized):
            await small.header_at(RETARGET)
    finally:
        await small.close()


# -- the public API never echoes what a source sent ---------------------------------------------

EVIL = "<script>alert('pwned')</script>"


async def _failure_from(replay: Replay, kind: str) -> SourceError:
    """A real adapter's real error for a source that answers with hostile text."""
    page = html_page(200, EVIL)
    faults = [
        Fault("body", "/block-height/", body=EVIL * 3, content_type="text/plain"),
        Fault("body", "/status", body=page, content_type="text/html"),
        Fault("body", "/latestblock", body=page, content_type="text/html"),
    ]
    server = await replay(kind, tip_height=TIP, faults=faults)
    source = make(kind, server.url, name=f"evil_{kind}")
    try:
        with pytest.raises(SourceError) as caught:
            await (source.tip() if kind == "blockchain_com" else source.header_at(RETARGET))
    finally:
        await source.close()
    assert "pwned" in str(caught.value)  # the log keeps the excerpt: that is the danger here
    return caught.value


async def test_public_api_shows_our_words_not_the_sources(
    replay: Replay, tmp_path: Path, _store_templates: Any
) -> None:
    errors = {kind: await _failure_from(replay, kind) for kind in ("esplora", "blockchain_com")}
    path = tmp_path / "store.sqlite"
    shutil.copyfile(await _store_templates.sqlite_template(), path)
    repository = await open_repository(f"sqlite+aiosqlite:///{path}")
    await fill(repository)
    failures = [
        SourceFailure.from_error(exc, source=kind, height=RETARGET) for kind, exc in errors.items()
    ]
    await repository.record_observations(
        NET,
        [
            ObservationInput(
                epoch=412,
                source=f.source,
                height=f.height,
                error_kind=f.kind,
                error_message=f.message,
            )
            for f in failures
        ],
    )
    board = SourceBoard(
        sources=[
            SourceHealth(kind, False, f"failing: malformed: {exc}") for kind, exc in errors.items()
        ]
    )
    context = make_context(repository, chain=CsvChain(), board=board)
    runner, port = await start_api(context, host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
            answers = {}
            for route in ("/v1/retargets/412", "/ready", "/"):
                async with client.get(route) as response:
                    answers[route] = await response.text()
    finally:
        await runner.cleanup()
        await repository.close()
    for route, text in answers.items():
        assert "pwned" not in text and "alert(" not in text, route
    detail = json.loads(answers["/v1/retargets/412"])
    messages = {o["source"]: o["error_message"] for o in detail["observations"]}
    assert messages["evil_esplora"] == (
        f"evil_esplora GET /block-height/{RETARGET}: block hash should be 64 hex characters, "
        "got «…»"
    )
    assert messages["evil_blockchain_com"] == (
        "evil_blockchain_com GET /latestblock: response rejected: not JSON "
        "(Expecting value at 0): «…»"
    )
    ready = json.loads(answers["/ready"])
    assert ready["checks"]["sources"]["detail"][1]["reason"] == (
        f"failing: malformed: {messages['evil_blockchain_com']}"
    )
