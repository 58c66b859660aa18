"""A person's name is text a person types: one rule for every way of giving one (the CLI, the
page), and one way to compare two names."""

from __future__ import annotations

from photodb.utils.terminal import is_control, printable

#: Longest name accepted, in characters.
MAX_NAME_LENGTH = 200


class BadName(ValueError):
    """A name that is refused: one line, nothing stored."""


def clean_name(text: str) -> str:
    """Trimmed with inner whitespace collapsed to one space; BadName when empty, longer than
    MAX_NAME_LENGTH or holding a control character (C0/C1, ESC, BEL, bidi controls)."""
    name = " ".join(text.split())
    if not name:
        raise BadName("a name cannot be empty")
    bad = next((c for c in name if is_control(c)), None)
    if bad is not None:
        raise BadName(f"a name cannot hold control characters ({printable(bad)} in {printable(name)[:60]!r})")
    if len(name) > MAX_NAME_LENGTH:
        raise BadName(f"a name is at most {MAX_NAME_LENGTH} characters (this one has {len(name)})")
    return name


def same_name_key(name: str) -> str:
    """What two names are compared by: case and repeated spaces ignored."""
    return " ".join(name.split()).casefold()
