"""Initial schema: retargets, observations, publications, disagreements, index values,
submissions (+ txs, events), source health, attestations.

256-bit integers are NUMERIC(78, 0) on Postgres and decimal text on SQLite (whose
NUMERIC affinity would turn them into floats); see oracle/store/types.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:25:04.894203
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

#: Frozen copies of oracle.store.types' storage types, so this migration never changes.
UINT256 = sa.Numeric(78, 0).with_variant(sa.String(78), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attestations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("report_hash", sa.String(length=64), nullable=False),
        sa.Column("signature_hex", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attestations")),
        sa.UniqueConstraint(
            "chain_id",
            "contract_address",
            "epoch",
            "signer",
            "report_hash",
            name=op.f("uq_attestations_chain_id_contract_address_epoch_signer_report_hash"),
        ),
    )
    op.create_index(
        "ix_attestations_epoch",
        "attestations",
        ["chain_id", "contract_address", "epoch"],
        unique=False,
    )

    op.create_table(
        "disagreements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "kind IN ('field', 'conflicting_attestation')", name=op.f("ck_disagreements_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disagreements")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_disagreements_fingerprint")),
    )
    op.create_index(
        "ix_disagreements_network_recorded_at",
        "disagreements",
        ["network", "recorded_at"],
        unique=False,
    )

    op.create_table(
        "index_values",
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("n_days", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("value_fraction", sa.Text(), nullable=False),
        sa.Column("value_decimal", sa.String(length=80), nullable=False),
        sa.Column("value_fixed", UINT256, nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("network", "n_days", "epoch", name=op.f("pk_index_values")),
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("claim_key", sa.String(length=64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("block_hash_hex", sa.String(length=64), nullable=True),
        sa.Column("bits", sa.BigInteger(), nullable=True),
        sa.Column("time", sa.BigInteger(), nullable=True),
        sa.Column("raw_header", sa.LargeBinary(length=80), nullable=True),
        sa.Column("error_kind", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("last_observed_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
        sa.UniqueConstraint(
            "network",
            "epoch",
            "source",
            "claim_key",
            name=op.f("uq_observations_network_epoch_source_claim_key"),
        ),
    )
    op.create_index(
        "ix_observations_network_epoch", "observations", ["network", "epoch"], unique=False
    )

    op.create_table(
        "publications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("block_hash_hex", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("published_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publications")),
        sa.UniqueConstraint(
            "network",
            "epoch",
            "chain_id",
            "contract_address",
            name=op.f("uq_publications_network_epoch_chain_id_contract_address"),
        ),
    )
    op.create_table(
        "retargets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("block_hash_hex", sa.String(length=64), nullable=False),
        sa.Column("bits", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("raw_header", sa.LargeBinary(length=80), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=True),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("agreed_at", UTC_TIME, nullable=True),
        sa.Column("published_at", UTC_TIME, nullable=True),
        sa.Column("orphaned_at", UTC_TIME, nullable=True),
        sa.CheckConstraint(
            "status IN ('observed', 'agreed', 'published', 'orphaned')",
            name=op.f("ck_retargets_status"),
        ),
        sa.CheckConstraint("bits >= 0 AND bits <= 4294967295", name=op.f("ck_retargets_bits_u32")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retargets")),
        sa.UniqueConstraint(
            "network",
            "epoch",
            "block_hash_hex",
            name=op.f("uq_retargets_network_epoch_block_hash_hex"),
        ),
    )
    op.create_index(
        "ix_retargets_network_status_epoch",
        "retargets",
        ["network", "status", "epoch"],
        unique=False,
    )
    op.create_index(
        "uq_retargets_one_final_per_epoch",
        "retargets",
        ["network", "epoch"],
        unique=True,
        postgresql_where=sa.text("status IN ('agreed', 'published')"),
        sqlite_where=sa.text("status IN ('agreed', 'published')"),
    )

    op.create_table(
        "source_health",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_health")),
        sa.UniqueConstraint("source", "at", name=op.f("uq_source_health_source_at")),
    )
    op.create_index("ix_source_health_at", "source_health", ["at"], unique=False)

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("signers", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("client_token", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "state IN ('signed', 'broadcast', 'mined', 'confirmed', "
            "'reverted', 'failed', 'abandoned')",
            name=op.f("ck_submissions_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("client_token", name=op.f("uq_submissions_client_token")),
    )
    op.create_index(
        "ix_submissions_contract_state",
        "submissions",
        ["chain_id", "contract_address", "state"],
        unique=False,
    )
    op.create_index(
        "uq_submissions_one_live_per_epoch",
        "submissions",
        ["chain_id", "contract_address", "epoch"],
        unique=True,
        postgresql_where=sa.text("state IN ('signed', 'broadcast', 'mined', 'confirmed')"),
        sqlite_where=sa.text("state IN ('signed', 'broadcast', 'mined', 'confirmed')"),
    )

    op.create_table(
        "submission_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_events_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_events")),
        sa.UniqueConstraint("token", name=op.f("uq_submission_events_token")),
    )
    op.create_index(
        "ix_submission_events_submission_id", "submission_events", ["submission_id"], unique=False
    )

    op.create_table(
        "submission_txs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("max_fee_per_gas", UINT256, nullable=False),
        sa.Column("max_priority_fee_per_gas", UINT256, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("gas_used", UINT256, nullable=True),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_txs_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_txs")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_submission_txs_tx_hash")),
    )
    op.create_index(
        "ix_submission_txs_submission_id", "submission_txs", ["submission_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_submission_txs_submission_id", "submission_txs")

    op.drop_table("submission_txs")
    op.drop_index("ix_submission_events_submission_id", "submission_events")

    op.drop_table("submission_events")
    op.drop_index("uq_submissions_one_live_per_epoch", "submissions")
    op.drop_index("ix_submissions_contract_state", "submissions")

    op.drop_table("submissions")
    op.drop_index("ix_source_health_at", "source_health")

    op.drop_table("source_health")
    op.drop_index("uq_retargets_one_final_per_epoch", "retargets")
    op.drop_index("ix_retargets_network_status_epoch", "retargets")

    op.drop_table("retargets")
    op.drop_table("publications")
    op.drop_index("ix_observations_network_epoch", "observations")

    op.drop_table("observations")
    op.drop_table("index_values")
    op.drop_index("ix_disagreements_network_recorded_at", "disagreements")

    op.drop_table("disagreements")
    op.drop_index("ix_attestations_epoch", "attestations")

    op.drop_table("attestations")
