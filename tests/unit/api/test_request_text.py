"""Request text is documented exactly as validated: the OpenAPI pattern and maxLength accept a
value iff the API does. Lengths count the text as sent; it is trimmed after every check."""

from __future__ import annotations

import functools
import re
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from app.api.schemas.clients import ClientIn
from app.api.schemas.iterations import ReprocessIn
from app.api.schemas.reference_data import AccountIn

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


def test_max_length_counts_the_text_as_sent_before_it_is_trimmed() -> None:
    schema = ClientIn.model_json_schema()["properties"]
    assert schema["name"]["maxLength"] == 200
    assert not _accepted("a" * 200 + "\xa0")  # 201 characters sent: over the documented 200
    assert ClientIn(name="a" * 199 + "\xa0").name == "a" * 199  # 200 sent, stored trimmed
    tax_id = {"maxLength": 50, "pattern": "^[^\\u0000]*$", "type": "string"}
    assert schema["tax_id"]["anyOf"][0] == tax_id
    with pytest.raises(ValidationError):
        ClientIn(name="Andes", tax_id=" " + "7" * 50)
    assert ClientIn(name="Andes", tax_id=" " + "7" * 48 + "\u3000").tax_id == "7" * 48


# Padding: Unicode white space, Python's extra U+001C, NUL, and U+FEFF, which is not white space.
_PADDING = st.text(alphabet=" \t\n\xa0\u2007\u3000\x1c\ufeff\x00", max_size=3)
# A valid body of each model, to which the field under test is added.
_VALID = {ClientIn: {"name": "Andes"}, AccountIn: {"code": "1101", "name": "Caja"}, ReprocessIn: {}}


@functools.cache
def _documented(model: type[BaseModel]) -> tuple[dict[str, Any], Draft202012Validator]:
    schema = model.model_json_schema()
    return schema, Draft202012Validator(schema)


def _max_length(schema: dict[str, Any], field: str) -> int:
    documented = schema["properties"][field]
    return next(
        s["maxLength"] for s in (documented, *documented.get("anyOf", ())) if s.get("maxLength")
    )


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (ClientIn, "name"),
        (ClientIn, "tax_id"),
        (AccountIn, "code"),
        (AccountIn, "name_en"),
        (ReprocessIn, "notes"),
    ],
)
@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(data=st.data())
def test_a_body_is_accepted_exactly_when_its_documented_schema_accepts_it(
    model: type[BaseModel], field: str, data: st.DataObject
) -> None:
    schema, validator = _documented(model)
    limit = _max_length(schema, field)
    letters = data.draw(st.sampled_from([0, 1, limit - 2, limit - 1, limit, limit + 1]))
    body = {**_VALID[model], field: data.draw(_PADDING) + "a" * letters + data.draw(_PADDING)}
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == validator.is_valid(body), repr(body[field])
