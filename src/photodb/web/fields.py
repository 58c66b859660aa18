"""Reading the fields of a query or a form: bad input is one line (400), never a server error."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.convertors import Convertor, register_url_convertor

#: The largest id a BIGINT column holds.
MAX_ID = 2**63 - 1


class BadInput(ValueError):
    """A field is malformed (not a number, out of range, a NUL byte...): one line, nothing written."""


def text_fields(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """The text fields of a query or form (uploads ignored); PostgreSQL text holds no NUL byte."""
    fields = {}
    for name, value in items:
        if not isinstance(value, str):
            continue
        if "\x00" in name or "\x00" in value:
            raise BadInput(f"{name.replace(chr(0), '')!r} holds a NUL byte")
        fields[name] = value
    return fields


def whole_number(value: str, name: str, low: int = 0, high: int = MAX_ID) -> int:
    """A number in ASCII digits (never '²' or full-width digits, which str.isdigit accepts)."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise BadInput(f"{name} must be a number, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise BadInput(f"{name} must be between {low} and {high}, got {number}")
    return number


class IdConvertor(Convertor[int]):
    """`{name:id}` in a route: an id a BIGINT can hold (18 digits at most), else no such page (404)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
