"""bitcoind as a ``HeaderSource``: JSON-RPC for data, ZMQ ``hashblock`` for new-block hints.

RPC runs off the event loop (``asyncio.to_thread`` over ``rpc.RpcClient``);
several headers are fetched with two JSON-RPC batches (hashes, then raw
headers). ZMQ is only a hint: every notification is re-read over RPC, the
4-byte little-endian sequence number reveals missed notifications (then we
poll), and when ZMQ is not configured or stays quiet for ``poll_interval_s``
the tip is polled. The ZMQ socket is re-created after ``zmq_silence_s`` of
silence or a malformed message. Only RPCs that Bitcoin Core and the regtest
node of DESIGN.md both have are used: getbestblockhash, getblockhash,
getblockheader.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
import zmq
import zmq.asyncio

from oracle.config import BitcoindConfig, read_secret, redact_url
from oracle.errors import SourceError, SourceMalformed
from oracle.sources.checks import (
    make_observation,
    parse_header_hex_strict,
    require_dict,
    require_hash_hex,
    require_height,
    require_int,
)
from oracle.sources.rpc import (
    RpcClient,
    RpcCredentials,
    RpcError,
    error_from_rpc,
    split_url_credentials,
)
from oracle.sources.types import Observation, Tip, utc_now

log = structlog.get_logger(__name__)


def parse_hashblock(frames: Sequence[bytes]) -> tuple[str, int]:
    """(block_hash_hex, sequence) from a ZMQ ``hashblock`` message.

    The body is already in RPC display order (bitcoin/bitcoin#31856), followed
    by a separate 4-byte little-endian sequence frame.
    """
    if len(frames) != 3:
        raise ValueError(f"hashblock message should have 3 frames, got {len(frames)}")
    topic, body, seq = frames
    if topic != b"hashblock" or len(body) != 32 or len(seq) != 4:
        raise ValueError(
            f"bad hashblock message: topic {topic[:16]!r}, body {len(body)} bytes, "
            f"seq {len(seq)} bytes"
        )
    return body.hex(), struct.unpack("<I", seq)[0]


class BitcoindSource:
    """A bitcoind node (Bitcoin Core, or the regtest node) as a header source."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        credentials: RpcCredentials | None = None,
        zmq_hashblock: str = "",
        poll_interval_s: float = 30.0,
        zmq_silence_s: float = 1800.0,
        timeout_s: float = 30.0,
    ) -> None:
        clean_url, user, password = split_url_credentials(url)
        if credentials is None or not (credentials.user or credentials.cookie_file):
            credentials = RpcCredentials(user=user, password=password)
        self.name = name
        self.url = clean_url
        self.zmq_hashblock = zmq_hashblock
        self.poll_interval_s = poll_interval_s
        self.zmq_silence_s = zmq_silence_s
        self._rpc = RpcClient(
            source=name, url=clean_url, credentials=credentials, timeout_s=timeout_s
        )
        self._zmq_ctx: zmq.asyncio.Context | None = None
        #: monotonic time of the last ZMQ notification received (benchmarks read it)
        self.last_notification_at: float | None = None

    @classmethod
    def from_config(cls, config: BitcoindConfig) -> BitcoindSource:
        password = read_secret(
            config.rpc_password, config.rpc_password_file, "bitcoind.rpc_password"
        )
        return cls(
            name=config.name,
            url=config.url,
            credentials=RpcCredentials(
                user=config.rpc_user, password=password.reveal(), cookie_file=config.cookie_file
            ),
            zmq_hashblock=config.zmq_hashblock,
            poll_interval_s=config.poll_interval_s,
            zmq_silence_s=config.zmq_silence_s,
            timeout_s=config.timeout_s,
        )

    def __repr__(self) -> str:
        return f"BitcoindSource(name={self.name!r}, url={redact_url(self.url)!r})"

    async def _batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any | RpcError]:
        return await asyncio.to_thread(self._rpc.batch, calls)

    async def _call(self, method: str, *params: Any) -> Any:
        return await asyncio.to_thread(self._rpc.call, method, *params)

    async def tip(self) -> Tip:
        block_hash = require_hash_hex(
            await self._call("getbestblockhash"), source=self.name, request="getbestblockhash"
        )
        return await self._tip_of(block_hash)

    async def _tip_of(self, block_hash_hex: str) -> Tip:
        request = f"getblockheader({block_hash_hex}, true)"
        header = require_dict(
            await self._call("getblockheader", block_hash_hex, True),
            source=self.name,
            request=request,
            what="getblockheader",
        )
        height = require_height(header.get("height"), source=self.name, request=request)
        confirmations = require_int(
            header.get("confirmations"),
            source=self.name,
            request=request,
            what="confirmations",
            minimum=-1,
            maximum=2**31,
        )
        if confirmations < 1:  # -1: no longer on the best chain (a hint overtaken by a reorg)
            raise SourceMalformed(
                f"block {block_hash_hex} is not on the best chain",
                source=self.name,
                request=request,
            )
        return Tip(
            source=self.name, height=height, block_hash_hex=block_hash_hex, observed_at=utc_now()
        )

    async def header_at(self, height: int) -> Observation:
        (observation,) = await self.headers_at([height])
        return observation

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        """Headers at several heights: a batch of getblockhash, then of getblockheader(h, false)."""
        if not heights:
            return []
        hashes = await self._batch([("getblockhash", [h]) for h in heights])
        block_hashes = [
            self._value(
                result,
                f"getblockhash({h})",
                lambda v, r: require_hash_hex(v, source=self.name, request=r),
            )
            for h, result in zip(heights, hashes, strict=True)
        ]
        headers = await self._batch([("getblockheader", [bh, False]) for bh in block_hashes])
        observed_at = utc_now()
        out = []
        for height, block_hash, result in zip(heights, block_hashes, headers, strict=True):
            request = f"getblockheader({block_hash}, false)"
            header = self._value(
                result,
                request,
                lambda v, r: parse_header_hex_strict(v, source=self.name, request=r),
            )
            out.append(
                make_observation(
                    source=self.name,
                    request=request,
                    height=height,
                    block_hash_hex=block_hash,
                    header=header,
                    observed_at=observed_at,
                )
            )
        return out

    def _value(self, result: Any, request: str, check: Any) -> Any:
        if isinstance(result, RpcError):
            raise error_from_rpc(result, source=self.name, request=request)
        return check(result, request)

    async def new_blocks(self) -> AsyncIterator[Tip]:
        """Tips as they change: ZMQ ``hashblock`` when configured, polling otherwise/as fallback."""
        last: tuple[int, str] | None = None
        async for tip in self._raw_tips():
            key = (tip.height, tip.block_hash_hex)
            if key != last:
                last = key
                yield tip

    async def _raw_tips(self) -> AsyncIterator[Tip]:
        if not self.zmq_hashblock:
            while True:
                tip = await self._poll_tip()
                if tip is not None:
                    yield tip
                await asyncio.sleep(self.poll_interval_s)
        while True:  # reconnect loop
            async for tip in self._zmq_tips():
                yield tip

    async def _poll_tip(self) -> Tip | None:
        try:
            return await self.tip()
        except SourceError as exc:
            log.warning("source_poll_failed", source=self.name, error=str(exc))
            return None

    async def _zmq_tips(self) -> AsyncIterator[Tip]:
        if self._zmq_ctx is None:
            self._zmq_ctx = zmq.asyncio.Context()
        socket = self._zmq_ctx.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, 0)
        expected_seq: int | None = None
        last_message = time.monotonic()
        try:
            socket.setsockopt(zmq.SUBSCRIBE, b"hashblock")
            socket.connect(self.zmq_hashblock)  # a bad endpoint raises: the socket is closed
            # the subscription takes effect asynchronously: read the tip once now
            tip = await self._poll_tip()
            if tip is not None:
                yield tip
            while True:
                if not await socket.poll(timeout=int(self.poll_interval_s * 1000)):
                    tip = await self._poll_tip()  # ZMQ quiet: polling fallback
                    if tip is not None:
                        yield tip
                    if time.monotonic() - last_message > self.zmq_silence_s:
                        log.warning("zmq_silent_reconnecting", source=self.name)
                        return
                    continue
                received_at = time.monotonic()
                last_message = received_at
                block_hash = ""
                # drain a burst: only the newest block needs re-reading over RPC
                while await socket.poll(timeout=0) or not block_hash:
                    frames = await socket.recv_multipart()
                    try:
                        block_hash, seq = parse_hashblock(frames)
                    except ValueError as exc:
                        log.warning("zmq_malformed", source=self.name, error=str(exc))
                        return
                    if expected_seq is not None and seq != expected_seq:
                        log.warning(
                            "zmq_sequence_gap", source=self.name, expected=expected_seq, got=seq
                        )
                    expected_seq = (seq + 1) & 0xFFFFFFFF
                self.last_notification_at = received_at
                tip = await self._tip_from_hint(block_hash)
                if tip is not None:
                    yield tip
        finally:
            socket.close(linger=0)

    async def _tip_from_hint(self, block_hash_hex: str) -> Tip | None:
        """Re-read a notified block over RPC: ZMQ is a hint, not truth."""
        try:
            return await self._tip_of(block_hash_hex)
        except SourceError as exc:
            log.warning(
                "zmq_hint_unreadable", source=self.name, block=block_hash_hex, error=str(exc)
            )
            return await self._poll_tip()

    async def close(self) -> None:
        await asyncio.to_thread(self._rpc.close)
        if self._zmq_ctx is not None:
            self._zmq_ctx.destroy(linger=0)
            self._zmq_ctx = None
