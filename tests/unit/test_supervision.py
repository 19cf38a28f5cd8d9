"""Supervision without I/O: a source's verification verdict, a block feed's restarts, the
publication driver's bounded reconcile and its retries of an unusable chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from oracle.errors import FeedFailed, PublishError, TxNotConfirmed
from oracle.monitor.health import judge_source
from oracle.monitor.instrument import InstrumentedSource
from oracle.publish.driver import PublicationDriver
from oracle.sources.types import Observation, Tip


def test_a_rejected_answer_makes_a_source_unhealthy_until_verified_or_stale() -> None:
    def judge(rejected: float | None, verified: float | None, now: float = 100.0) -> Any:
        return judge_source(
            "s",
            now=now,
            stale_after_s=50,
            last_success_at=now,
            last_rejected_at=rejected,
            last_rejection="linkage: broken",
            last_verified_at=verified,
        )

    assert judge(None, 90).healthy
    bad = judge(95, 90)
    assert not bad.healthy and bad.reason == "answers fail verification: linkage: broken"
    assert judge(95, 99).healthy  # verified since
    assert judge(10, None).healthy  # rejected longer ago than stale_after_s


class Feed:
    """A source whose feed dies according to a script: "tip" yields one, "die" raises."""

    name = "scripted"

    def __init__(self, script: list[list[str]]) -> None:
        self.script = script
        self.starts = 0

    async def new_blocks(self) -> AsyncIterator[Tip]:
        steps = self.script[min(self.starts, len(self.script) - 1)]
        self.starts += 1
        for step in steps:
            if step == "die":
                raise OSError("socket closed")
            yield Tip(self.name, self.starts, "00" * 32, datetime.now(UTC))

    # The supervisor only drives ``new_blocks``; reads would mean the test is wrong.
    async def tip(self) -> Tip:
        raise AssertionError("the feed supervisor does not read tips")

    async def header_at(self, height: int) -> Observation:
        raise AssertionError("the feed supervisor does not read headers")

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        raise AssertionError("the feed supervisor does not read headers")

    async def close(self) -> None:
        return None


async def _ignore(*_args: object) -> None:
    return None


async def test_a_dead_feed_is_restarted_and_a_tip_resets_the_count() -> None:
    feed = Feed([["tip", "die"], ["die"], ["tip", "die"], ["die"], ["tip"]])
    source = InstrumentedSource(feed, _ignore, feed_backoff_s=0.001, feed_max_restarts=2)
    tips = []
    async for tip in source.new_blocks():
        tips.append(tip.height)
        if len(tips) == 3:
            break
    assert tips == [1, 3, 5]  # each death after a tip starts a new count of two
    assert source.state.feed_restarts == 4 and source.state.feed_down == ""


async def test_a_feed_dying_again_and_again_is_given_up() -> None:
    source = InstrumentedSource(Feed([["die"]]), _ignore, feed_backoff_s=0.001, feed_max_restarts=3)
    with pytest.raises(FeedFailed, match="died 4 times in a row: OSError: socket closed"):
        _ = [tip async for tip in source.new_blocks()]
    assert source.state.feed_down == "OSError: socket closed"
    assert not source.state.verdict(now=0, stale_after_s=1).healthy


class FakePublisher:
    contract_address = "0x" + "11" * 20

    def __init__(self, *, down: int, reconcile: list[BaseException | None], live: int) -> None:
        self.down = down
        self.reconcile_results = reconcile
        self.live = live
        self.reconciles = 0

    async def check_chain(self) -> None:
        if self.down:
            self.down -= 1
            raise PublishError("EVM node unreachable: ClientConnectorError")

    async def live_submissions(self) -> int:
        return self.live

    async def reconcile(self) -> list[object]:
        result = self.reconcile_results[min(self.reconciles, len(self.reconcile_results) - 1)]
        self.reconciles += 1
        if result is not None:
            raise result
        return []


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.published = asyncio.Event()

    async def chain_unavailable(self, error: BaseException) -> None:
        self.events.append(f"down: {error}")

    async def chain_available(self) -> None:
        self.events.append("up")

    async def publish_confirmed(self, tip_height: int) -> None:
        self.events.append(f"publish {tip_height}")
        self.published.set()


async def _run_until_published(driver: PublicationDriver, recorder: Recorder) -> None:
    task = asyncio.create_task(driver.run())
    try:
        await asyncio.wait_for(recorder.published.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("results", "rounds"),
    [
        ([PublishError("abandoned"), PublishError("failed"), None], 3),  # settles one per round
        ([PublishError("refused, stays live")], 3),  # never settles: 1 + live rounds, no more
        ([TxNotConfirmed("still waiting")], 1),  # left live for the pipeline at once
    ],
)
async def test_the_driver_waits_for_the_chain_then_reconciles_boundedly_then_publishes(
    results: list[BaseException | None], rounds: int
) -> None:
    publisher = FakePublisher(down=2, reconcile=results, live=2)
    recorder = Recorder()
    driver = PublicationDriver(
        publisher=publisher,  # type: ignore[arg-type]
        pipeline=recorder,
        monitor=recorder,
        best_height=lambda: 4033,
        backoff_s=0.001,
    )
    await _run_until_published(driver, recorder)
    assert recorder.events[-1] == "publish 4033"
    assert recorder.events[:3] == [
        "down: EVM node unreachable: ClientConnectorError",
        "down: EVM node unreachable: ClientConnectorError",
        "up",
    ]
    assert publisher.reconciles == rounds
    assert driver.connected
