"""How swept values are written in variant names and table labels (one rendering everywhere),
and how such text is measured and shown in a terminal (display columns, control characters)."""

from __future__ import annotations

import unicodedata
from typing import Any


def format_value(value: Any) -> str:
    """A short, stable rendering of a swept value: ``group[groups=8]``, ``5``, ``[100,100]``."""
    if isinstance(value, dict):
        head = value.get("kind", value.get("name", ""))
        rest = ",".join(
            f"{k}={format_value(v)}" for k, v in value.items() if k not in ("kind", "name")
        )
        return f"{head}[{rest}]" if rest else str(head)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


# Characters a terminal would act on rather than show: C0/C1 controls (an ANSI escape could
# clear the screen or recolour the table) and the bidirectional overrides that reorder what
# follows them (a variant name could make another row's numbers read backwards).
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def printable(text: str) -> str:
    """``text`` as a terminal shows it literally: tabs as spaces, other control and bidi
    characters as ``\\x1b`` / ``\\u202e`` escapes (line breaks are kept for wrapping)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif ch in _BIDI or unicodedata.category(ch) == "Cc":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def char_width(ch: str) -> int:
    """Columns one character takes in a terminal: 2 for wide (CJK, fullwidth), 0 for
    combining marks, else 1."""
    if unicodedata.combining(ch) or ch in "\u200b\u200d\ufeff":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal (``len`` counts a CJK character as one)."""
    return len(text) if text.isascii() else sum(map(char_width, text))


def cut(text: str, width: int) -> tuple[str, str]:
    """``text`` split where its head fills ``width`` columns (at least one character)."""
    used = 0
    for i, ch in enumerate(text):
        used += char_width(ch)
        if used > width and i > 0:
            return text[:i], text[i:]
    return text, ""


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, cut in the middle with ``…`` when longer (both
    ends stay: variant names differ at their start or their end)."""
    if display_width(text) <= width:
        return text
    head, _ = cut(text, (width - 1) // 2)
    tail_room = width - 1 - display_width(head)
    tail = text[len(text) - tail_room :] if tail_room > 0 else ""
    while display_width(tail) > tail_room:
        tail = tail[1:]
    return f"{head}…{tail}"
