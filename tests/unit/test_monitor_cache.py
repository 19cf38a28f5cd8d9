"""``Refreshing`` and ``CachedProbe``: bounded loads however many callers ask.

The clock is a number the test moves; loads are coroutines that count themselves
and wait for the test to release them, so "concurrent" is exact, not timed.
"""

from __future__ import annotations

import asyncio

import pytest

from oracle.errors import SourceUnavailable
from oracle.monitor.cache import Refreshing
from oracle.monitor.health import CachedProbe


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Answers 1, 2, 3, ... one per load; ``gate`` holds loads until the test opens it."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.began = asyncio.Event()

    async def load(self) -> int:
        self.calls += 1
        self.began.set()
        call = self.calls
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return call


async def test_concurrent_callers_share_one_load_then_the_value_until_it_expires() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(backend.load, ttl_s=10, clock=clock)
    backend.gate.clear()
    waiting = [asyncio.ensure_future(cache.get()) for _ in range(200)]
    await asyncio.sleep(0)
    backend.gate.set()
    assert set(await asyncio.gather(*waiting)) == {1}
    assert backend.calls == 1
    clock.now += 9.9
    assert await cache.get() == 1
    clock.now += 0.2
    assert await cache.get() == 2 and backend.calls == 2


async def test_a_failure_is_remembered_for_the_error_ttl() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(backend.load, ttl_s=10, error_ttl_s=2, clock=clock)
    backend.fail = SourceUnavailable("down", source="x")
    for _ in range(50):
        with pytest.raises(SourceUnavailable):
            await cache.get()
    assert backend.calls == 1
    clock.now += 2.5
    backend.fail = None
    assert await cache.get() == 2


async def test_stale_value_is_served_while_the_reload_runs() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(backend.load, ttl_s=10, serve_stale_s=100, clock=clock)
    assert await cache.get() == 1
    backend.gate.clear()
    cache.invalidate()
    assert [await cache.get() for _ in range(20)] == [1] * 20  # no caller waits
    assert cache.loads == 2  # one reload, started by the first of them
    backend.gate.set()
    assert await cache.refresh() == 2
    assert await cache.get() == 2 and backend.calls == 2
    backend.fail = SourceUnavailable("down", source="x")
    clock.now += 11
    assert await cache.get() == 2  # expired and failing: the last value beats none
    clock.now += 100
    with pytest.raises(SourceUnavailable):
        await cache.get()


async def test_wait_for_load_gives_read_your_writes() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(
        backend.load,
        ttl_s=float("inf"),
        serve_stale_s=float("inf"),
        wait_for_load=True,
        clock=clock,
    )
    assert await cache.get() == 1
    cache.invalidate()  # "the store changed"
    assert await cache.get() == 2  # waited for the new value
    backend.fail = SourceUnavailable("down", source="x")
    cache.invalidate()
    assert await cache.get() == 2  # the reload failed: the last value, not an error


async def test_a_load_not_yet_begun_absorbs_invalidations() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(backend.load, ttl_s=10, clock=clock)
    for _ in range(10):
        cache.invalidate()
        cache.refresh_soon()
    assert await cache.get() == 1 and backend.calls == 1 and cache.is_fresh


async def test_an_invalidation_during_a_load_queues_exactly_one_more() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(backend.load, ttl_s=10, clock=clock)
    backend.gate.clear()
    first = asyncio.ensure_future(cache.get())
    await backend.began.wait()  # the first load has begun
    for _ in range(10):  # a burst of changes while the first load runs
        cache.invalidate()
        cache.refresh_soon()
    second = asyncio.ensure_future(cache.get())
    backend.gate.set()
    assert await first == 1  # the load it joined
    assert await second == 2  # began after the burst: current
    assert backend.calls == 2 and cache.loads == 2
    assert cache.is_fresh


async def test_a_cancelled_caller_leaves_the_shared_load_running() -> None:
    clock, backend = Clock(), Backend()
    cache = Refreshing(backend.load, ttl_s=10, clock=clock)
    backend.gate.clear()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cache.get(), 0.01)
    backend.gate.set()
    assert await cache.get() == 1 and backend.calls == 1
    await cache.close()


async def test_cached_probe_runs_once_per_ttl_and_reraises() -> None:
    clock, backend = Clock(), Backend()
    probe = CachedProbe(backend.load, ttl_s=10, clock=clock)
    await asyncio.gather(*(probe() for _ in range(100)))
    assert probe.runs == 1
    backend.fail = SourceUnavailable("refused", source="bitcoind")
    clock.now += 11
    for _ in range(30):
        with pytest.raises(SourceUnavailable, match="refused"):
            await probe()
    assert probe.runs == 2
    clock.now += 11
    backend.fail = None
    await probe()
    assert probe.runs == 3
