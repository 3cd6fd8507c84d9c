"""Domain errors: raised by the engine, mapped to HTTP problems by the API layer."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every error the domain raises on purpose; `detail` is safe to show a user."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedLedgerFile(DomainError):
    """The upload is neither a CSV text file nor an XLSX workbook (HTTP 415)."""


class LedgerFormatError(DomainError):
    """The header lacks required columns (HTTP 422)."""

    # A header of thousands of columns is named by its first ones only.
    MAX_SHOWN = 50

    def __init__(self, missing_fields: Sequence[str], header_found: Sequence[str]) -> None:
        self.missing_fields = list(missing_fields)
        self.header_found = list(header_found)
        shown = ", ".join(repr(h) for h in self.header_found[: self.MAX_SHOWN]) or "(empty)"
        if len(self.header_found) > self.MAX_SHOWN:
            shown += f", … ({len(self.header_found)} columns in all)"
        super().__init__(
            f"Missing required columns: {', '.join(self.missing_fields)} "
            "(account_code, date, voucher and either debit and credit or a signed amount "
            f"are required). Header found: {shown}"
        )


class EmptyLedger(DomainError):
    """The file has a header but no movements (HTTP 422)."""


class InvalidLedgerOptions(DomainError):
    """Upload options are wrong: decimal separator or column_map (HTTP 422)."""


class MalformedLedger(DomainError):
    """The file passed the upload checks but cannot be read further (e.g. an unclosed quote)."""


class AmountOverflow(DomainError):
    """Amount totals exceed what the engine can add up exactly."""


class TooManyIncidences(DomainError):
    """The ledger yields more incidences than MAX_INCIDENCES: a snapshot that large is refused
    before it is built (its memory would grow with what the file holds)."""

    def __init__(self, found: int, limit: int) -> None:
        self.found = found
        self.limit = limit
        super().__init__(
            f"The ledger yields at least {found:,} incidences, more than the limit of {limit:,} "
            "(MAX_INCIDENCES); the previous snapshot is still served. A column mapped wrong "
            "often makes every row an incidence: check column_map, or load the chart of "
            "accounts first"
        )


class NotFound(DomainError):
    """The resource does not exist for this tenant (another tenant's resource included)."""


class Conflict(DomainError):
    """The request clashes with the resource's state (e.g. a closed closing)."""


class CloseBlocked(Conflict):
    """Closing the month would leave error incidences neither resolved nor acknowledged."""

    MAX_SHOWN = 100

    def __init__(self, closing_id: object, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        shown = ", ".join(self.keys[:10]) + (", …" if len(self.keys) > 10 else "")
        super().__init__(
            f"Closing {closing_id} has {len(self.keys)} error incidence(s) neither resolved nor "
            f"acknowledged ({shown}): acknowledge them (PUT /closings/{{id}}/reviews/{{key}}) "
            'or, as an admin, close with "force": true'
        )


class InvalidInput(DomainError):
    """A well-formed request whose content cannot be accepted."""


class PayloadTooLarge(DomainError):
    """The body is over MAX_UPLOAD_BYTES."""


class Busy(DomainError):
    """Too many heavy requests are being computed already: retry shortly (HTTP 503)."""
