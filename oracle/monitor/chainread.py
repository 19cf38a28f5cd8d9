"""Reading the chain for the next-retarget estimate: the I/O half of ``oracle.monitor.status``.

``oracle.monitor.status`` is pure: ``plan_inputs`` names the heights an
estimate needs and ``estimate_next_retarget`` computes it from a
``ChainSnapshot``. This module fills that snapshot from a ``ChainView`` (the
daemon uses ``SourceChainView`` over its configured sources, bitcoind or
public block APIs alike; tests over recorded headers), and ``ChainStatus``
keeps the last reading, so ``/v1/status`` costs one reading per tip, not one
per request.

Why a reading per tip is enough, and still safe: everything the estimate
needs except ``now`` is fixed by the tip, and the daemon tells ``ChainStatus``
when the tip changes (``note_tip``, from the watcher's new-block events). The
retarget blocks of the current and previous epoch are taken from the agreed
retargets the oracle stores (``known``) when it has them: they are the blocks
the watcher verified and re-checks for reorgs, and reading them from the
chain again would cost a public API two requests each. A reading older than
``max_age_s`` is refreshed even without a new tip, and one that cannot be
refreshed is served for at most ``max_stale_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from oracle.bitcoin.header import Header
from oracle.errors import OracleError, SourceError
from oracle.monitor.cache import Refreshing
from oracle.monitor.status import ChainSnapshot, plan_inputs
from oracle.sources.types import HeaderSource, Tip

V = TypeVar("V")
#: Header facts the oracle already holds: height -> (header time, bits), or None.
KnownHeaders = Callable[[int], tuple[int, int] | None]


@runtime_checkable
class ChainView(Protocol):
    """Read access to the Bitcoin chain as the oracle sees it now (for ``/v1/status``).

    Failures raise ``oracle.errors.OracleError`` subclasses (``SourceError``).
    """

    async def tip(self) -> tuple[int, int]:
        """``(height, header time)`` of the best block."""
        ...

    async def header_time(self, height: int) -> int:
        """Header time (unix seconds) of the best-chain block at ``height``."""
        ...

    async def header_bits(self, height: int) -> int:
        """Compact bits of the best-chain block at ``height``."""
        ...


class ChainMoving(OracleError):
    """The tip changed during every attempt to read a consistent snapshot."""


async def read_snapshot(
    chain: ChainView, attempts: int = 3, *, known: KnownHeaders | None = None
) -> ChainSnapshot:
    """Read the header facts for the current tip; re-read if the tip moved meanwhile.

    A new block (or a reorg) between the reads would mix two chains into one
    estimate, so the tip is read again at the end and must not have changed.
    Raises ``ChainMoving`` when it changed on each of ``attempts`` reads.
    ``known`` supplies stored retarget blocks (the epoch starts) instead of reads.
    """
    for _ in range(attempts):
        tip_height, tip_time = await chain.tip()
        plan = plan_inputs(tip_height)
        start = _known(known, plan.epoch_start_height)
        previous_height = plan.previous_epoch_start_height
        previous = _known(known, previous_height) if previous_height is not None else None
        window = plan.window_start_height
        start_time, epoch_bits, tip_bits, previous_bits, window_time = await asyncio.gather(
            _given(start[0]) if start else chain.header_time(plan.epoch_start_height),
            _given(start[1]) if start else chain.header_bits(plan.epoch_start_height),
            chain.header_bits(tip_height),
            _given(previous[1] if previous else None)
            if previous or previous_height is None
            else chain.header_bits(previous_height),
            chain.header_time(window) if window is not None else _given(None),
        )
        if await chain.tip() == (tip_height, tip_time):
            return ChainSnapshot(
                tip_height=tip_height,
                tip_time=tip_time,
                tip_bits=tip_bits,
                epoch_start_time=start_time,
                epoch_bits=epoch_bits,
                previous_epoch_bits=previous_bits,
                window_start_time=window_time,
            )
    raise ChainMoving(f"the tip changed during each of {attempts} reads")


def _known(known: KnownHeaders | None, height: int) -> tuple[int, int] | None:
    return known(height) if known is not None else None


async def _given(value: V) -> V:
    return value


class SourceChainView:
    """``ChainView`` over the oracle's header sources, any kind (bitcoind, Esplora, ...).

    ``tip()`` asks the sources in order and uses the first that answers; the
    header reads of the same reading go to that source, so one estimate never
    mixes two sources' chains. Headers are remembered per tip (a reading asks
    for the same height's time and bits, and the next reading for the same tip
    needs only the tip itself), and forgotten when the tip changes.
    """

    def __init__(self, sources: HeaderSource | Sequence[HeaderSource]) -> None:
        self.sources: list[HeaderSource] = (
            [sources] if isinstance(sources, HeaderSource) else list(sources)
        )
        if not self.sources:
            raise ValueError("SourceChainView needs at least one source")
        self._source = self.sources[0]
        self._tip: tuple[str, int, str] | None = None
        self._headers: dict[int, asyncio.Task[Header]] = {}

    async def tip(self) -> tuple[int, int]:
        failure: SourceError | None = None
        for source in self.sources:
            try:
                tip = await source.tip()
            except SourceError as exc:
                failure = failure or exc
                continue
            self._use(source, tip)
            return tip.height, (await self._header(tip.height)).time
        assert failure is not None
        raise failure

    def _use(self, source: HeaderSource, tip: Tip) -> None:
        key = (source.name, tip.height, tip.block_hash_hex)
        if key != self._tip:
            self._source, self._tip, self._headers = source, key, {}

    async def _header(self, height: int) -> Header:
        """The header at ``height`` from this reading's source; concurrent asks share one read."""
        task = self._headers.get(height)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(self._fetch(self._source, height))
            task.add_done_callback(_seen)
            self._headers[height] = task
        return await asyncio.shield(task)

    @staticmethod
    async def _fetch(source: HeaderSource, height: int) -> Header:
        return (await source.header_at(height)).header

    async def header_time(self, height: int) -> int:
        return (await self._header(height)).time

    async def header_bits(self, height: int) -> int:
        return (await self._header(height)).bits


