"""The incidence catalog of SPEC §4: types, severities and element kinds."""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class Severity(StrEnum):
    """How serious an incidence is; errors block a close, warnings should be reviewed."""

    ERROR = "error"
    WARNING = "warning"


class IncidenceType(StrEnum):
    """The ten incidence types, in catalog order."""

    ROW_INVALID = "ROW_INVALID"
    ACCOUNT_NOT_IN_CHART = "ACCOUNT_NOT_IN_CHART"
    ACCOUNT_UNCLASSIFIED = "ACCOUNT_UNCLASSIFIED"
    ACCOUNT_MISSING_ENGLISH_NAME = "ACCOUNT_MISSING_ENGLISH_NAME"
    DOCUMENT_TYPE_MISSING = "DOCUMENT_TYPE_MISSING"
    DOCUMENT_TYPE_UNKNOWN = "DOCUMENT_TYPE_UNKNOWN"
    MOVEMENT_OUT_OF_PERIOD = "MOVEMENT_OUT_OF_PERIOD"
    AMOUNT_INVALID = "AMOUNT_INVALID"
    VOUCHER_UNBALANCED = "VOUCHER_UNBALANCED"
    DUPLICATE_MOVEMENT = "DUPLICATE_MOVEMENT"


class ElementKind(StrEnum):
    """What an incidence is about; its `element.code` names one of these."""

    COLUMN = "column"
    ACCOUNT = "account"
    DOCUMENT_TYPE = "document_type"
    PERIOD = "period"
    AMOUNT_RULE = "amount_rule"
    VOUCHER = "voucher"


SEVERITY: MappingProxyType[IncidenceType, Severity] = MappingProxyType(
    {
        IncidenceType.ROW_INVALID: Severity.ERROR,
        IncidenceType.ACCOUNT_NOT_IN_CHART: Severity.ERROR,
        IncidenceType.ACCOUNT_UNCLASSIFIED: Severity.WARNING,
        IncidenceType.ACCOUNT_MISSING_ENGLISH_NAME: Severity.WARNING,
        IncidenceType.DOCUMENT_TYPE_MISSING: Severity.WARNING,
        IncidenceType.DOCUMENT_TYPE_UNKNOWN: Severity.WARNING,
        IncidenceType.MOVEMENT_OUT_OF_PERIOD: Severity.ERROR,
        IncidenceType.AMOUNT_INVALID: Severity.ERROR,
        IncidenceType.VOUCHER_UNBALANCED: Severity.ERROR,
        IncidenceType.DUPLICATE_MOVEMENT: Severity.WARNING,
    }
)

ELEMENT_KIND: MappingProxyType[IncidenceType, ElementKind] = MappingProxyType(
    {
        IncidenceType.ROW_INVALID: ElementKind.COLUMN,
        IncidenceType.ACCOUNT_NOT_IN_CHART: ElementKind.ACCOUNT,
        IncidenceType.ACCOUNT_UNCLASSIFIED: ElementKind.ACCOUNT,
        IncidenceType.ACCOUNT_MISSING_ENGLISH_NAME: ElementKind.ACCOUNT,
        IncidenceType.DOCUMENT_TYPE_MISSING: ElementKind.DOCUMENT_TYPE,
        IncidenceType.DOCUMENT_TYPE_UNKNOWN: ElementKind.DOCUMENT_TYPE,
        IncidenceType.MOVEMENT_OUT_OF_PERIOD: ElementKind.PERIOD,
        IncidenceType.AMOUNT_INVALID: ElementKind.AMOUNT_RULE,
        IncidenceType.VOUCHER_UNBALANCED: ElementKind.VOUCHER,
        IncidenceType.DUPLICATE_MOVEMENT: ElementKind.VOUCHER,
    }
)

# Skipped when the ledger has no document_type column.
DOCUMENT_TYPE_RULES: tuple[IncidenceType, ...] = (
    IncidenceType.DOCUMENT_TYPE_MISSING,
    IncidenceType.DOCUMENT_TYPE_UNKNOWN,
)


def incidence_key(incidence_type: str, code: str) -> str:
    """The consolidation key: "{type}:{element.code}"."""
    return f"{incidence_type}:{code}"
