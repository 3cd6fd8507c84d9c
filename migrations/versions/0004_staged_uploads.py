"""uploads are stored while they are received: a ledger row is `receiving` until accepted

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:40:00

An upload's file chunks are now written to Postgres while the body arrives, a few per short
transaction, under a ledger row marked `receiving`; accepting the upload fills the row in and
clears the mark in one small transaction. Until then no closing points at the row, so nothing
reads it. A failed upload deletes its row (and chunks, by cascade); what a crash leaves behind is
removed by the worker's cleanup job.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "ledgers",
        sa.Column("receiving", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.execute("DELETE FROM ledgers WHERE receiving")
    op.drop_column("ledgers", "receiving")
