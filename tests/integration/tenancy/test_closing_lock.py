"""The closing's row lock: it serialises what changes a closing, and nothing else waits on it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.adapters.postgres import tables
from app.api.state import app_state
from app.services.tenancy.closings import lock_closing
from tests.integration.service_support import owned_closing


async def test_a_locked_closing_still_takes_new_rows_that_reference_it(app: FastAPI) -> None:
    owned = await owned_closing(app, with_ledger=False)
    engine = app_state(app).require_resources().engine
    async with engine.begin() as holder:
        await lock_closing(holder, owned.tenant_id, owned.closing_id)  # e.g. a publish
        # An upload's first staged block meanwhile: its row references the closing (an FK
        # check takes KEY SHARE), which FOR UPDATE would block and FOR NO KEY UPDATE does not.
        async with engine.begin() as upload:
            await upload.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            await upload.execute(
                sa.insert(tables.ledgers).values(
                    closing_id=owned.closing_id, size_bytes=0, sha256="-", layout={}, receiving=True
                )
            )
        # Whoever changes the closing still waits for the holder.
        async with engine.begin() as other:
            await other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(sa.exc.DBAPIError, match="lock timeout"):
                await lock_closing(other, owned.tenant_id, owned.closing_id)
