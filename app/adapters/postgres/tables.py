"""The relational schema (SQLAlchemy Core); migrations/ holds its frozen history."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

# Deterministic constraint names, so migrations can refer to them (and autogenerate is stable).
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The array types of the parameters that carry many values in one statement (unnest, ANY).
TEXT_ARRAY = pg.ARRAY(sa.Text)
UUID_ARRAY = pg.ARRAY(pg.UUID(as_uuid=True))


def _id() -> sa.Column[object]:
    return sa.Column(
        "id", pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
    )


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _tenant_fk() -> sa.Column[object]:
    return sa.Column("tenant_id", sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


tenants = sa.Table(
    "tenants",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    _created_at(),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    _tenant_fk(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    # sha256 of the whole key: keys are 256-bit random, so a fast hash cannot be brute-forced.
    sa.Column("key_hash", sa.LargeBinary, nullable=False, unique=True),
    # The visible start of the key, so an operator can tell keys apart without the secret.
    sa.Column("key_prefix", sa.Text, nullable=False),
    _created_at(),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("role IN ('viewer', 'analyst', 'admin')", name="role"),
)

clients = sa.Table(
    "clients",
    metadata,
    _id(),
    _tenant_fk(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tax_id", sa.Text),
    _created_at(),
    sa.Index(None, "tenant_id", "created_at"),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("client_id", sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("name_en", sa.Text),
    sa.Column("classification", sa.Text),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

document_types = sa.Table(
    "document_types",
    metadata,
    sa.Column("client_id", sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

closings = sa.Table(
    "closings",
    metadata,
    _id(),
    _tenant_fk(),
    sa.Column("client_id", sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    sa.Column("period", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="open"),
    sa.Column("ledger_id", pg.UUID(as_uuid=True)),  # the current ledger; set on upload
    _created_at(),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("client_id", "period"),
    sa.CheckConstraint("status IN ('open', 'closed')", name="status"),
    sa.CheckConstraint(r"period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name="period"),
)

ledgers = sa.Table(
    "ledgers",
    metadata,
    _id(),
    sa.Column("closing_id", sa.ForeignKey("closings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("filename", sa.Text),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    # How the file's chunks were compressed: "zstd" (each chunk on its own), or "none".
    sa.Column("file_compression", sa.Text, nullable=False, server_default="none"),
    # How to read the file: kind, encoding, delimiter, resolved columns, decimal separator.
    sa.Column("layout", pg.JSONB, nullable=False),
    sa.Column("uploaded_by", sa.Text),
    sa.Column(
        "uploaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # True while the upload is being received (its chunks are written as they arrive): no
    # closing points at such a row yet. Accepting the upload clears it.
    sa.Column("receiving", sa.Boolean, nullable=False, server_default=sa.false()),
    # Filled once the file has been parsed into movement batches.
    sa.Column("parsed_at", sa.DateTime(timezone=True)),
    sa.Column("movements_total", sa.Integer),
    # Distinct codes the ledger uses, so a reference-data change finds affected closings cheaply.
    sa.Column("account_codes", pg.ARRAY(sa.Text)),
    sa.Column("document_type_codes", pg.ARRAY(sa.Text)),
    # How the file is read (SPEC §3 `parse`): what the upload showed, completed by the worker.
    sa.Column("parse", pg.JSONB),
    sa.Index(None, "closing_id"),
)

# The uploaded file itself, in chunks: API and workers share nothing but Postgres and Redis.
ledger_file_chunks = sa.Table(
    "ledger_file_chunks",
    metadata,
    sa.Column("ledger_id", sa.ForeignKey("ledgers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# Parsed movements, as columnar (Parquet) batches of consecutive lines: written once per ledger,
# read back by line range for drill-down and by every reprocessing run.
movement_batches = sa.Table(
    "movement_batches",
    metadata,
    sa.Column("ledger_id", sa.ForeignKey("ledgers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("first_line", sa.Integer, primary_key=True),
    sa.Column("last_line", sa.Integer, nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

iterations = sa.Table(
    "iterations",
    metadata,
    _id(),
    sa.Column("closing_id", sa.ForeignKey("closings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("ledger_id", sa.ForeignKey("ledgers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("coalesced_triggers", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("movements_processed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requested_by", sa.Text),
    sa.Column("notes", sa.Text),
    sa.Column(
        "queued_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Refreshed by the worker while it runs the iteration: a stale one means the worker died.
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("error", pg.JSONB),
    sa.Column("summary", pg.JSONB),
    sa.Column("diff", pg.JSONB),
    # Its ledger's `parse` (copied when the iteration is requested and when it runs).
    sa.Column("parse", pg.JSONB),
    sa.Column("request_id", sa.Text),
    sa.UniqueConstraint("closing_id", "number"),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
    sa.CheckConstraint(
        "trigger IN ('initial', 'ledger_replaced', 'manual', 'document_types_updated', "
        "'classification_updated', 'english_names_updated', 'accounts_updated')",
        name="trigger",
    ),
    # The database, not Python, guarantees one queued and one running iteration per closing.
    sa.Index(
        "uq_iterations_one_queued",
        "closing_id",
        unique=True,
        postgresql_where=sa.text("status = 'queued'"),
    ),
    sa.Index(
        "uq_iterations_one_running",
        "closing_id",
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    ),
    sa.Index(
        "ix_iterations_unfinished",
        "queued_at",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    ),
)

# The full consolidated result of a succeeded iteration: its snapshot document as canonical JSON.
iteration_results = sa.Table(
    "iteration_results",
    metadata,
    sa.Column("iteration_id", sa.ForeignKey("iterations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column("document", sa.LargeBinary, nullable=False),
)

# The lines behind each incidence of an iteration, for drill-down: ascending int32 values
# packed little-endian (lines_codec), five times cheaper to write than an int4[] array, and
# stored without TOAST compression (migration 0003: pglz cannot shrink them).
incidence_lines = sa.Table(
    "incidence_lines",
    metadata,
    # No foreign key: checking one per row doubled a publish's write time for these rows. A
    # trigger on iterations deletes the lines of deleted iterations (migration 0005).
    sa.Column("iteration_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("lines", sa.LargeBinary, nullable=False),
)

# The snapshot being served for a closing: the latest succeeded iteration.
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("closing_id", sa.ForeignKey("closings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("iteration_id", sa.ForeignKey("iterations.id", ondelete="CASCADE"), nullable=False),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column(
        "published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # The served snapshot's version: raised by every publish and every review change, since
    # both change what is served (reviews show on the incidences). Caches compare it.
    sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
)

# Reviews of incidences (SPEC §10): one per closing and key, carried over while the key
# persists; the figures are those the incidence had when it was reviewed (for `stale`).
incidence_reviews = sa.Table(
    "incidence_reviews",
    metadata,
    sa.Column("closing_id", sa.ForeignKey("closings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("reviewed_by", sa.Text, nullable=False),
    sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("iteration", sa.Integer, nullable=False),
    sa.Column("movement_count", sa.Integer, nullable=False),
    sa.Column("debit_total", sa.Numeric, nullable=False),
    sa.Column("credit_total", sa.Numeric, nullable=False),
    sa.CheckConstraint("status IN ('open', 'acknowledged')", name="status"),
)

# Who changed what and when (SPEC §9). Append-only: a trigger refuses UPDATE, DELETE and
# TRUNCATE (migration 0006), so not even a bug in the service can rewrite history. Rows are
# written in the transaction of the change they record; `id` orders them (keyset pages). A
# bulk PUT writes 10,000 rows at once, so each row costs as few index entries as the reads
# allow: the primary key serves a tenant's newest-first pages, the closing index leaves out
# the (many) rows of no closing, and no foreign key checks the tenant row by row.
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("tenant_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # The actor: an API key (its id, name and role at the time), or the CLI (no key id).
    sa.Column("actor_key_id", pg.UUID(as_uuid=True)),
    sa.Column("actor_name", sa.Text, nullable=False),
    sa.Column("actor_role", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("resource_type", sa.Text, nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("client_id", pg.UUID(as_uuid=True)),
    sa.Column("closing_id", pg.UUID(as_uuid=True)),
    sa.Column("request_id", sa.Text),
    sa.Column("details", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Index(
        "ix_audit_events_resource", "tenant_id", "client_id", "resource_type", "resource_id", "id"
    ),
    sa.Index(
        "ix_audit_events_closing",
        "tenant_id",
        "closing_id",
        "id",
        postgresql_where=sa.text("closing_id IS NOT NULL"),
    ),
)
