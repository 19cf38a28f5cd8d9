"""The API's view of the chain (``oracle.api.context.ChainView``) over one header source.

``/v1/status`` estimates the next retarget from the tip and the epoch's first
block; this adapter answers those reads from a block source, afresh on every
call, so the estimate is never older than the source.
"""

from __future__ import annotations

from oracle.sources.types import HeaderSource


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
