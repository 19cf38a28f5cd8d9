"""A ``HeaderSource`` wrapper that times every call, reports its health and supervises its feed.

Latency, failures and tips of each source feed the metrics, the stored health
samples (for ``/ready`` and the API) and the stale-source alert, without the
adapters knowing about any of that. The monitor hub adds what only the
watcher's outcomes show: whether the source's answers pass the oracle's own
verification (``note_verified``/``note_rejected``).

The block feed (``new_blocks``: ZMQ or polling) is supervised: when it raises
or ends, the source is marked unhealthy ("block feed down"), and the feed is
started again after a backoff (``FEED_BACKOFF_S`` doubling up to
``FEED_BACKOFF_MAX_S``). A feed that dies ``FEED_MAX_RESTARTS`` times in a row
without delivering a tip in between raises ``FeedFailed``: the watcher's tip
loop ends with it and the service exits non-zero (a restart of the process,
under Docker's ``restart: unless-stopped``, starts from a clean state).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from oracle.errors import FeedFailed, SourceError
from oracle.monitor.health import SourceHealth, judge_source
from oracle.sources.types import HeaderSource, Observation, Tip, error_kind

log = structlog.get_logger(__name__)

T = TypeVar("T")
HealthCallback = Callable[[str, float, bool, str | None], Awaitable[None]]

#: First wait before a dead block feed is started again; doubles per death in a row.
FEED_BACKOFF_S = 1.0
#: The longest wait between two restarts of a block feed.
FEED_BACKOFF_MAX_S = 60.0
#: Deaths in a row (no tip in between) after which the feed is given up (``FeedFailed``).
FEED_MAX_RESTARTS = 10


@dataclass
class SourceState:
    """What the service knows about one source right now (read by /ready and the stale check)."""

    name: str
    last_ok_at: float | None = None  # unix seconds
    last_failure_at: float | None = None
    last_error: str | None = None
    last_tip: Tip | None = None
    #: the last time one of its retarget answers passed / failed the oracle's verification
    last_verified_at: float | None = None
    last_rejected_at: float | None = None
    last_rejection: str = ""
    #: why its block feed is down ("" while it runs), and how often it was restarted
    feed_down: str = ""
    feed_restarts: int = 0

    def verdict(self, *, now: float, stale_after_s: float) -> SourceHealth:
        """Judge this source as ``/ready`` and the stale/failing alerts both must."""
        return judge_source(
            self.name,
            now=now,
            stale_after_s=stale_after_s,
            last_success_at=self.last_ok_at,
            last_failure_at=self.last_failure_at,
            last_failure=self.last_error or "",
            last_rejected_at=self.last_rejected_at,
            last_rejection=self.last_rejection,
            last_verified_at=self.last_verified_at,
            feed_down=self.feed_down,
        )

    def note_verified(self) -> None:
        self.last_verified_at = time.time()

    def note_rejected(self, problems: str) -> None:
        self.last_rejected_at = time.time()
        self.last_rejection = problems


class InstrumentedSource:
    """Delegates to ``inner`` and reports (source, latency_ms, ok, error_kind) per call."""

    def __init__(
        self,
        inner: HeaderSource,
        on_call: HealthCallback,
        *,
        feed_backoff_s: float | None = None,
        feed_backoff_max_s: float | None = None,
        feed_max_restarts: int | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.state = SourceState(inner.name)
        self._on_call = on_call
        self.feed_backoff_s = FEED_BACKOFF_S if feed_backoff_s is None else feed_backoff_s
        self.feed_backoff_max_s = (
            FEED_BACKOFF_MAX_S if feed_backoff_max_s is None else feed_backoff_max_s
        )
        self.feed_max_restarts = (
            FEED_MAX_RESTARTS if feed_max_restarts is None else feed_max_restarts
        )

    async def _timed(self, call: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        try:
            result = await call()
        except SourceError as exc:
            self.state.last_failure_at = time.time()
            self.state.last_error = f"{error_kind(exc)}: {exc}"
            await self._on_call(
                self.name, (time.perf_counter() - start) * 1000, False, error_kind(exc)
            )
            raise
        self.state.last_ok_at = time.time()
        await self._on_call(self.name, (time.perf_counter() - start) * 1000, True, None)
        return result

    async def tip(self) -> Tip:
        tip = await self._timed(self.inner.tip)
        self.state.last_tip = tip
        return tip

    async def header_at(self, height: int) -> Observation:
        return await self._timed(lambda: self.inner.header_at(height))

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return await self._timed(lambda: self.inner.headers_at(heights))

    async def new_blocks(self) -> AsyncIterator[Tip]:
        """The inner feed's tips, the feed restarted with backoff whenever it dies."""
        deaths = 0
        while True:
            feed = self.inner.new_blocks()
            try:
                async for tip in feed:
                    deaths = 0
                    self.state.feed_down = ""
                    self.state.last_tip = tip
                    self.state.last_ok_at = time.time()
                    yield tip
                problem = "the feed ended"
            except Exception as exc:  # any death of the feed, a bug included: supervised
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            finally:
                await _close_feed(feed)
            deaths += 1
            self.state.feed_down = problem
            if deaths > self.feed_max_restarts:
                log.error("block_feed_given_up", source=self.name, problem=problem, deaths=deaths)
                raise FeedFailed(
                    f"the block feed of {self.name} died {deaths} times in a row: {problem}"
                )
            delay = min(self.feed_backoff_max_s, self.feed_backoff_s * 2 ** (deaths - 1))
            log.warning("block_feed_restarting", source=self.name, problem=problem, delay_s=delay)
            await asyncio.sleep(delay)
            self.state.feed_restarts += 1

    async def close(self) -> None:
        await self.inner.close()


async def _close_feed(feed: AsyncIterator[Tip]) -> None:
    """Close a feed's async generator (its sockets), whatever state it died in."""
    close: Any = getattr(feed, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
