"""SQLAlchemy 2 models: the durable record of everything the oracle saw, agreed and sent.

Store stage of DESIGN.md (crosscheck -> **store** -> index -> publish). The
tables are designed for audit (every source claim is kept, failures included)
and for crash safety (natural unique keys make every write an idempotent upsert):

* ``retargets``      candidate retarget blocks per network+epoch and their status
                     (observed -> agreed -> published, or orphaned), with the time
                     each status was reached; at most one agreed/published per epoch.
* ``observations``   what each source said about an epoch, one row per distinct claim.
* ``publications``   which contract an agreed retarget was published to, by which tx
                     (one row per block: a reorg corrected on chain adds one).
* ``disagreements``  sources disagreeing on a field, or a peer signing two reports.
* ``index_values``   BME_N per network, N and epoch: exact fraction and 10^18 integer.
* ``submissions``, ``submission_txs``, ``submission_events``: the on-chain
                     transaction manager's durable state; one live submission per
                     contract and epoch, one live or confirmed per contract and block.
* ``source_health``  latency / error samples for the API and metrics.
* ``attestations``   signatures this node made or collected from peers.

No float columns for bits, difficulty or index values: bits are integers,
256-bit values are ``Uint256`` (NUMERIC(78,0)), exact values are fraction strings.
All timestamps are UTC (``UtcDateTime``); header times stay the header's integer.
The migrations in ``oracle/store/migrations`` must match these models exactly
(a test runs Alembic's autogenerate compare).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from oracle.store.states import (
    DISAGREEMENT_KINDS,
    EXCLUSIVE_SUBMISSION_STATES,
    FINAL_RETARGET_STATUSES,
    LIVE_SUBMISSION_STATES,
    RETARGET_STATUSES,
    SUBMISSION_STATES,
)
from oracle.store.types import Uint256, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def _partial(values: tuple[str, ...], column: str) -> dict[str, Any]:
    """Dialect kwargs for a partial index (Postgres and SQLite both support WHERE)."""
    where = text(_in_list(column, values))
    return {"postgresql_where": where, "sqlite_where": where}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Retarget(Base):
    """A retarget block candidate for one network and epoch."""

    __tablename__ = "retargets"
    __table_args__ = (
        UniqueConstraint("network", "epoch", "block_hash_hex"),
        CheckConstraint(_in_list("status", RETARGET_STATUSES), name="status"),
        CheckConstraint("bits >= 0 AND bits <= 4294967295", name="bits_u32"),
        Index(
            "uq_retargets_one_final_per_epoch",
            "network",
            "epoch",
            unique=True,
            **_partial(FINAL_RETARGET_STATUSES, "status"),
        ),
        Index("ix_retargets_network_status_epoch", "network", "status", "epoch"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    block_hash_hex: Mapped[str] = mapped_column(String(64))
    bits: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)  # header nTime, unix seconds
    raw_header: Mapped[bytes | None] = mapped_column(LargeBinary(80))
    #: The header at height 2016e-1 (the parent of ``raw_header``), fetched by the oracle
    #: itself and checked by the retarget rule: the first half of the contract's proof.
    #: None when the epoch was agreed without it (bound or genesis check): not publishable.
    last_header: Mapped[bytes | None] = mapped_column(LargeBinary(80))
    status: Mapped[str] = mapped_column(String(16))
    sources: Mapped[list[str] | None] = mapped_column(JSON)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    agreed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    orphaned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Observation(Base):
    """One distinct claim a source made about an epoch (a block, or a failure)."""

    __tablename__ = "observations"
    __table_args__ = (
        UniqueConstraint("network", "epoch", "source", "claim_key"),
        Index("ix_observations_network_epoch", "network", "epoch"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(64))
    #: sha256 of the claim's fields; identical claims collapse into one row.
    claim_key: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    height: Mapped[int | None] = mapped_column(Integer)
    block_hash_hex: Mapped[str | None] = mapped_column(String(64))
    bits: Mapped[int | None] = mapped_column(BigInteger)
    time: Mapped[int | None] = mapped_column(BigInteger)
    raw_header: Mapped[bytes | None] = mapped_column(LargeBinary(80))
    error_kind: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_observed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Publication(Base):
    """An agreed retarget published to one contract (one row per block: a replacement on
    chain after a reorg adds a row for the new block and keeps the old one)."""

    __tablename__ = "publications"
    __table_args__ = (
        UniqueConstraint(
            "network",
            "epoch",
            "chain_id",
            "contract_address",
            "block_hash_hex",
            name="uq_publications_one_per_block",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    block_hash_hex: Mapped[str] = mapped_column(String(64))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(String(42))
    #: None when the report was found already on chain (e.g. sent by another operator).
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Disagreement(Base):
    """Sources that disagree on a field, or a signer that signed two different reports."""

    __tablename__ = "disagreements"
    __table_args__ = (
        UniqueConstraint("fingerprint"),
        CheckConstraint(_in_list("kind", DISAGREEMENT_KINDS), name="kind"),
        Index("ix_disagreements_network_recorded_at", "network", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(64))
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: sha256 of kind, epoch, field and claims: recording the same thing twice is a no-op.
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IndexValue(Base):
    """BME_N at one epoch: exact fraction, a truncated decimal and the 10^18 integer."""

    __tablename__ = "index_values"

    network: Mapped[str] = mapped_column(String(16), primary_key=True)
    n_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    value_fraction: Mapped[str] = mapped_column(Text)  # "numerator/denominator", exact
    value_decimal: Mapped[str] = mapped_column(String(80))  # truncated, for display
    value_fixed: Mapped[int] = mapped_column(Uint256())  # floor(value x 10^18), as on chain
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Submission(Base):
    """One report being pushed to one contract for one epoch and block (``submit``, or
    ``replace`` after a reorg: the stored report says which)."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("client_token"),
        CheckConstraint(_in_list("state", SUBMISSION_STATES), name="state"),
        # Never two transactions in flight for one epoch, whatever their block ...
        Index(
            "uq_submissions_one_live_per_epoch",
            "chain_id",
            "contract_address",
            "epoch",
            unique=True,
            **_partial(LIVE_SUBMISSION_STATES, "state"),
        ),
        # ... and each block lands on a contract at most once (a replacement is another block).
        Index(
            "uq_submissions_one_per_block",
            "chain_id",
            "contract_address",
            "epoch",
            "block_hash_hex",
            unique=True,
            **_partial(EXCLUSIVE_SUBMISSION_STATES, "state"),
        ),
        Index("ix_submissions_contract_state", "chain_id", "contract_address", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(String(42))
    epoch: Mapped[int] = mapped_column(Integer)
    block_hash_hex: Mapped[str] = mapped_column(String(64))
    signers: Mapped[list[str]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    #: Random token chosen before the insert, so a retried insert recognises itself.
    client_token: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SubmissionTx(Base):
    """One signed transaction attempt; stored before it is broadcast."""

    __tablename__ = "submission_txs"
    __table_args__ = (
        UniqueConstraint("tx_hash"),
        Index("ix_submission_txs_submission_id", "submission_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    max_fee_per_gas: Mapped[int] = mapped_column(Uint256())  # wei
    max_priority_fee_per_gas: Mapped[int] = mapped_column(Uint256())  # wei
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gas_used: Mapped[int | None] = mapped_column(Uint256())


class SubmissionEvent(Base):
    """A state transition of a submission, with its time and detail."""

    __tablename__ = "submission_events"
    __table_args__ = (
        UniqueConstraint("token"),
        Index("ix_submission_events_submission_id", "submission_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: Random token chosen before the write, so a retried transition is not recorded twice.
    token: Mapped[str] = mapped_column(String(32))


class SourceHealth(Base):
    """One health sample of a source: latency and, on failure, the error kind."""

    __tablename__ = "source_health"
    __table_args__ = (
        UniqueConstraint("source", "at"),
        Index("ix_source_health_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    # A float is fine here: latency is a measurement for display, never bits or an index.
    latency_ms: Mapped[float | None] = mapped_column(Double)
    ok: Mapped[bool] = mapped_column(Boolean)
    error_kind: Mapped[str | None] = mapped_column(String(64))


class Attestation(Base):
    """A signature over a report, made by this node ("self") or received from a peer."""

    __tablename__ = "attestations"
    __table_args__ = (
        UniqueConstraint("chain_id", "contract_address", "epoch", "signer", "report_hash"),
        Index("ix_attestations_epoch", "chain_id", "contract_address", "epoch"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(String(42))
    epoch: Mapped[int] = mapped_column(Integer)
    signer: Mapped[str] = mapped_column(String(42))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    report_hash: Mapped[str] = mapped_column(String(64))
    signature_hex: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
