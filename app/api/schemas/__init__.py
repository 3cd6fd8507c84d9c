"""Request and response models (pydantic lives at the edges only): shared pieces."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")


# What request text is trimmed of: Unicode White_Space, spelt out so that the documented
# pattern names exactly this set (Python's str.strip() would also take U+001C..U+001F).
WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
# The same set as an ECMA-262 character class body (`\s` cannot stand in: it lacks U+0085 and
# has U+FEFF).
_WHITE_SPACE_CLASS = "".join(f"\\u{ord(char):04x}" for char in WHITE_SPACE)


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


def _not_blank(value: str) -> str:
    if not value.strip(WHITE_SPACE):
        raise ValueError("must hold something besides white space")
    return value


# Request text: no NUL (Postgres cannot store it; documented as a pattern). Trimmed by
# StrictModel once every limit has been checked.
Text = Annotated[
    str, AfterValidator(_without_nul), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})
]

# Required request text: something besides white space, and no NUL.
NonBlankText = Annotated[
    str,
    AfterValidator(_without_nul),
    AfterValidator(_not_blank),
    Field(
        min_length=1,
        json_schema_extra={"pattern": f"^[^\\u0000]*[^\\u0000{_WHITE_SPACE_CLASS}][^\\u0000]*$"},
    ),
]


# Amounts leave the API as canonical decimal strings (app/domain/amounts.py), never floats.
Amount = Annotated[
    str,
    Field(
        description="A decimal number as a string: exact, at least two decimals",
        pattern=r"^-?[0-9]+\.[0-9]{2,}$",
        examples=["1500000.00"],
    ),
]


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored,
    and have their text trimmed."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _trim_text(self) -> StrictModel:
        # Last, so that maxLength and the patterns judge the text as sent, as the OpenAPI
        # document says (pydantic's str_strip_whitespace trims first: a padded over-long
        # value got through).
        for name, value in self:
            if isinstance(value, str):
                setattr(self, name, value.strip(WHITE_SPACE))
        return self


class Items(BaseModel, Generic[T]):
    """The list envelope of SPEC §6."""

    items: list[T]


class Page(Items[T], Generic[T]):
    """A page of a paginated list (SPEC §6): pass `next_cursor` as `cursor` for the next one."""

    next_cursor: int | None = Field(description="null on the last page")


class CursorPage(Items[T], Generic[T]):
    """A page of a list whose cursor is text: pass `next_cursor` as `cursor` for the next one."""

    next_cursor: str | None = Field(description="null on the last page")
