"""compressed ledger files, no TOAST compression of already-compressed bytes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:30:00

Uploaded files are now stored as zstd-compressed chunks (`ledgers.file_compression` says how
each ledger's chunks were written; older rows keep 'none'). Their chunks and the Parquet
movement batches are compressed already, so Postgres' own pglz pass over them (the default
EXTENDED storage) is pure cost: on a 100 MB CSV it took longer than the whole COPY. EXTERNAL keeps
out-of-line storage without that pass. SET STORAGE changes no existing row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BYTES_COLUMNS = (("ledger_file_chunks", "data"), ("movement_batches", "data"))


def upgrade() -> None:
    op.add_column(
        "ledgers",
        sa.Column("file_compression", sa.Text(), server_default="none", nullable=False),
    )
    for table, column in _BYTES_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTERNAL")


def downgrade() -> None:
    for table, column in _BYTES_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE EXTENDED")
    op.drop_column("ledgers", "file_compression")
