"""``Refreshing``: an async value loaded at most once per time-to-live, shared by every caller.

Monitoring answers questions many clients ask at once (``/ready``, ``/v1/status``,
``/metrics``) from backends that must not be asked once per request (the
database, bitcoind, rate-limited public block APIs). ``Refreshing`` puts a
bound on that: however many requests arrive, there is at most one load in
flight, at most one per ``ttl_s`` while the value is fresh, and at most one
per ``error_ttl_s`` while the backend fails (the failure is re-raised to the
callers in between). A stale value may be served while the next load runs in
the background (``serve_stale_s``), so a slow backend delays no request once
a first value exists; or, with ``wait_for_load``, callers wait for the load
in flight and get the stale value only if it fails (read-your-writes for a
value that was invalidated because its source changed).

Used by ``oracle.monitor.health.CachedProbe`` (readiness probes),
``oracle.monitor.chainread.ChainStatus`` (the chain reading behind
``/v1/status``) and the API state (``oracle.api.state``). Single event loop,
no threads: the value is replaced in one assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Refreshing(Generic[T]):
    """The latest value of ``load()``, reloaded when older than ``ttl_s`` or invalidated."""

    def __init__(
        self,
        load: Callable[[], Awaitable[T]],
        *,
        ttl_s: float,
        error_ttl_s: float = 1.0,
        serve_stale_s: float = 0.0,
        wait_for_load: bool = False,
        name: str = "value",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.error_ttl_s = error_ttl_s
        self.serve_stale_s = serve_stale_s
        self.wait_for_load = wait_for_load
        self.name = name
        self._clock = clock
        self._value: T | None = None
        self._has_value = False
        self._loaded_at = 0.0
        self._fresh = False
        self._error: Exception | None = None
        self._error_at = 0.0
        self._task: asyncio.Task[T] | None = None
        #: the generation the load of ``_task`` began at (None: it has not begun)
        self._loading: int | None = None
        #: bumped by ``invalidate``: a load started before describes the past
        self._generation = 0
        #: how many loads have started (tests and benchmarks read it)
        self.loads = 0

    # -- reading ---------------------------------------------------------------------------

    async def get(self) -> T:
        """The value: fresh, or the outcome of a (shared) load, or stale while allowed."""
        if self.is_fresh:
            return self._value  # type: ignore[return-value]
        now = self._clock()
        stale_ok = self._has_value and now - self._loaded_at < self.serve_stale_s
        if self._error is not None and now - self._error_at < self.error_ttl_s:
            if stale_ok:
                return self._value  # type: ignore[return-value]
            raise self._error.with_traceback(None)
        if stale_ok and not self.wait_for_load:
            self.refresh_soon()
            return self._value  # type: ignore[return-value]
        try:
            return await self.refresh()
        except Exception:
            if stale_ok:  # the last value beats no value
                return self._value  # type: ignore[return-value]
            raise

    @property
    def is_fresh(self) -> bool:
        """Whether ``get`` would answer without a load (a value, current and young enough)."""
        return self._has_value and self._fresh and self._clock() - self._loaded_at < self.ttl_s

    def peek(self) -> T | None:
        """The last loaded value, however old (None before the first load)."""
        return self._value

    @property
    def loaded_at(self) -> float | None:
        """When the current value was loaded (the ``clock``'s time), None before."""
        return self._loaded_at if self._has_value else None

    # -- loading ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """The value is out of date: the next ``get`` reloads (serving it stale meanwhile).

        A load in flight started before this call; its value is kept but not
        fresh, and the next load starts only after it (never two at once).
        """
        self._generation += 1
        self._fresh = False
        self._error = None

    def forget(self) -> None:
        """Drop the value and any remembered failure (the next ``get`` waits for a load)."""
        self.invalidate()
        self._value, self._has_value = None, False

    async def refresh(self) -> T:
        """Load now, or join the load in flight; the caller's cancellation leaves it running."""
        return await asyncio.shield(self._start())

    def refresh_soon(self) -> None:
        """Start a load in the background unless one is in flight."""
        self._start()

    def _start(self) -> asyncio.Task[T]:
        # One load at a time. A load that has not begun yet will see the newest
        # generation when it begins; one that began before an invalidation is
        # outdated, and a new load is queued behind it.
        task = self._task
        running = task is not None and not task.done()
        if running and (self._loading is None or self._loading == self._generation):
            assert task is not None
            return task
        previous = task if task is not None and not task.done() else None
        self.loads += 1
        self._loading = None
        task = asyncio.get_running_loop().create_task(self._run(previous), name=self.name)
        task.add_done_callback(_retrieve)
        self._task = task
        return task

    async def _run(self, previous: asyncio.Task[T] | None) -> T:
        if previous is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(previous)
        generation = self._generation
        if self._task is asyncio.current_task():
            self._loading = generation
        started = self._clock()
        try:
            value = await self._load()
        except Exception as exc:
            self._error, self._error_at = exc, self._clock()
            log.debug("refresh_failed", what=self.name, error=type(exc).__name__)
            raise
        self._value, self._has_value, self._loaded_at = value, True, started
        self._fresh, self._error = generation == self._generation, None
        return value

    async def close(self) -> None:
        """Cancel a load in flight (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a finished load's failure as seen: callers get it from ``get``, not from asyncio."""
    if not task.cancelled():
        task.exception()
