"""A required request text is documented exactly as validated: the OpenAPI pattern accepts a
value iff the API, which strips white space before checking the length, accepts it."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from app.api.schemas.clients import ClientIn

# Every character Python calls white space, and some that only look like it.
CANDIDATES = [chr(code) for code in range(0x110000) if chr(code).isspace()] + [
    "\ufeff",
    "\u200b",
    "\u180e",
    "\u00ad",
    "a",
    "ñ",
]
UNICODE_WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(code) for code in range(0x2000, 0x200B)
)
PATTERN = re.compile(ClientIn.model_json_schema()["properties"]["name"]["pattern"])


def _accepted(name: str) -> bool:
    try:
        ClientIn(name=name)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("char", CANDIDATES, ids=lambda c: f"U+{ord(c):04X}")
def test_the_pattern_says_what_validation_does(char: str) -> None:
    for name in (char, char * 3, f" {char}\t", f"{char}x", f"x {char}"):
        assert _accepted(name) == (PATTERN.fullmatch(name) is not None), repr(name)


def test_white_space_alone_is_refused() -> None:
    assert not any(_accepted(char) for char in UNICODE_WHITE_SPACE)
    assert _accepted(" Comercial Andes\u00a0")


def test_nul_is_refused_and_documented_so() -> None:
    assert not _accepted("Andes\x00SpA")
    assert PATTERN.fullmatch("Andes\x00SpA") is None
