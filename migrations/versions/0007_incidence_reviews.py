"""reviews of incidences, and the served snapshot's revision

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 21:30:00

An analyst acknowledges (or reopens) an incidence of a closing by key, with a note (SPEC §10);
the review carries over to later iterations. Reviews show on the served snapshot, so a review
changes what is served as a publish does: `snapshots.revision` counts both, and caches compare
it instead of the iteration number.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidence_reviews",
        sa.Column("closing_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.Text(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("movement_count", sa.Integer(), nullable=False),
        sa.Column("debit_total", sa.Numeric(), nullable=False),
        sa.Column("credit_total", sa.Numeric(), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged')", name="ck_incidence_reviews_status"
        ),
        sa.ForeignKeyConstraint(
            ["closing_id"],
            ["closings.id"],
            name="fk_incidence_reviews_closing_id_closings",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("closing_id", "key", name="pk_incidence_reviews"),
    )
    op.add_column(
        "snapshots",
        sa.Column("revision", sa.BigInteger(), server_default="1", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("snapshots", "revision")
    op.drop_table("incidence_reviews")
