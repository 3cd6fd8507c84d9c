"""Client reference data an iteration is evaluated against: chart of accounts, document types."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def account_key(code: str) -> str:
    """Account codes compare trimmed and case-sensitive (leading zeros kept)."""
    return code.strip()


def document_type_key(code: str) -> str:
    """Document type codes compare trimmed and upper-cased."""
    return code.strip().upper()


def blank(value: str | None) -> bool:
    """Whether an optional text is empty (null or whitespace)."""
    return value is None or not value.strip()


@dataclass(frozen=True)
class Account:
    """A chart-of-accounts entry; empty name_en / classification mean "missing"."""

    name: str
    name_en: str | None = None
    classification: str | None = None


@dataclass(frozen=True)
class ReferenceData:
    """A client's chart of accounts and document types, and the closing's period (YYYY-MM)."""

    accounts: Mapping[str, Account]
    document_types: Mapping[str, str]
    period: str
    period_start: dt.date = field(init=False)
    period_end: dt.date = field(init=False)

    def __post_init__(self) -> None:
        match = _PERIOD.match(self.period)
        if not match:
            raise ValueError(f"period must be YYYY-MM, got {self.period!r}")
        year, month = int(match[1]), int(match[2])
        start = dt.date(year, month, 1)
        # The month's last day, without stepping into the next month (past 9999-12).
        end = dt.date(year, month, calendar.monthrange(year, month)[1])
        # Keys are normalised once here so that rules can compare raw movement values.
        accounts = {account_key(k): v for k, v in self.accounts.items()}
        doc_types = {document_type_key(k): v for k, v in self.document_types.items()}
        object.__setattr__(self, "accounts", MappingProxyType(accounts))
        object.__setattr__(self, "document_types", MappingProxyType(doc_types))
        object.__setattr__(self, "period_start", start)
        object.__setattr__(self, "period_end", end)

    def unclassified_codes(self) -> list[str]:
        """Chart codes with an empty classification."""
        return [code for code, acc in self.accounts.items() if blank(acc.classification)]

    def missing_english_codes(self) -> list[str]:
        """Chart codes with an empty English name."""
        return [code for code, acc in self.accounts.items() if blank(acc.name_en)]