def _seen(task: asyncio.Task[Header]) -> None:
    """A failed read is reported to its callers; mark it seen for asyncio."""
    if not task.cancelled():
        task.exception()


class ChainStatus:
    """The last chain reading for ``/v1/status``: one reading per tip, shared by every request.

    ``reading()`` answers from the last reading while it is current; the first
    call after a ``note_tip`` with a new tip, or after the reading turned older
    than ``max_age_s``, starts one new reading (concurrent callers share it).
    While it runs, the previous reading is served if it is younger than
    ``max_stale_s``; a failed reading is remembered for ``retry_after_s`` (so a
    broken chain costs one attempt per ``retry_after_s``, not one per request).
    """

    def __init__(
        self,
        chain: ChainView,
        *,
        known: KnownHeaders | None = None,
        max_age_s: float = 60.0,
        max_stale_s: float = 600.0,
        retry_after_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self.known = known
        self._tip: tuple[int, str] | None = None
        self._cache: Refreshing[ChainSnapshot] = Refreshing(
            self._read,
            ttl_s=max_age_s,
            error_ttl_s=retry_after_s,
            serve_stale_s=max_stale_s,
            name="chain-status",
            clock=clock,
        )

    @property
    def readings(self) -> int:
        """How many readings have started (each costs a handful of chain reads)."""
        return self._cache.loads

    async def _read(self) -> ChainSnapshot:
        return await read_snapshot(self.chain, known=self.known)

    async def reading(self) -> ChainSnapshot:
        """The current reading (see the class docstring for when it is re-read)."""
        return await self._cache.get()

    def note_tip(self, height: int, block_hash_hex: str) -> None:
        """The daemon saw a best tip: a new one (higher, or the same height with another
        hash) makes the reading out of date; the next request starts a new one (and is
        answered from the previous reading meanwhile). A lower tip (a lagging source)
        changes nothing. Nobody asking, nothing is read: a daemon catching up through
        thousands of blocks does not read the chain once per block for nobody."""
        key = (height, block_hash_hex)
        if self._tip is not None and (key == self._tip or height < self._tip[0]):
            return
        self._tip = key
        self._cache.invalidate()

    def start(self) -> None:
        """Start the first reading in the background (at start-up, before any request)."""
        self._cache.refresh_soon()

    async def refresh(self) -> ChainSnapshot:
        """Read now (or join the reading in flight)."""
        self._cache.invalidate()
        return await self._cache.refresh()

    def forget(self) -> None:
        """Drop the reading and any remembered failure."""
        self._tip = None
        self._cache.forget()

    async def close(self) -> None:
        await self._cache.close()
