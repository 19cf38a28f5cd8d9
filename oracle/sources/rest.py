"""HTTP plumbing shared by the public block APIs (Esplora, blockchain.com), and their factory.

One ``RestClient`` per source: aiohttp with connect/read timeouts, a cap on
the response size (read incrementally, so an oversized body is never held in
memory), a per-source rate limit (minimum spacing between requests), and
bounded retries with capped exponential backoff and full jitter for transient
failures only. A 429 waits for ``Retry-After`` when it is within the backoff
cap, else gives up with ``SourceRateLimited``. Every aiohttp exception is
translated here; none leaks upward.

Redirects are never followed: a compromised or misconfigured API could
otherwise point the oracle at internal hosts. A 3xx is a ``SourceMalformed``
naming the status; the operator sets ``base_url`` to the final URL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import aiohttp
import structlog

from oracle.errors import (
    HeightNotFound,
    SourceError,
    SourceMalformed,
    SourceOversized,
    SourceRateLimited,
    SourceTimeout,
    SourceUnavailable,
)
from oracle.sources.checks import upstream
from oracle.sources.types import Tip, utc_now

if TYPE_CHECKING:
    from oracle.config import RestSourceConfig

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """Timeouts, retries, rate and size limits of one REST source."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_limit_per_s: float = 1.0
    max_response_bytes: int = 1_000_000

    @classmethod
    def from_config(cls, config: RestSourceConfig) -> HttpPolicy:
        return cls(
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            max_retries=config.max_retries,
            backoff_base_s=config.backoff_base_s,
            backoff_max_s=config.backoff_max_s,
            rate_limit_per_s=config.rate_limit_per_s,
            max_response_bytes=config.max_response_bytes,
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent/garbled."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utc_now()).total_seconds())


class RestClient:
    """GET text from one base URL under an ``HttpPolicy``."""

    def __init__(self, *, source: str, base_url: str, policy: HttpPolicy) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None
        self._rate_lock = asyncio.Lock()
        self._next_request_at = 0.0

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=self.policy.connect_timeout_s + self.policy.read_timeout_s,
                sock_connect=self.policy.connect_timeout_s,
                sock_read=self.policy.read_timeout_s,
            )
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        return self._session

    async def _wait_rate_limit(self) -> None:
        if self.policy.rate_limit_per_s <= 0:
            return
        async with self._rate_lock:
            now = time.monotonic()
            delay = self._next_request_at - now
            self._next_request_at = (
                max(now, self._next_request_at) + 1 / self.policy.rate_limit_per_s
            )
        if delay > 0:
            await asyncio.sleep(delay)

    async def get_text(self, path: str) -> str:
        """The body of ``GET base_url + path``, retrying transient failures."""
        attempt = 0
        while True:
            try:
                return await self._get_once(path)
            except (SourceRateLimited, SourceUnavailable) as exc:  # never HeightNotFound
                if attempt >= self.policy.max_retries:
                    raise
                delay = self._backoff(attempt, exc)
                if delay is None:
                    raise
                attempt += 1
                log.debug(
                    "rest_retry", source=self.source, path=path, attempt=attempt, delay_s=delay
                )
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int, exc: SourceError) -> float | None:
        cap = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2**attempt)
        if isinstance(exc, SourceRateLimited) and exc.retry_after_s is not None:
            if exc.retry_after_s > self.policy.backoff_max_s:
                return None  # the server wants us gone for longer than we wait
            return exc.retry_after_s + random.uniform(0, cap / 2)
        return random.uniform(cap / 2, cap)

    async def _get_once(self, path: str) -> str:
        await self._wait_rate_limit()
        request = f"GET {path}"
        try:
            async with self._get_session().get(
                self.base_url + path, allow_redirects=False
            ) as response:
                self._check_status(response, request)
                return await self._read_capped(response, request)
        except SourceError:
            raise
        except TimeoutError as exc:
            raise SourceTimeout(
                f"no answer within {self.policy.connect_timeout_s}+{self.policy.read_timeout_s} s",
                source=self.source,
                request=request,
            ) from exc
        except aiohttp.ClientConnectionError as exc:
            raise SourceUnavailable(
                f"cannot connect: {exc}", source=self.source, request=request
            ) from exc
        except aiohttp.ClientError as exc:
            raise SourceUnavailable(  # aiohttp's text may quote what the server sent
                f"HTTP error {type(exc).__name__}: {upstream(str(exc))}",
                source=self.source,
                request=request,
            ) from exc

    def _check_status(self, response: aiohttp.ClientResponse, request: str) -> None:
        status = response.status
        if status == 200:
            return
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise SourceRateLimited(
                f"HTTP 429 (Retry-After {retry_after})",
                source=self.source,
                request=request,
                retry_after_s=retry_after,
            )
        if status == 404:
            raise HeightNotFound("HTTP 404 (not found)", source=self.source, request=request)
        if 300 <= status < 400:
            raise SourceMalformed(
                f"HTTP {status}: redirects are refused (set base_url to the final URL)",
                source=self.source,
                request=request,
            )
        if status >= 500:
            raise SourceUnavailable(f"HTTP {status}", source=self.source, request=request)
        raise SourceMalformed(f"unexpected HTTP {status}", source=self.source, request=request)

    async def _read_capped(self, response: aiohttp.ClientResponse, request: str) -> str:
        cap = self.policy.max_response_bytes
        length = response.content_length
        if length is not None and length > cap:
            raise SourceOversized(
                f"response of {length} bytes exceeds the cap of {cap}",
                source=self.source,
                request=request,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > cap:
                raise SourceOversized(
                    f"response exceeds the cap of {cap} bytes", source=self.source, request=request
                )
            chunks.append(chunk)
        try:
            return b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceMalformed(
                f"response is not UTF-8 text: {exc}", source=self.source, request=request
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def poll_tips(
    name: str, tip: Callable[[], Awaitable[Tip]], interval_s: float
) -> AsyncIterator[Tip]:
    """Poll ``tip()`` every ``interval_s``; yield changes; log failures and carry on."""
    last: tuple[int, str] | None = None
    while True:
        try:
            current = await tip()
        except SourceError as exc:
            log.warning("source_poll_failed", source=name, error=str(exc))
        else:
            key = (current.height, current.block_hash_hex)
            if key != last:
                last = key
                yield current
        await asyncio.sleep(interval_s)
