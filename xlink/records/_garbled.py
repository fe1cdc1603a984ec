"""Names that show an encoding gone wrong on the way out of the agency's system, noticed while
a file loads (:class:`~xlink.records.LoadResult` ``misencoded_names``, ``lost_characters``):
such a name still loads as written, but normalises to letters its partner's copy lacks
(``MÃ¼ller`` to ``MALLER``, ``NGUY?N`` to ``NGUYN``), so a load says how many there were and
what to change. Nothing here quotes a value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = ["GarbledNames"]

#: The name fields looked at.
NAME_FIELDS: Final = ("given_name", "middle_name", "family_name", "full_name", "aliases")

#: UTF-8 read as Windows-1252 or Latin-1: the lead byte of a two-byte sequence (``Ã`` for
#: ``0xC3``, ``Ð`` for Cyrillic's ``0xD0``) followed by what a continuation byte reads as (a
#: Latin-1 symbol, or one of Windows-1252's letters and punctuation at ``0x80``-``0x9F``), or
#: the three characters of a UTF-8 quote or dash (``â€``). No name holds these pairs.
_MISENCODED: Final = re.compile(
    "[\u00c2-\u00df][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6"
    "\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a"
    "\u20ac\u2122]|\u00e2\u20ac"
)
#: A character an export could not write: the replacement character, or a question mark
#: between two letters (``NGUY?N``), as Windows-1252 exports write what they cannot encode.
_LOST: Final = re.compile(r"\ufffd|(?<=[^\W\d_])\?(?=[^\W\d_])")


class GarbledNames:
    """Counts the rows of a load whose names look mis-encoded or lost a character."""

    def __init__(self) -> None:
        self.misencoded = 0
        self.lost = 0

    def note(self, values: Mapping[str, str]) -> None:
        """Count one row by its canonical values."""
        names = "\x00".join([values.get(f, "") for f in NAME_FIELDS])  # no letter between
        if names.isascii() and "?" not in names:  # most rows: nothing to look for
            return
        if _MISENCODED.search(names):
            self.misencoded += 1
        if _LOST.search(names):
            self.lost += 1
