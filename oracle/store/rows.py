"""ORM rows -> the typed records the repository hands out (``oracle.store.records``).

Callers of the repository never see SQLAlchemy objects; these converters are
the one place a row's columns become a record's typed fields (states become
``StrEnum`` members here).
"""

from __future__ import annotations

from collections.abc import Sequence

from oracle.store.models import Observation, Retarget
from oracle.store.records import ObservationRecord, RetargetRecord
from oracle.store.states import RetargetStatus

_STATUS_RANK = {
    RetargetStatus.PUBLISHED: 0,
    RetargetStatus.AGREED: 1,
    RetargetStatus.OBSERVED: 2,
    RetargetStatus.ORPHANED: 3,
}


def retarget_record(row: Retarget, **extra: object) -> RetargetRecord:
    return RetargetRecord(
        network=row.network,
        epoch=row.epoch,
        height=row.height,
        block_hash_hex=row.block_hash_hex,
        bits=row.bits,
        time=row.time,
        raw_header=row.raw_header,
        status=RetargetStatus(row.status),
        sources=tuple(row.sources or ()),
        observed_at=row.observed_at,
        agreed_at=row.agreed_at,
        published_at=row.published_at,
        orphaned_at=row.orphaned_at,
        **extra,  # type: ignore[arg-type]
    )


def observation_record(row: Observation) -> ObservationRecord:
    return ObservationRecord(
        network=row.network,
        epoch=row.epoch,
        source=row.source,
        ok=row.ok,
        height=row.height,
        block_hash_hex=row.block_hash_hex,
        bits=row.bits,
        time=row.time,
        raw_header=row.raw_header,
        error_kind=row.error_kind,
        error_message=row.error_message,
        observed_at=row.observed_at,
        last_observed_at=row.last_observed_at,
    )


def primary_row(rows: Sequence[Retarget]) -> Retarget:
    """The row that represents an epoch: published > agreed > newest observed > newest orphaned."""
    return min(
        rows,
        key=lambda r: (_STATUS_RANK[RetargetStatus(r.status)], -r.observed_at.timestamp(), r.id),
    )
