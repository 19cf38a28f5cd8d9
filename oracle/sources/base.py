"""The common interface of block sources and the typed values they produce.

Every value a source hands upward carries the source's name and the UTC time
it was observed, so cross-checking, storage and monitoring can say who said
what, and when. Failures are values too (``SourceFailure``): a misbehaving
source is recorded, never allowed to crash the watcher.

Source errors are subclasses of ``oracle.errors.SourceError`` with a short
``kind`` used in metrics and in ``SourceFailure.kind``::

    SourceError
    ├── SourceUnavailable          kind "unavailable"  refused, reset, 5xx
    │   ├── SourceTimeout          kind "timeout"
    │   ├── SourceRateLimited      kind "rate_limited" 429 (retry_after_s)
    │   ├── SourceWarmingUp        kind "warming_up"   bitcoind RPC -28
    │   ├── SourceAuthFailed       kind "auth"         401 / wrong credentials
    │   └── HeightNotFound         kind "not_found"    height past the source's tip
    └── SourceDataError
        ├── SourceMalformed        kind "malformed"    wrong type, truncated, not JSON, HTML
        ├── SourceInconsistent     kind "inconsistent" header does not hash to the hash served
        └── SourceOversized        kind "oversized"    response larger than the cap
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from oracle.bitcoin.header import Header
from oracle.errors import SourceDataError, SourceError, SourceUnavailable

if TYPE_CHECKING:
    from oracle.config import Config


def utc_now() -> datetime:
    """The observation clock (UTC, timezone-aware)."""
    return datetime.now(UTC)


class SourceTimeout(SourceUnavailable):
    kind = "timeout"


class SourceRateLimited(SourceUnavailable):
    kind = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        request: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, source=source, request=request)
        self.retry_after_s = retry_after_s


class SourceWarmingUp(SourceUnavailable):
    kind = "warming_up"


class SourceAuthFailed(SourceUnavailable):
    kind = "auth"


class HeightNotFound(SourceUnavailable):
    kind = "not_found"


class SourceInconsistent(SourceDataError):
    kind = "inconsistent"


class SourceOversized(SourceDataError):
    kind = "oversized"


class SourceMalformed(SourceDataError):
    kind = "malformed"


def error_kind(exc: SourceError) -> str:
    """The metrics/``SourceFailure`` kind of a source error."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    return "malformed" if isinstance(exc, SourceDataError) else "unavailable"


@dataclass(frozen=True, slots=True)
class Tip:
    """A source's view of its best chain tip."""

    source: str
    height: int
    block_hash_hex: str
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Observation:
    """A header a source served for a height (its hash is checked against the hash served)."""

    source: str
    height: int
    block_hash_hex: str
    header: Header
    observed_at: datetime

    def __post_init__(self) -> None:
        if self.header.block_hash_hex != self.block_hash_hex:
            raise SourceInconsistent(
                f"header hashes to {self.header.block_hash_hex}, served as {self.block_hash_hex}",
                source=self.source,
                request=f"height {self.height}",
            )


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A source that did not give a usable answer; kept with what went wrong."""

    source: str
    height: int | None
    request: str
    kind: str
    message: str
    observed_at: datetime

    @classmethod
    def from_error(cls, exc: SourceError, *, source: str, height: int | None) -> SourceFailure:
        return cls(
            source=exc.source or source,
            height=height,
            request=exc.request,
            kind=error_kind(exc),
            message=str(exc),
            observed_at=utc_now(),
        )


@runtime_checkable
class HeaderSource(Protocol):
    """What the watcher needs from any block source."""

    name: str

    async def tip(self) -> Tip: ...

    async def header_at(self, height: int) -> Observation: ...

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]: ...

    def new_blocks(self) -> AsyncIterator[Tip]: ...

    async def close(self) -> None: ...


def build_sources(config: Config) -> list[HeaderSource]:
    """Every enabled source of the configuration, bitcoind first."""
    from oracle.sources.bitcoind import BitcoindSource
    from oracle.sources.rest import build_rest_source

    sources: list[HeaderSource] = []
    if config.bitcoind.enabled:
        sources.append(BitcoindSource.from_config(config.bitcoind))
    sources.extend(build_rest_source(entry) for entry in config.sources if entry.enabled)
    return sources
