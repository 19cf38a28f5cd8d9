"""Esplora and blockchain.com adapters against local servers replaying recorded real responses.

Real mainnet retargets (epochs 1, 312, 411, 412, 413) in the real formats, and
every fault the issue lists. Each fault test asserts the outcome: a typed
error, or a disputed/insufficient cross-check, never a wrong agreed value.
Expected hashes and bits come from tests/data/*.csv, never from the code.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oracle.agreement.crosscheck import Agreed, Insufficient
from oracle.agreement.reorg import TIP_REPLACED, TipRegressed
from oracle.agreement.verify import retarget_heights
from oracle.agreement.watcher import EpochObserved, RetargetWatcher
from oracle.bitcoin.difficulty import get_network
from oracle.errors import (
    HeightNotFound,
    SourceInconsistent,
    SourceMalformed,
    SourceOversized,
    SourceRateLimited,
    SourceTimeout,
    SourceUnavailable,
)
from oracle.sources.blockchain_com import BlockchainComSource
from oracle.sources.esplora import EsploraSource
from oracle.sources.rest import HttpPolicy
from oracle.sources.types import HeaderSource, SourceFailure
from tests.conftest import ROOT
from tests.fixtures.restreplay import (
    Fault,
    ReplayServer,
    mainnet_hashes,
    mainnet_headers,
    refused_url,
)

MAINNET = get_network("mainnet")
HASHES = mainnet_hashes()
HEADERS = mainnet_headers()
EPOCHS = (1, 312, 410, 411, 412, 413)
TIP = 832608
KINDS = ("esplora", "blockchain_com")
STALE_828366 = "0000000000000000000222082e0016ece6119a9175adcf4ba416631279dc5611"
FAST = HttpPolicy(
    connect_timeout_s=0.5,
    read_timeout_s=0.5,
    max_retries=2,
    backoff_base_s=0.01,
    backoff_max_s=0.2,
    rate_limit_per_s=0,
    max_response_bytes=65536,
)

Replay = Callable[..., Any]


def vars_of(policy: HttpPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in HttpPolicy.__dataclass_fields__}


def bits_of(height: int) -> int:
    return int.from_bytes(bytes.fromhex(HEADERS[height])[72:76], "little")


def make_source(kind: str, name: str, url: str, policy: HttpPolicy = FAST) -> HeaderSource:
    cls = EsploraSource if kind == "esplora" else BlockchainComSource
    return cls(name=name, base_url=url, policy=policy, poll_interval_s=0.05)


async def start(
    replay: Replay,
    kind: str,
    name: str,
    *,
    tip: int = TIP,
    faults: list[Fault] | None = None,
    policy: HttpPolicy = FAST,
) -> tuple[ReplayServer, HeaderSource]:
    server = await replay(kind, tip_height=tip, faults=faults)
    return server, make_source(kind, name, server.url, policy)


async def close_all(*sources: HeaderSource) -> None:
    for source in sources:
        await source.close()


# -- the recorded real data ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_headers_of_real_retargets(replay: Replay, kind: str) -> None:
    _, source = await start(replay, kind, kind)
    try:
        for epoch in EPOCHS:
            heights = retarget_heights(epoch)
            observations = await source.headers_at(heights)
            assert [o.block_hash_hex for o in observations] == [HASHES[x] for x in heights]
            assert [o.header.raw.hex() for o in observations] == [HEADERS[x] for x in heights]
            assert all(o.source == kind and o.observed_at.tzinfo is not None for o in observations)
        tip = await source.tip()
        assert (tip.height, tip.block_hash_hex) == (TIP, HASHES[TIP])
    finally:
        await source.close()


async def test_two_apis_agree_on_every_recorded_retarget(replay: Replay) -> None:
    _, esplora = await start(replay, "esplora", "mempool")
    _, bcom = await start(replay, "blockchain_com", "blockchain_com")
    watcher = RetargetWatcher([esplora, bcom], MAINNET, quorum=2)
    try:
        for epoch in EPOCHS:
            outcome, results = await watcher.observe_epoch(epoch)
            assert isinstance(outcome, Agreed), outcome
            assert outcome.block_hash_hex == HASHES[2016 * epoch]
            assert outcome.bits == bits_of(2016 * epoch)
            assert outcome.header.hex() == HEADERS[2016 * epoch]
            assert outcome.sources == ("blockchain_com", "mempool")
            assert len(results) == 2
    finally:
        await close_all(esplora, bcom)


# -- transport faults --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_refused(kind: str) -> None:
    source = make_source(kind, "down", refused_url())
    try:
        with pytest.raises(SourceUnavailable) as info:
            await source.header_at(828576)
        assert "cannot connect" in str(info.value) and info.value.source == "down"
    finally:
        await source.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_slow_beyond_the_timeout(replay: Replay, kind: str) -> None:
    _, source = await start(replay, kind, "slow", faults=[Fault("slow", delay_s=3)])
    began = time.monotonic()
    try:
        with pytest.raises(SourceTimeout):
            await source.tip()
    finally:
        await source.close()
    assert time.monotonic() - began < 2.9  # 3 attempts x ~0.5 s, not the server's 3 s


@pytest.mark.parametrize("kind", KINDS)
async def test_429_with_retry_after_is_respected_then_succeeds(replay: Replay, kind: str) -> None:
    patient = HttpPolicy(**{**vars_of(FAST), "backoff_max_s": 2.0})
    server, source = await start(
        replay,
        kind,
        "limited",
        faults=[Fault("status", status=429, retry_after="1", times=1)],
        policy=patient,
    )
    began = time.monotonic()
    try:
        observation = await source.header_at(830592)
    finally:
        await source.close()
    assert observation.block_hash_hex == HASHES[830592]
    assert time.monotonic() - began >= 1.0  # waited Retry-After
    assert len(server.requests) >= 2


@pytest.mark.parametrize("kind", KINDS)
async def test_429_with_long_retry_after_gives_up_typed(replay: Replay, kind: str) -> None:
    server, source = await start(
        replay, kind, "limited", faults=[Fault("status", status=429, retry_after="3600")]
    )
    try:
        with pytest.raises(SourceRateLimited) as info:
            await source.tip()
    finally:
        await source.close()
    assert info.value.retry_after_s == 3600 and len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_500_is_retried_then_unavailable(replay: Replay, kind: str) -> None:
    server, source = await start(replay, kind, "broken", faults=[Fault("status", status=500)])
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 500"):
            await source.header_at(828576)
    finally:
        await source.close()
    assert len(server.requests) == FAST.max_retries + 1


@pytest.mark.parametrize("kind", KINDS)
async def test_html_error_page_is_malformed(replay: Replay, kind: str) -> None:
    _, source = await start(replay, kind, "html", faults=[Fault("html")])
    try:
        with pytest.raises(SourceMalformed):
            await source.header_at(828576)
        with pytest.raises(SourceMalformed):
            await source.tip()
    finally:
        await source.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_bodies(replay: Replay, kind: str) -> None:
    _, source = await start(replay, kind, "cut", faults=[Fault("malformed")])
    try:
        with pytest.raises(SourceMalformed):
            await source.header_at(828576)
    finally:
        await source.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_wrongly_typed_fields(replay: Replay, kind: str) -> None:
    # blockchain.com bits as a hex string; Esplora status height as a string
    where = "/block-height/" if kind == "blockchain_com" else "/status"
    _, source = await start(
        replay, kind, "types", faults=[Fault("wrong_type", path_contains=where)]
    )
    try:
        with pytest.raises(SourceMalformed, match="should be an integer"):
            await (source.header_at(828576) if kind == "blockchain_com" else source.tip())
    finally:
        await source.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_oversized_response(replay: Replay, kind: str) -> None:
    _, source = await start(replay, kind, "big", faults=[Fault("oversized", size=200_000)])
    try:
        with pytest.raises(SourceOversized, match="cap"):
            await source.tip()
    finally:
        await source.close()


# -- lying and lagging sources -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_header_served_under_the_real_hash_is_inconsistent(replay: Replay, kind: str) -> None:
    fault = Fault("bad_header", height=830592, field="bits", keep_hash=True)
    _, source = await start(replay, kind, "liar", faults=[fault])
    try:
        with pytest.raises(SourceInconsistent, match="hashes to"):
            await source.header_at(830592)
    finally:
        await source.close()


async def observe_with_liar(
    replay: Replay, kind: str, fault: Fault, epoch: int, *, quorum: int = 2, honest: int = 2
) -> EpochObserved:
    _, liar = await start(replay, kind, "liar", faults=[fault])
    honest_sources = [(await start(replay, k, f"honest-{k}"))[1] for k in KINDS[:honest]]
    watcher = RetargetWatcher([liar, *honest_sources], MAINNET, quorum=quorum)
    try:
        return await watcher.observe(epoch)
    finally:
        await close_all(liar, *honest_sources)


FAULTS = {
    "wrong_hash": Fault("wrong_hash", path_contains="/block-height/828576", other_height=828577),
    "bad_pow": Fault("bad_header", height=828576, field="nonce"),
    "wrong_bits": Fault("bad_header", height=828576, field="bits"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault_name", sorted(FAULTS))
async def test_lying_source_never_counts(replay: Replay, kind: str, fault_name: str) -> None:
    fault = FAULTS[fault_name]
    # two honest sources: agreed on the real block, the liar recorded as dissent
    observed = await observe_with_liar(replay, kind, Fault(**vars(fault)), 411)
    outcome = observed.outcome
    assert isinstance(outcome, Agreed)
    assert outcome.block_hash_hex == HASHES[828576] and outcome.bits == bits_of(828576)
    assert "liar" not in outcome.sources
    assert [c.source for c in outcome.dissent] == ["liar"] and not outcome.dissent[0].verified
    assert outcome.dissent[0].block_hash_hex != HASHES[828576]
    # one honest source: the liar cannot complete a quorum of 2
    observed = await observe_with_liar(replay, kind, Fault(**vars(fault)), 411, honest=1)
    assert isinstance(observed.outcome, Insufficient)
    assert any(r.startswith("liar: not verified") for r in observed.outcome.reasons)


@pytest.mark.parametrize("kind", KINDS)
async def test_lagging_tip(replay: Replay, kind: str) -> None:
    _, lagging = await start(replay, kind, "lagging", tip=830591)
    _, honest = await start(replay, "esplora", "honest")
    watcher = RetargetWatcher([lagging, honest], MAINNET, quorum=2)
    try:
        assert (await lagging.tip()).height == 830591
        with pytest.raises(HeightNotFound):
            await lagging.header_at(830592)
        outcome, results = await watcher.observe_epoch(412)
        assert isinstance(outcome, Insufficient)
        failure = next(r for r in results if isinstance(r, SourceFailure))
        assert (failure.source, failure.kind, failure.height) == ("lagging", "not_found", 830592)
        older, _ = await watcher.observe_epoch(411)  # the lagging source still helps for the past
        assert isinstance(older, Agreed) and older.block_hash_hex == HASHES[828576]
    finally:
        await close_all(lagging, honest)


async def test_refused_source_with_two_honest_still_agrees(replay: Replay) -> None:
    down = make_source("esplora", "down", refused_url())
    honest = [(await start(replay, k, f"honest-{k}"))[1] for k in KINDS]
    watcher = RetargetWatcher([down, *honest], MAINNET, quorum=2)
    try:
        observed = await watcher.observe(312)
    finally:
        await close_all(down, *honest)
    assert isinstance(observed.outcome, Agreed)
    assert observed.outcome.block_hash_hex == HASHES[2016 * 312]
    assert [f.source for f in observed.outcome.failures] == ["down"]
    assert observed.outcome.failures[0].kind == "unavailable"


async def test_missing_epoch_headers_fall_back_to_the_bound(replay: Replay) -> None:
    # the 2016e-2016 header is unavailable (500): the retarget is checked against the
    # previous epoch's bits, which the watcher knows from its earlier agreement
    faults = [Fault("status", status=500, path_contains="/block-height/826560")]
    _, a = await start(replay, "esplora", "a", faults=faults)
    _, b = await start(replay, "blockchain_com", "b", faults=[Fault(**vars(faults[0]))])
    watcher = RetargetWatcher([a, b], MAINNET, quorum=2)
    try:
        observed = await watcher.observe(411)
        assert isinstance(observed.outcome, Insufficient)  # nothing to check the bits against
        assert {v.method for v in observed.verifications.values()} == {"none"}
        # with epoch 410's bits known (e.g. from the store) the bound applies
        watcher2 = RetargetWatcher(
            [a, b], MAINNET, quorum=2, previous_bits=lambda e: bits_of(826560)
        )
        observed = await watcher2.observe(411)
        assert isinstance(observed.outcome, Agreed)
        assert {v.method for v in observed.verifications.values()} == {"bound"}
        assert len(observed.side_failures) == 2
    finally:
        await close_all(a, b)


@pytest.mark.parametrize("kind", KINDS)
async def test_tip_flapping_between_two_chains(replay: Replay, kind: str) -> None:
    canonical = HASHES[828366]
    fault = Fault("flap", tip_hashes=(canonical, STALE_828366))
    _, flapping = await start(replay, kind, "flapping", tip=828366, faults=[fault])
    _, honest = await start(replay, "esplora", "honest", tip=828366)
    watcher = RetargetWatcher([flapping, honest], MAINNET, quorum=2, start_epoch=410)
    events = watcher.run()
    regressions: list[TipRegressed] = []
    agreed: list[Agreed] = []
    try:
        async with asyncio.timeout(10):
            async for event in events:
                if isinstance(event, TipRegressed):
                    regressions.append(event)
                elif isinstance(event, EpochObserved) and isinstance(event.outcome, Agreed):
                    agreed.append(event.outcome)
                if len(regressions) >= 3:
                    break
    finally:
        await events.aclose()
        await close_all(flapping, honest)
    assert all(r.source == "flapping" and r.kind == TIP_REPLACED for r in regressions)
    assert {r.current.block_hash_hex for r in regressions} == {canonical, STALE_828366}
    assert [a.epoch for a in agreed] == [410]
    assert agreed[0].block_hash_hex == HASHES[2016 * 410]


async def test_per_source_rate_limit(replay: Replay) -> None:
    policy = HttpPolicy(**{**vars_of(FAST), "rate_limit_per_s": 20.0})
    _, source = await start(replay, "esplora", "polite", policy=policy)
    began = time.monotonic()
    try:
        await source.headers_at([826559, 826560, 828575, 828576])  # 8 requests
    finally:
        await source.close()
    assert time.monotonic() - began >= 7 / 20  # spaced 50 ms apart although issued at once


async def test_watch_command_with_a_config_file(replay: Replay, tmp_path: Path) -> None:
    esplora = await replay("esplora", tip_height=TIP)
    bcom = await replay("blockchain_com", tip_height=TIP)
    path = tmp_path / "watch.toml"
    path.write_text(
        '[network]\nname = "mainnet"\n[bitcoind]\nenabled = false\n[crosscheck]\nquorum = 2\n'
        f'[[sources]]\nname = "mempool"\nkind = "esplora"\nbase_url = "{esplora.url}"\n'
        f'[[sources]]\nname = "bcom"\nkind = "blockchain_com"\nbase_url = "{bcom.url}"\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "oracle",
        "watch",
        "--config",
        str(path),
        "--start-epoch",
        "412",
        "--max-agreed",
        "2",
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [(x["epoch"], x["block_hash"], x["sources"]) for x in lines] == [
        (412, HASHES[830592], ["bcom", "mempool"]),
        (413, HASHES[832608], ["bcom", "mempool"]),
    ]
    assert lines[0]["bits"] == f"{bits_of(830592):08x}"
