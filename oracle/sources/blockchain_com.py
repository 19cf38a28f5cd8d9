"""blockchain.com (``blockchain.info``) as a ``HeaderSource``.

This API serves no raw 80-byte header on its own (reference/sources-api.md §4):
``/block-height/:h?format=json`` gives whole blocks as JSON (possibly several,
orphans included; we take the one with ``main_chain: true``) and
``/rawblock/:hash?format=hex`` gives the whole raw block. We read the JSON
fields ``ver``, ``prev_block``, ``mrkl_root``, ``time``, ``bits``, ``nonce``,
rebuild the 80-byte header from them, and require that it hashes to the
block's ``hash``: only then are the fields known to be the real ones. The tip
comes from ``/latestblock``. Whole-block bodies are large on mainnet (they
include the ``tx`` array: ~7 MB for a full block, twice that when a reorg
leaves two blocks at the height), so this source needs a much larger
``max_response_bytes`` than Esplora (the shipped configs: 32 MB); it is meant
as a third opinion.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from oracle.bitcoin.header import parse_header
from oracle.errors import HeightNotFound, SourceInconsistent, SourceMalformed
from oracle.sources.checks import (
    build_header,
    field,
    make_observation,
    parse_json,
    require_dict,
    require_hash_hex,
    require_height,
    require_int,
)
from oracle.sources.rest import HttpPolicy, RestClient, poll_tips
from oracle.sources.types import Observation, Tip, utc_now


class BlockchainComSource:
    """The blockchain.info API (base URL like ``https://blockchain.info``)."""

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
        return f"BlockchainComSource(name={self.name!r}, base_url={self._http.base_url!r})"

    async def tip(self) -> Tip:
        request = "GET /latestblock"
        latest = require_dict(
            parse_json(
                await self._http.get_text("/latestblock"), source=self.name, request=request
            ),
            source=self.name,
            request=request,
            what="latestblock",
        )
        return Tip(
            source=self.name,
            height=require_height(
                field(latest, "height", source=self.name, request=request),
                source=self.name,
                request=request,
            ),
            block_hash_hex=require_hash_hex(
                field(latest, "hash", source=self.name, request=request),
                source=self.name,
                request=request,
            ),
            observed_at=utc_now(),
        )

    async def header_at(self, height: int) -> Observation:
        path = f"/block-height/{height}?format=json"
        request = f"GET {path}"
        body = require_dict(
            parse_json(await self._http.get_text(path), source=self.name, request=request),
            source=self.name,
            request=request,
            what="block-height",
        )
        blocks = field(body, "blocks", source=self.name, request=request)
        if not isinstance(blocks, list):
            raise SourceMalformed(
                f"blocks should be a list, got {type(blocks).__name__}",
                source=self.name,
                request=request,
            )
        main = [b for b in blocks if isinstance(b, dict) and b.get("main_chain") is True]
        if not main:
            raise HeightNotFound(
                f"no main-chain block among {len(blocks)}", source=self.name, request=request
            )
        if len(main) > 1:
            raise SourceInconsistent(
                f"{len(main)} blocks claim main_chain at height {height}",
                source=self.name,
                request=request,
            )
        return self._observation(main[0], height=height, request=request)

    def _observation(self, block: dict[str, Any], *, height: int, request: str) -> Observation:
        def get(key: str) -> Any:
            return field(block, key, source=self.name, request=request)

        def uint32(key: str) -> int:
            return require_int(get(key), source=self.name, request=request, what=key)

        served_height = require_height(get("height"), source=self.name, request=request)
        if served_height != height:
            raise SourceInconsistent(
                f"asked for height {height}, got a block at {served_height}",
                source=self.name,
                request=request,
            )
        block_hash = require_hash_hex(get("hash"), source=self.name, request=request)
        prev = require_hash_hex(
            get("prev_block"), source=self.name, request=request, what="prev_block"
        )
        merkle = require_hash_hex(
            get("mrkl_root"), source=self.name, request=request, what="mrkl_root"
        )
        raw = build_header(
            version=uint32("ver"),
            prev_hash_hex=prev,
            merkle_root_hex=merkle,
            time=uint32("time"),
            bits=uint32("bits"),
            nonce=uint32("nonce"),
        )
        return make_observation(
            source=self.name,
            request=request,
            height=height,
            block_hash_hex=block_hash,
            header=parse_header(raw),
            observed_at=utc_now(),
        )

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return list(await asyncio.gather(*(self.header_at(h) for h in heights)))

    def new_blocks(self) -> AsyncIterator[Tip]:
        return poll_tips(self.name, self.tip, self.poll_interval_s)

    async def close(self) -> None:
        await self._http.close()
