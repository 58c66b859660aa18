"""Text from the database made safe to print: a name someone typed (or stored before names were
checked) never moves the cursor, rings the bell or reverses the line it is printed on."""

from __future__ import annotations

import unicodedata

#: Bidirectional embeddings, overrides, isolates and marks: they reorder what follows them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_control(char: str) -> bool:
    """C0, DEL, C1 (category Cc), bidi controls and line/paragraph separators."""
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS


def printable(text: str | None) -> str:
    """`text` with each control character written as an escape (\\x1b, \\u202e), or '' for None."""
    if text is None:
        return ""
    return "".join(_escape(c) if is_control(c) else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
