"""Typed values the repository takes and returns (frozen dataclasses, no ORM objects).

Store stage of DESIGN.md. Callers never see SQLAlchemy rows: everything that
leaves ``oracle.store.repository`` is one of these, with exact types (ints for
bits and wei, ``Fraction`` for index values, UTC datetimes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

from oracle.store.states import (
    LIVE_SUBMISSION_STATES,
    DisagreementKind,
    RetargetStatus,
    SubmissionState,
)


@dataclass(frozen=True, slots=True)
class ObservationInput:
    """What one source said about one epoch: a block (``ok``) or a failure. A block that
    failed the oracle's verification is a failure (``error_kind`` "unverified") that keeps
    the block's fields: the audit trail says what the source claimed."""

    epoch: int
    source: str
    height: int | None = None
    block_hash_hex: str | None = None
    bits: int | None = None
    time: int | None = None
    raw_header: bytes | None = None
    error_kind: str | None = None
    error_message: str | None = None
    observed_at: datetime | None = None  # default: now

    @property
    def ok(self) -> bool:
        return self.error_kind is None


@dataclass(frozen=True, slots=True)
class AgreedInput:
    """A cross-checked retarget to store as agreed."""

    epoch: int
    height: int
    block_hash_hex: str
    bits: int
    time: int
    raw_header: bytes
    sources: tuple[str, ...]
    #: The header at 2016e-1 the oracle fetched and checked by the retarget rule (the
    #: proof's first half); None when the epoch was agreed without it (not publishable).
    last_header: bytes | None = None


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    network: str
    epoch: int
    source: str
    ok: bool
    height: int | None
    block_hash_hex: str | None
    bits: int | None
    time: int | None
    raw_header: bytes | None
    error_kind: str | None
    error_message: str | None
    observed_at: datetime
    last_observed_at: datetime


@dataclass(frozen=True, slots=True)
class PublicationRecord:
    chain_id: int
    contract_address: str
    tx_hash: str | None  # None: found already on chain, sent by someone else
    block_hash_hex: str
    published_at: datetime


@dataclass(frozen=True, slots=True)
class RetargetRecord:
    """A retarget block candidate and its status history.

    ``observations`` (every source's claims for the epoch), ``publications`` and
    ``others`` (the epoch's other candidates, e.g. orphaned blocks) are filled
    by ``get_retarget`` only.
    """

    network: str
    epoch: int
    height: int
    block_hash_hex: str
    bits: int
    time: int
    raw_header: bytes | None
    #: the header at 2016e-1 (see ``AgreedInput.last_header``); None: not publishable
    last_header: bytes | None
    status: RetargetStatus
    sources: tuple[str, ...]
    observed_at: datetime
    agreed_at: datetime | None
    published_at: datetime | None
    orphaned_at: datetime | None
    observations: tuple[ObservationRecord, ...] = ()
    publications: tuple[PublicationRecord, ...] = ()
    others: tuple[RetargetRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class AgreedEpoch:
    """One agreed (or published) epoch, as the index computation needs it."""

    epoch: int
    height: int
    block_hash_hex: str
    bits: int
    time: int
    status: RetargetStatus


@dataclass(frozen=True, slots=True)
class DisagreementRecord:
    id: int
    network: str
    epoch: int
    kind: DisagreementKind
    field: str
    claims: dict[str, Any]
    evidence: dict[str, Any] | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class IndexRecord:
    network: str
    n_days: int
    epoch: int
    value: Fraction  # exact
    value_decimal: str  # truncated to 30 places, for display
    fixed: int  # floor(value x 10^18), the on-chain integer
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class LatestIndexed:
    """The latest agreed retarget and its index values (one query each)."""

    retarget: RetargetRecord
    indices: dict[int, IndexRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    id: int
    chain_id: int
    contract_address: str
    epoch: int
    signers: tuple[str, ...]
    report: dict[str, Any]
    state: SubmissionState
    created_at: datetime
    updated_at: datetime
    block_hash_hex: str = ""

    @property
    def function(self) -> str:
        """The contract function the report goes through: "submit" or "replace"."""
        return str(self.report.get("function", "submit"))

    @property
    def live(self) -> bool:
        return self.state in LIVE_SUBMISSION_STATES


@dataclass(frozen=True, slots=True)
class SubmissionTxRecord:
    id: int
    submission_id: int
    nonce: int
    tx_hash: str
    raw_tx: bytes
    max_fee_per_gas: int  # wei
    max_priority_fee_per_gas: int  # wei
    created_at: datetime
    sent_at: datetime | None
    receipt: dict[str, Any] | None
    gas_used: int | None


@dataclass(frozen=True, slots=True)
class SubmissionEventRecord:
    submission_id: int
    from_state: SubmissionState | None
    to_state: SubmissionState
    tx_hash: str | None
    detail: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SourceHealthSummary:
    source: str
    samples: int
    ok_count: int
    error_count: int
    error_kinds: dict[str, int]
    latency_avg_ms: float | None
    latency_max_ms: float | None
    last_ok_at: datetime | None
    last_error_at: datetime | None
    last_error_kind: str | None


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    chain_id: int
    contract_address: str
    epoch: int
    signer: str
    report: dict[str, Any]
    report_hash: str
    signature_hex: str
    source: str  # "self" or the peer node's URL
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoreContents:
    """Everything the read API serves for one network, read in one transaction
    (``Repository.read_contents``): the source of the API's in-memory snapshot."""

    network: str
    #: ``Repository.contents_marker`` as of this read: equal markers, equal contents
    marker: tuple[Any, ...]
    #: one record per epoch, ascending, as ``get_retarget`` returns it
    retargets: tuple[RetargetRecord, ...]
    #: every stored BME value, by N then epoch
    index_values: tuple[IndexRecord, ...]
    #: newest first, as ``list_disagreements`` orders them
    disagreements: tuple[DisagreementRecord, ...]
