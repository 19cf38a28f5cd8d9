"""Continuity against local Esplora servers serving real mainnet headers (tests/data).

A source "one epoch behind" serves at height h the real header of h-2016, and
claims the same tip as the honest ones. Its answers pass proof of work, linkage
and the retarget rule; only continuity (the header at 2016e-2016 must be the
retarget already agreed, or bundled, for e-1) tells it apart. Epochs 409..412
span four retargets of headers_822528_830592.csv.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from oracle.agreement.continuity import (
    CONTINUITY_AGREED,
    CONTINUITY_CHECKPOINT,
    CONTINUITY_MISSING,
    CONTINUITY_SOURCES,
)
from oracle.agreement.crosscheck import Agreed, Insufficient
from oracle.agreement.watcher import EpochObserved, RetargetWatcher
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, get_network
from oracle.pipeline import Pipeline, seed_watcher
from oracle.sources.esplora import EsploraSource
from oracle.sources.rest import HttpPolicy
from oracle.sources.types import HeaderSource
from oracle.store.records import AgreedEpoch
from oracle.store.repository import Repository
from oracle.store.states import RetargetStatus
from tests.fixtures.restreplay import (
    ReplayServer,
    mainnet_esplora_routes,
    mainnet_hashes,
    mainnet_headers,
    refused_url,
)

MAINNET = get_network("mainnet")
HASHES = mainnet_hashes()
HEADERS = mainnet_headers()
TIP = 830_592
EPOCHS = (409, 410, 411, 412)
FAST = HttpPolicy(
    connect_timeout_s=1.0,
    read_timeout_s=2.0,
    max_retries=1,
    backoff_base_s=0.01,
    backoff_max_s=0.1,
    rate_limit_per_s=0,
)
Replay = Callable[..., Any]


def one_epoch_behind_routes() -> dict[str, dict[str, str]]:
    """Esplora routes where height h is the real block at h-2016 (the tip, too)."""
    routes = mainnet_esplora_routes()
    for height in HASHES:
        del routes[f"/block-height/{height}"]
    for height in HASHES:
        older = HASHES.get(height - EPOCH_BLOCKS)
        if older is None:
            continue
        routes[f"/block-height/{height}"] = {"type": "text/plain", "body": older}
        status = {"in_best_chain": True, "height": height, "next_best": None}
        routes[f"/block/{older}/status"] = {"type": "application/json", "body": json.dumps(status)}
    return routes


async def esplora(replay: Replay, name: str, *, behind: bool = False) -> EsploraSource:
    server: ReplayServer = await replay("esplora", tip_height=TIP)
    server.routes = one_epoch_behind_routes() if behind else mainnet_esplora_routes()
    return EsploraSource(name=name, base_url=server.url, policy=FAST, poll_interval_s=0.05)


class Quiet:
    """A notifier that only counts (the pipeline's monitoring is not under test here)."""

    def __init__(self) -> None:
        self.disputes: list[int] = []

    async def outcome(self, observed: EpochObserved) -> None:
        return None

    async def disputed(self, epoch: int, fields: dict[str, dict[str, object]]) -> None:
        self.disputes.append(epoch)

    async def orphaned(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def published(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def replaced(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def publish_failed(self, *args: Any, **kwargs: Any) -> None:
        return None


async def close_all(sources: list[HeaderSource]) -> None:
    for source in sources:
        await source.close()


@pytest.mark.parametrize("checkpoints", [True, False], ids=["checkpoints", "no-checkpoints"])
async def test_a_minority_one_epoch_behind_is_unverified_and_the_honest_quorum_agrees(
    replay: Replay, repository: Repository, checkpoints: bool
) -> None:
    """Through the daemon's loop (tips -> watcher -> pipeline -> store): every epoch is
    agreed on the real block, and the lagging claim is stored with what it said."""
    lagging = await esplora(replay, "lagging", behind=True)
    sources: list[HeaderSource] = [
        await esplora(replay, "honest-a"),
        await esplora(replay, "honest-b"),
        lagging,
    ]
    watcher = RetargetWatcher(
        sources, MAINNET, quorum=2, start_epoch=EPOCHS[0], use_checkpoints=checkpoints
    )
    notifier = Quiet()
    pipeline = Pipeline(
        network="mainnet", repository=repository, notifier=notifier, confirmations=6
    )
    try:
        tips = [await source.tip() for source in sources]
        assert {t.height for t in tips} == {TIP}  # the lagging source claims the same tip
        events = await watcher.handle_tips(tips)
        for event in events:
            await pipeline.handle(event)
    finally:
        await close_all(sources)
    observed = [e for e in events if isinstance(e, EpochObserved)]
    assert [e.epoch for e in observed] == list(EPOCHS)
    for event in observed:
        epoch, outcome = event.epoch, event.outcome
        assert isinstance(outcome, Agreed), (epoch, outcome)
        assert outcome.block_hash_hex == HASHES[epoch * EPOCH_BLOCKS]
        assert outcome.sources == ("honest-a", "honest-b")
        [dissent] = outcome.dissent
        assert dissent.source == "lagging" and not dissent.verified
        assert dissent.block_hash_hex == HASHES[(epoch - 1) * EPOCH_BLOCKS]
        assert any(p.startswith("continuity: ") for p in dissent.problems), dissent.problems
        first_anchor = CONTINUITY_CHECKPOINT if checkpoints else CONTINUITY_SOURCES
        expected = first_anchor if epoch == EPOCHS[0] else CONTINUITY_AGREED
        assert {v.continuity for v in event.verifications.values()} == {expected}
    assert notifier.disputes == []
    for epoch in EPOCHS:
        record = await repository.get_retarget("mainnet", epoch)
        assert record is not None and record.status == "agreed"
        assert record.block_hash_hex == HASHES[epoch * EPOCH_BLOCKS]
        [claim] = [o for o in await repository.observations("mainnet", epoch) if not o.ok]
        # what the lagging source said, kept for the audit trail (not NULL)
        older = (epoch - 1) * EPOCH_BLOCKS
        assert (claim.source, claim.error_kind) == ("lagging", "unverified")
        assert claim.height == epoch * EPOCH_BLOCKS
        assert claim.block_hash_hex == HASHES[older]
        assert claim.raw_header == bytes.fromhex(HEADERS[older])
        assert claim.bits == int.from_bytes(bytes.fromhex(HEADERS[older])[72:76], "little")
        assert claim.error_message is not None and "continuity" in claim.error_message
    assert await repository.list_disagreements("mainnet") == []


def agreed_epoch(epoch: int) -> AgreedEpoch:
    """Epoch ``epoch`` as the store would hold it, agreed (real data)."""
    header = bytes.fromhex(HEADERS[epoch * EPOCH_BLOCKS])
    return AgreedEpoch(
        epoch=epoch,
        height=epoch * EPOCH_BLOCKS,
        block_hash_hex=HASHES[epoch * EPOCH_BLOCKS],
        bits=int.from_bytes(header[72:76], "little"),
        time=int.from_bytes(header[68:72], "little"),
        status=RetargetStatus.AGREED,
    )


@pytest.mark.parametrize(
    ("anchor", "honest"),
    [
        ("checkpoints", "up"),
        ("checkpoints", "down"),
        ("store", "up"),
        ("store", "down"),
        ("none", "up"),
        # ("none", "down"): two sources and nothing to hold them to. Without a checkpoint,
        # an agreed history or one honest answer, a quorum of liars is the chain.
    ],
)
async def test_a_majority_one_epoch_behind_gets_nothing_wrong_agreed(
    replay: Replay, anchor: str, honest: str
) -> None:
    """Two sources one epoch behind, quorum 2, one honest source (or it is down): epochs
    409..412 observed in order, none is agreed. Anchored by the bundled checkpoints, by the
    store's agreed epoch 408, or, with neither, by the honest source's headers."""
    sources: list[HeaderSource] = [
        await esplora(replay, "lagging-a", behind=True),
        await esplora(replay, "lagging-b", behind=True),
        await esplora(replay, "honest")
        if honest == "up"
        else EsploraSource(name="honest", base_url=refused_url(), policy=FAST),
    ]
    watcher = RetargetWatcher(sources, MAINNET, quorum=2, use_checkpoints=anchor == "checkpoints")
    if anchor == "store":
        seed_watcher(watcher, [agreed_epoch(408)])
    try:
        outcomes = [(await watcher.observe(epoch)).outcome for epoch in EPOCHS]
    finally:
        await close_all(sources)
    for epoch, outcome in zip(EPOCHS, outcomes, strict=True):
        assert isinstance(outcome, Insufficient), (epoch, outcome)
        verified = {c.source for c in outcome.claims if c.verified}
        # from the store's epoch 408 on, an epoch not agreed leaves the next one waiting
        waits = anchor == "store" and epoch > EPOCHS[0]
        assert verified == ({"honest"} if honest == "up" and not waits else set())
        lagging = [c for c in outcome.claims if c.source.startswith("lagging")]
        assert [c.block_hash_hex for c in lagging] == [HASHES[(epoch - 1) * EPOCH_BLOCKS]] * 2
        assert all(c.problems[0].startswith("continuity: ") for c in lagging)
    assert set(watcher.agreed) <= {408}


async def test_the_agreed_history_of_the_store_anchors_continuity(replay: Replay) -> None:
    """Seeded from the store (no checkpoints), quorum 1: the lagging claim fails against
    the agreed epoch 410, and its retarget block is epoch 410's at the wrong height. An
    epoch whose predecessor is not agreed waits for it."""
    sources: list[HeaderSource] = [
        await esplora(replay, "honest"),
        await esplora(replay, "lagging", behind=True),
    ]
    watcher = RetargetWatcher(sources, MAINNET, quorum=1, use_checkpoints=False)
    seed_watcher(watcher, [agreed_epoch(408), agreed_epoch(410)])
    try:
        observed = await watcher.observe(411)
        following = await watcher.observe(412)  # 411 is agreed now
        gap = RetargetWatcher(sources, MAINNET, quorum=1, use_checkpoints=False)
        seed_watcher(gap, [agreed_epoch(408)])
        before = await gap.observe(410)  # 409 is not agreed: 410 waits
        await gap.observe(409)
        after = await gap.observe(410)
    finally:
        await close_all(sources)
    assert isinstance(observed.outcome, Agreed)
    assert observed.outcome.block_hash_hex == HASHES[411 * EPOCH_BLOCKS]
    lagging = observed.verifications["lagging"]
    assert not lagging.ok and lagging.continuity == CONTINUITY_AGREED
    assert any(
        f"served at height {411 * EPOCH_BLOCKS} is the agreed retarget of epoch 410" in p
        for p in lagging.problems
    )
    assert isinstance(following.outcome, Agreed)
    assert following.outcome.block_hash_hex == HASHES[412 * EPOCH_BLOCKS]
    assert isinstance(before.outcome, Insufficient)
    assert {v.continuity for v in before.verifications.values()} == {CONTINUITY_MISSING}
    assert isinstance(after.outcome, Agreed)
    assert after.outcome.block_hash_hex == HASHES[410 * EPOCH_BLOCKS]
