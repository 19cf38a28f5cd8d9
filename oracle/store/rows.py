"""ORM rows -> the typed records the repository hands out (``oracle.store.records``).

Callers of the repository never see SQLAlchemy objects; these converters are
the one place a row's columns become a record's typed fields (states become
``StrEnum`` members here). ``epoch_record`` assembles one epoch's full record
(primary block, observations, publications, other candidates) the same way
for ``get_retarget`` and for the bulk read the API snapshot is built from.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from oracle.store.models import (
    Attestation,
    Disagreement,
    IndexValue,
    Observation,
    Publication,
    Retarget,
)
from oracle.store.records import (
    AttestationRecord,
    DisagreementRecord,
    IndexRecord,
    ObservationRecord,
    PublicationRecord,
    RetargetRecord,
)
from oracle.store.states import DisagreementKind, RetargetStatus

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
        last_header=row.last_header,
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


def epoch_record(
    rows: Sequence[Retarget],
    observations: Sequence[Observation],
    publications: Sequence[Publication],
) -> RetargetRecord:
    """One epoch as ``get_retarget`` returns it: the primary row with every source's
    observations (as ordered by the caller), its publications and the other candidates."""
    primary = primary_row(rows)
    return retarget_record(
        primary,
        observations=tuple(observation_record(o) for o in observations),
        publications=tuple(
            PublicationRecord(
                p.chain_id, p.contract_address, p.tx_hash, p.block_hash_hex, p.published_at
            )
            for p in publications
        ),
        others=tuple(
            retarget_record(r) for r in sorted(rows, key=lambda r: r.id) if r is not primary
        ),
    )


def index_record(row: IndexValue) -> IndexRecord:
    return IndexRecord(
        network=row.network,
        n_days=row.n_days,
        epoch=row.epoch,
        value=Fraction(row.value_fraction),
        value_decimal=row.value_decimal,
        fixed=row.value_fixed,
        computed_at=row.computed_at,
    )


def disagreement_record(row: Disagreement) -> DisagreementRecord:
    return DisagreementRecord(
        row.id,
        row.network,
        row.epoch,
        DisagreementKind(row.kind),
        row.field,
        row.claims,
        row.evidence,
        row.recorded_at,
    )


def attestation_record(row: Attestation) -> AttestationRecord:
    return AttestationRecord(
        row.chain_id,
        row.contract_address,
        row.epoch,
        row.signer,
        row.report,
        row.report_hash,
        row.signature_hex,
        row.source,
        row.received_at,
    )
