"""Safe display of token strings: glitch tokens are made of control characters, bidi overrides,
zero-width marks and broken bytes, and must never reorder, hide or break the text around them.

`escape_text` makes every such character visible as a backslash escape and is one-to-one:
`unescape_text(escape_text(s)) == s` for every string."""

from __future__ import annotations

import unicodedata

import regex

_SIMPLE = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE = regex.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def _escape_char(char: str) -> str:
    if char in _SIMPLE:
        return _SIMPLE[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(text: str) -> str:
    """Replace every invisible or layout-changing character by a visible escape: control, format
    (bidi overrides, zero-width), surrogate, private-use, unassigned, separator characters other
    than the plain space (Python's `str.isprintable` is the judge), and the backslash itself."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if (c.isprintable() and c != "\\") else _escape_char(c) for c in text)


def _unescape_match(match: regex.Match) -> str:
    body = match.group(1)
    simple = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
    return simple[body] if body in simple else chr(int(body[1:], 16))


def unescape_text(text: str) -> str:
    """Invert `escape_text`."""
    return _ESCAPE.sub(_unescape_match, text)


def display_width(text: str) -> int:
    """Terminal columns taken by an escaped string (wide East Asian characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
