"""Contract v2: the proof's first header, and replacements on chain after a reorg.

* ``retargets.last_header``: the raw header at height 2016e-1 the oracle fetched itself
  (the first half of the contract's chain-bound proof); NULL for epochs agreed without
  it (bound or genesis check), which can be shown but not published.
* ``publications``: one row per (network, epoch, contract, *block*), so a replacement on
  chain adds a row and keeps the old one.
* ``submissions.block_hash_hex`` (filled from the stored report): at most one live
  submission per contract and epoch, at most one live-or-confirmed per contract, epoch
  and block, so a replacement (another block) can follow a confirmed submission.

Downgrading fails on a database that holds a replacement (two publications or confirmed
submissions for one epoch): the old schema cannot express it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 03:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copies of oracle.store.states, so this migration never changes.
LIVE = "state IN ('signed', 'broadcast', 'mined')"
EXCLUSIVE = "state IN ('signed', 'broadcast', 'mined', 'confirmed')"
OLD_PUBLICATIONS_UNIQUE = "uq_publications_network_epoch_chain_id_contract_address"


def _partial(where: str) -> dict[str, Any]:
    return {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}


def _backfill_block_hashes() -> None:
    """Each submission's block hash, from the report it stored (display order hex)."""
    connection = op.get_bind()
    submissions = sa.table(
        "submissions",
        sa.column("id", sa.Integer()),
        sa.column("report", sa.JSON()),
        sa.column("block_hash_hex", sa.String(64)),
    )
    for row_id, report in connection.execute(sa.select(submissions.c.id, submissions.c.report)):
        data = json.loads(report) if isinstance(report, str) else report
        connection.execute(
            submissions.update()
            .where(submissions.c.id == row_id)
            .values(block_hash_hex=str(data["block_hash_hex"]))
        )


def upgrade() -> None:
    with op.batch_alter_table("retargets") as batch:
        batch.add_column(sa.Column("last_header", sa.LargeBinary(length=80), nullable=True))

    with op.batch_alter_table("publications") as batch:
        batch.drop_constraint(OLD_PUBLICATIONS_UNIQUE, type_="unique")
        batch.create_unique_constraint(
            "uq_publications_one_per_block",
            ["network", "epoch", "chain_id", "contract_address", "block_hash_hex"],
        )

    op.drop_index("uq_submissions_one_live_per_epoch", "submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("block_hash_hex", sa.String(length=64), nullable=True))
    _backfill_block_hashes()
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column("block_hash_hex", existing_type=sa.String(length=64), nullable=False)
    op.create_index(
        "uq_submissions_one_live_per_epoch",
        "submissions",
        ["chain_id", "contract_address", "epoch"],
        unique=True,
        **_partial(LIVE),
    )
    op.create_index(
        "uq_submissions_one_per_block",
        "submissions",
        ["chain_id", "contract_address", "epoch", "block_hash_hex"],
        unique=True,
        **_partial(EXCLUSIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_submissions_one_per_block", "submissions")
    op.drop_index("uq_submissions_one_live_per_epoch", "submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("block_hash_hex")
    op.create_index(
        "uq_submissions_one_live_per_epoch",
        "submissions",
        ["chain_id", "contract_address", "epoch"],
        unique=True,
        **_partial(EXCLUSIVE),
    )

    with op.batch_alter_table("publications") as batch:
        batch.drop_constraint("uq_publications_one_per_block", type_="unique")
        batch.create_unique_constraint(
            OLD_PUBLICATIONS_UNIQUE, ["network", "epoch", "chain_id", "contract_address"]
        )

    # SQLite drops a column by copying the table: keep the partial index out of the copy.
    op.drop_index("uq_retargets_one_final_per_epoch", "retargets")
    with op.batch_alter_table("retargets") as batch:
        batch.drop_column("last_header")
    op.create_index(
        "uq_retargets_one_final_per_epoch",
        "retargets",
        ["network", "epoch"],
        unique=True,
        **_partial("status IN ('agreed', 'published')"),
    )
