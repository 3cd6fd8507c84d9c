"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 16:23:37.413519
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("key_prefix", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'analyst', 'admin')", name=op.f("ck_api_keys_role")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tax_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_clients_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_index(
        op.f("ix_clients_tenant_id_created_at"),
        "clients",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "accounts",
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=True),
        sa.Column("classification", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_accounts_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "code", name=op.f("pk_accounts")),
    )
    op.create_table(
        "closings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column("ledger_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name=op.f("ck_closings_period")
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_closings_status")),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_closings_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_closings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_closings")),
        sa.UniqueConstraint("client_id", "period", name=op.f("uq_closings_client_id_period")),
    )
    op.create_table(
        "document_types",
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_document_types_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "code", name=op.f("pk_document_types")),
    )
    op.create_table(
        "ledgers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("closing_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("layout", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=True),
        sa.Column(
            "uploaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("parsed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("movements_total", sa.Integer(), nullable=True),
        sa.Column("account_codes", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("document_type_codes", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["closing_id"],
            ["closings.id"],
            name=op.f("fk_ledgers_closing_id_closings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledgers")),
    )
    op.create_index(op.f("ix_ledgers_closing_id"), "ledgers", ["closing_id"], unique=False)
    op.create_table(
        "iterations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("closing_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("ledger_id", sa.UUID(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column(
            "coalesced_triggers", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column("movements_processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("diff", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_iterations_status"),
        ),
        sa.CheckConstraint(
            "trigger IN ('initial', 'ledger_replaced', 'manual', 'document_types_updated', 'classification_updated', 'english_names_updated', 'accounts_updated')",
            name=op.f("ck_iterations_trigger"),
        ),
        sa.ForeignKeyConstraint(
            ["closing_id"],
            ["closings.id"],
            name=op.f("fk_iterations_closing_id_closings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ledger_id"],
            ["ledgers.id"],
            name=op.f("fk_iterations_ledger_id_ledgers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iterations")),
        sa.UniqueConstraint("closing_id", "number", name=op.f("uq_iterations_closing_id_number")),
    )
    op.create_index(
        "ix_iterations_unfinished",
        "iterations",
        ["queued_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index(
        "uq_iterations_one_queued",
        "iterations",
        ["closing_id"],
        unique=True,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "uq_iterations_one_running",
        "iterations",
        ["closing_id"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "ledger_file_chunks",
        sa.Column("ledger_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_id"],
            ["ledgers.id"],
            name=op.f("fk_ledger_file_chunks_ledger_id_ledgers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ledger_id", "seq", name=op.f("pk_ledger_file_chunks")),
    )
    op.create_table(
        "movement_batches",
        sa.Column("ledger_id", sa.UUID(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.Column("last_line", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_id"],
            ["ledgers.id"],
            name=op.f("fk_movement_batches_ledger_id_ledgers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ledger_id", "first_line", name=op.f("pk_movement_batches")),
    )
    op.create_table(
        "incidence_lines",
        sa.Column("iteration_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("lines", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["iterations.id"],
            name=op.f("fk_incidence_lines_iteration_id_iterations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("iteration_id", "key", name=op.f("pk_incidence_lines")),
    )
    op.create_table(
        "iteration_results",
        sa.Column("iteration_id", sa.UUID(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["iterations.id"],
            name=op.f("fk_iteration_results_iteration_id_iterations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("iteration_id", name=op.f("pk_iteration_results")),
    )
    op.create_table(
        "snapshots",
        sa.Column("closing_id", sa.UUID(), nullable=False),
        sa.Column("iteration_id", sa.UUID(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column(
            "published_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["closing_id"],
            ["closings.id"],
            name=op.f("fk_snapshots_closing_id_closings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["iterations.id"],
            name=op.f("fk_snapshots_iteration_id_iterations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("closing_id", name=op.f("pk_snapshots")),
    )
    # Parquet batches are compressed already and file chunks are written on the upload's hot
    # path: skip TOAST compression for both.
    op.execute("ALTER TABLE movement_batches ALTER COLUMN data SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE ledger_file_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_table("iteration_results")
    op.drop_table("incidence_lines")
    op.drop_table("movement_batches")
    op.drop_table("ledger_file_chunks")
    op.drop_index(
        "uq_iterations_one_running",
        table_name="iterations",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index(
        "uq_iterations_one_queued",
        table_name="iterations",
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.drop_index(
        "ix_iterations_unfinished",
        table_name="iterations",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_table("iterations")
    op.drop_index(op.f("ix_ledgers_closing_id"), table_name="ledgers")
    op.drop_table("ledgers")
    op.drop_table("document_types")
    op.drop_table("closings")
    op.drop_table("accounts")
    op.drop_index(op.f("ix_clients_tenant_id_created_at"), table_name="clients")
    op.drop_table("clients")
    op.drop_table("api_keys")
    op.drop_table("tenants")
