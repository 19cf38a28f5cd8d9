"""A ``HeaderSource`` wrapper that times every call and reports its health.

Latency, failures and tips of each source feed the metrics, the stored health
samples (for ``/ready`` and the API) and the stale-source alert, without the
adapters knowing about any of that.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from oracle.errors import SourceError
from oracle.monitor.health import SourceHealth, judge_source
from oracle.sources.types import HeaderSource, Observation, Tip, error_kind

T = TypeVar("T")
HealthCallback = Callable[[str, float, bool, str | None], Awaitable[None]]


@dataclass
class SourceState:
    """What the service knows about one source right now (read by /ready and the stale check)."""

    name: str
    last_ok_at: float | None = None  # unix seconds
    last_failure_at: float | None = None
    last_error: str | None = None
    last_tip: Tip | None = None

    def verdict(self, *, now: float, stale_after_s: float) -> SourceHealth:
        """Judge this source as ``/ready`` and the stale/failing alerts both must."""
        return judge_source(
            self.name,
            now=now,
            stale_after_s=stale_after_s,
            last_success_at=self.last_ok_at,
            last_failure_at=self.last_failure_at,
            last_failure=self.last_error or "",
        )


class InstrumentedSource:
    """Delegates to ``inner`` and reports (source, latency_ms, ok, error_kind) per call."""

    def __init__(self, inner: HeaderSource, on_call: HealthCallback) -> None:
        self.inner = inner
        self.name = inner.name
        self.state = SourceState(inner.name)
        self._on_call = on_call

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
        async for tip in self.inner.new_blocks():
            self.state.last_tip = tip
            self.state.last_ok_at = time.time()
            yield tip

    async def close(self) -> None:
        await self.inner.close()
