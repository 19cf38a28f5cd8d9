"""Bundled mainnet checkpoints: the first and last header of every epoch to height 832,608.

Shipped inside the package like the checkpoints of light wallets. They serve two
purposes: ``replay`` can run offline from them (``CheckpointSource`` is a
``HeaderSource`` that only knows epoch-boundary heights), and the cross-check
can use them as a trust anchor for old epochs: a source that contradicts a
checkpoint is lying, whatever quorum it finds.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator, Sequence
from functools import cache
from importlib import resources

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.bitcoin.header import Header, parse_header_hex
from oracle.errors import HeightNotFound
from oracle.sources.types import Observation, Tip, utc_now

CHECKPOINT_FILE = "epoch_boundary_headers_0_832608.csv"
SOURCE_NAME = "checkpoints"


@cache
def mainnet_checkpoints() -> dict[int, Header]:
    """Height -> header for every bundled epoch-boundary header (hash and PoW recomputed)."""
    path = resources.files("oracle") / "data" / CHECKPOINT_FILE
    headers: dict[int, Header] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            header = parse_header_hex(row["header_hex"])
            if header.block_hash_hex != row["hash"]:
                raise ValueError(
                    f"bundled checkpoint {row['height']} does not hash to {row['hash']}"
                )
            headers[int(row["height"])] = header
    return headers


def last_checkpoint_epoch() -> int:
    return max(mainnet_checkpoints()) // EPOCH_BLOCKS


class CheckpointSource:
    """A read-only ``HeaderSource`` over the bundled checkpoints (mainnet only)."""

    name = SOURCE_NAME

    def __init__(self) -> None:
        self._headers = mainnet_checkpoints()
        self._tip_height = max(self._headers)

    async def tip(self) -> Tip:
        header = self._headers[self._tip_height]
        return Tip(self.name, self._tip_height, header.block_hash_hex, utc_now())

    async def header_at(self, height: int) -> Observation:
        header = self._headers.get(height)
        if header is None:
            raise HeightNotFound(
                "only epoch-boundary heights up to 832,608 are bundled",
                source=self.name,
                request=f"height {height}",
            )
        return Observation(self.name, height, header.block_hash_hex, header, utc_now())

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return [await self.header_at(height) for height in heights]

    async def new_blocks(self) -> AsyncIterator[Tip]:
        """The bundle never grows: announce the tip once, then stay silent."""
        yield await self.tip()
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None
