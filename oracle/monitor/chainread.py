"""Reading the chain for the next-retarget estimate: the I/O half of ``oracle.monitor.status``.

``oracle.monitor.status`` is pure: ``plan_inputs`` names the heights an
estimate needs and ``estimate_next_retarget`` computes it from a
``ChainSnapshot``. This module fills that snapshot from a ``ChainView`` (the
daemon uses ``SourceChainView`` over its primary source; tests
over recorded headers) on every call, with no cached epoch state. The HTTP
API's ``/v1/status`` handler (``oracle.api.handlers``) is its caller; nothing
here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from oracle.errors import OracleError
from oracle.monitor.status import ChainSnapshot, plan_inputs
from oracle.sources.types import HeaderSource


@runtime_checkable
class ChainView(Protocol):
    """Read access to the Bitcoin chain as the oracle sees it now (for ``/v1/status``).

    The daemon implements it over its primary source; every call reads the
    chain afresh (no cached epoch state: see ``oracle.monitor.status``).
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


async def read_snapshot(chain: ChainView, attempts: int = 3) -> ChainSnapshot:
    """Read the header facts for the current tip; re-read if the tip moved meanwhile.

    A new block (or a reorg) between the reads would mix two chains into one
    estimate, so the tip is read again at the end and must not have changed.
    Raises ``ChainMoving`` when it changed on each of ``attempts`` reads.
    """
    for _ in range(attempts):
        tip_height, tip_time = await chain.tip()
        plan = plan_inputs(tip_height)
        start = plan.epoch_start_height
        previous = plan.previous_epoch_start_height
        window = plan.window_start_height
        start_time, epoch_bits, tip_bits, previous_bits, window_time = await asyncio.gather(
            chain.header_time(start),
            chain.header_bits(start),
            chain.header_bits(tip_height),
            chain.header_bits(previous) if previous is not None else _none(),
            chain.header_time(window) if window is not None else _none(),
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


async def _none() -> None:
    return None


class SourceChainView:
    """``ChainView`` over one header source: every call reads the chain afresh."""

    def __init__(self, source: HeaderSource) -> None:
        self.source = source

    async def tip(self) -> tuple[int, int]:
        tip = await self.source.tip()
        observation = await self.source.header_at(tip.height)
        return tip.height, observation.header.time

    async def header_time(self, height: int) -> int:
        return (await self.source.header_at(height)).header.time

    async def header_bits(self, height: int) -> int:
        return (await self.source.header_at(height)).header.bits
