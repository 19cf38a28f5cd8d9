"""Ask other operators' nodes for their signatures: ``GET {peer}/v1/attestations/{epoch}``.

Peers are other people's servers, so nothing a peer does may disturb this
node: every request has a total timeout, a body larger than
``max_response_bytes`` is cut off unread (checked on ``Content-Length`` and
again while reading), anything that is not the attestation format is
garbage, and a failing peer is skipped with capped exponential backoff.
Failures are logged once, then at most once a minute, then "recovered"
(STYLE.md section 4). Peer URLs may carry credentials, so logs and errors
name a peer by scheme and host only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import structlog

from oracle.errors import PeerError
from oracle.monitor.alerts import webhook_label
from oracle.peers.wire import PeerDataError, SignedReport, parse_body
from oracle.sources.boundedjson import loads_bounded

log = structlog.get_logger(__name__)

LOG_EVERY_S = 60.0


class PeerUnavailable(PeerError):
    """A peer did not answer in time, refused, or answered with an HTTP error."""


@dataclass
class Peer:
    """One peer's base URL and its backoff state."""

    url: str
    failures: int = 0
    next_try_at: float = 0.0
    last_logged_at: float = 0.0

    @property
    def label(self) -> str:
        """Scheme and host only: safe for logs, metrics and the database."""
        return webhook_label(self.url)

    def ready(self, now: float) -> bool:
        return now >= self.next_try_at


@dataclass
class PeerClient:
    """Fetches attestation lists from peers; one ``aiohttp`` session for all of them."""

    urls: tuple[str, ...]
    timeout_s: float
    max_response_bytes: int
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    peers: list[Peer] = field(init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.peers = [Peer(url.rstrip("/")) for url in self.urls]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"Accept": "application/json"},
            )
        return self._session

    async def fetch(
        self, peer: Peer, epoch: int, *, chain_id: int, contract_address: str
    ) -> list[SignedReport]:
        """The peer's signatures for ``epoch``; records success or failure for backoff.

        Raises ``PeerUnavailable`` or ``PeerDataError`` (after logging and backing off)."""
        try:
            body = await self._get_json(peer, f"/v1/attestations/{epoch}")
            entries, problems = parse_body(
                body, epoch=epoch, chain_id=chain_id, contract_address=contract_address
            )
        except (PeerUnavailable, PeerDataError) as exc:
            self._failed(peer, exc)
            raise
        for problem in problems:
            log.warning("peer_entry_dropped", peer=peer.label, epoch=epoch, problem=problem)
        self._succeeded(peer)
        return entries

    async def _get_json(self, peer: Peer, path: str) -> object:
        try:
            async with self._http().get(peer.url + path, allow_redirects=False) as response:
                if response.status != 200:
                    raise PeerUnavailable(f"HTTP {response.status}")
                declared = response.content_length
                if declared is not None and declared > self.max_response_bytes:
                    raise PeerDataError(
                        f"answer of {declared} bytes exceeds {self.max_response_bytes}"
                    )
                body = await _read_capped(response, self.max_response_bytes)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PeerUnavailable(f"{type(exc).__name__}") from None
        try:
            return loads_bounded(body)
        except (UnicodeDecodeError, ValueError):
            raise PeerDataError("answer is not JSON") from None

    def _failed(self, peer: Peer, exc: Exception) -> None:
        now = time.monotonic()
        peer.failures += 1
        delay = min(self.backoff_base_s * 2 ** (peer.failures - 1), self.backoff_max_s)
        peer.next_try_at = now + delay
        if peer.failures == 1 or now - peer.last_logged_at >= LOG_EVERY_S:
            peer.last_logged_at = now
            log.warning(
                "peer_failed",
                peer=peer.label,
                error=str(exc),
                error_type=type(exc).__name__,
                failures=peer.failures,
                retry_in_s=round(delay, 2),
            )

    def _succeeded(self, peer: Peer) -> None:
        if peer.failures:
            log.info("peer_recovered", peer=peer.label, after_failures=peer.failures)
        peer.failures = 0
        peer.next_try_at = 0.0


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or ``PeerDataError`` as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16_384):
        size += len(chunk)
        if size > limit:
            raise PeerDataError(f"answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
