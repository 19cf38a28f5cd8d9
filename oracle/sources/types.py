"""The common interface of block sources and the typed values they produce (I/O-free).

Every value a source hands upward carries the source's name and the UTC time
it was observed, so cross-checking, storage and monitoring can say who said
what, and when. Failures are values too (``SourceFailure``): a misbehaving
source is recorded, never allowed to crash the watcher.

It imports no I/O library, so the pure cross-check (``oracle.agreement.crosscheck``)
can take its value types from here. Source errors (``oracle.errors.SourceError``
and its kinds) carry a short ``kind`` used in metrics and in ``SourceFailure.kind``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from oracle.bitcoin.header import Header
from oracle.errors import SourceDataError, SourceError, SourceInconsistent


def utc_now() -> datetime:
    """The observation clock (UTC, timezone-aware)."""
    return datetime.now(UTC)


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
