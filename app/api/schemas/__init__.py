"""Request and response models (pydantic lives at the edges only): shared pieces."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


# Request text: Postgres cannot store NUL, so it is refused here (and documented as a pattern).
Text = Annotated[
    str, AfterValidator(_without_nul), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})
]


# What str_strip_whitespace removes: Unicode White_Space (pydantic-core strips with Rust's
# char::is_whitespace), spelt as a JSON Schema (ECMA-262) character class. Request text is
# stripped before its length is checked, so a required text is documented as holding at least
# one character outside this class. ECMA's \s cannot stand in: it lacks U+0085, has U+FEFF.
_STRIPPED = (
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)

# Required request text: something besides white space, and no NUL.
NonBlankText = Annotated[
    str,
    AfterValidator(_without_nul),
    Field(
        min_length=1,
        json_schema_extra={"pattern": f"^[^\\u0000]*[^\\u0000{_STRIPPED}][^\\u0000]*$"},
    ),
]


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Items(BaseModel, Generic[T]):
    """The list envelope of SPEC §6."""

    items: list[T]


class Page(Items[T], Generic[T]):
    """A page of a paginated list (SPEC §6): pass `next_cursor` as `cursor` for the next one."""

    next_cursor: int | None = Field(description="null on the last page")
