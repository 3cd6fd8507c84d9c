"""how each ledger file was read: `parse` on ledgers and iterations

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:30:00

SPEC §3 now asks each iteration to record how its file was read: encoding, delimiter, decimal
separator (and whether it was detected), the header found for each field, rows read and blank
rows skipped. The ledger holds it (what the upload showed, completed by the worker when it
parses the file) and each iteration a copy (made when it is requested and when it runs).

Existing ledgers get what their stored layout says; their rows and blank rows stay unknown
(null), since counting them would mean reading every stored file again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ledgers", sa.Column("parse", pg.JSONB(), nullable=True))
    op.add_column("iterations", sa.Column("parse", pg.JSONB(), nullable=True))
    op.execute(
        """
        UPDATE ledgers SET parse = jsonb_build_object(
            'kind', layout->'kind',
            'encoding', layout->'encoding',
            'delimiter', layout->'delimiter',
            'decimal_separator', layout->'decimal_separator',
            'decimal_separator_detected', false,
            'headers', COALESCE((
                SELECT jsonb_object_agg(c->>'field', c->'header')
                FROM jsonb_array_elements(layout->'columns') AS c
            ), '{}'::jsonb),
            'rows_read', NULL,
            'blank_rows_skipped', NULL
        )
        WHERE NOT receiving AND layout ? 'columns'
        """
    )
    op.execute(
        "UPDATE iterations SET parse = ledgers.parse FROM ledgers "
        "WHERE ledgers.id = iterations.ledger_id"
    )


def downgrade() -> None:
    op.drop_column("iterations", "parse")
    op.drop_column("ledgers", "parse")
