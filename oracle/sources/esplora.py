"""Esplora (blockstream.info / mempool.space ``/api``) as a ``HeaderSource``.

Endpoints (reference/sources-api.md §2): ``/blocks/tip/hash`` then
``/block/:hash/status`` for a consistent (height, hash) tip;
``/block-height/:h`` (text hash of the best-chain block at h) then
``/block/:hash/header`` (160 hex chars) for a header, whose hash must equal
the hash it was served under. 404 means past the tip (``HeightNotFound``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from oracle.errors import SourceInconsistent
from oracle.sources.checks import (
    field,
    make_observation,
    parse_header_hex_strict,
    parse_json,
    require_dict,
    require_hash_hex,
    require_height,
)
from oracle.sources.rest import HttpPolicy, RestClient, poll_tips
from oracle.sources.types import Observation, Tip, utc_now


class EsploraSource:
    """An Esplora REST API (base URL like ``https://mempool.space/api``)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        policy: HttpPolicy | None = None,
        poll_interval_s: float = 60.0,
    ) -> None:
        self.name = name
        self.poll_interval_s = poll_interval_s
        self._http = RestClient(source=name, base_url=base_url, policy=policy or HttpPolicy())

    def __repr__(self) -> str:
        return f"EsploraSource(name={self.name!r}, base_url={self._http.base_url!r})"

    async def tip(self) -> Tip:
        block_hash = require_hash_hex(
            await self._http.get_text("/blocks/tip/hash"),
            source=self.name,
            request="GET /blocks/tip/hash",
        )
        request = f"GET /block/{block_hash}/status"
        status = require_dict(
            parse_json(
                await self._http.get_text(f"/block/{block_hash}/status"),
                source=self.name,
                request=request,
            ),
            source=self.name,
            request=request,
            what="block status",
        )
        height = require_height(
            field(status, "height", source=self.name, request=request),
            source=self.name,
            request=request,
        )
        if field(status, "in_best_chain", source=self.name, request=request) is not True:
            raise SourceInconsistent(
                f"tip {block_hash} is not in its best chain", source=self.name, request=request
            )
        return Tip(
            source=self.name, height=height, block_hash_hex=block_hash, observed_at=utc_now()
        )

    async def header_at(self, height: int) -> Observation:
        request = f"GET /block-height/{height}"
        block_hash = require_hash_hex(
            await self._http.get_text(f"/block-height/{height}"), source=self.name, request=request
        )
        request = f"GET /block/{block_hash}/header"
        header = parse_header_hex_strict(
            await self._http.get_text(f"/block/{block_hash}/header"),
            source=self.name,
            request=request,
        )
        return make_observation(
            source=self.name,
            request=request,
            height=height,
            block_hash_hex=block_hash,
            header=header,
            observed_at=utc_now(),
        )

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return list(await asyncio.gather(*(self.header_at(h) for h in heights)))

    def new_blocks(self) -> AsyncIterator[Tip]:
        return poll_tips(self.name, self.tip, self.poll_interval_s)

    async def close(self) -> None:
        await self._http.close()
