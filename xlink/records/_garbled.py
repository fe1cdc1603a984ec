"""Names that show an encoding gone wrong on the way out of the agency's system, noticed while
a file loads (:class:`~xlink.records.LoadResult` ``misencoded_names``, ``lost_characters``):
such a name still loads as written, but normalises to letters its partner's copy lacks
(``MÃ¼ller`` to ``MALLER``, ``NGUY?N`` to ``NGUYN``), so a load says how many there were and
what to change. Nothing here quotes a value."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

from xlink.records.validation import NAME_FIELDS

__all__ = ["GarbledNames", "lost_a_character", "misencoded"]

#: The fields looked at: the name fields and the aliases.
_LOOKED_AT: Final = (*NAME_FIELDS, "aliases")

#: What a UTF-8 continuation byte (0x80-0xBF) reads as in Windows-1252 or Latin-1.
_CONTINUATION: Final = (
    "\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
#: A UTF-8 sequence read one byte a character: its lead (two, three or four bytes long, as
#: ``Ã``, ``á``, ``ð`` read) and its continuations.
_SEQUENCE: Final = re.compile(
    f"[\u00c2-\u00df][{_CONTINUATION}]|[\u00e0-\u00ef][{_CONTINUATION}]{{2}}"
    f"|[\u00f0-\u00f4][{_CONTINUATION}]{{3}}"
)
#: A character an export could not write: the replacement character, or a question mark
#: against a letter (``NGUY?N``, ``JOS?``), as Windows-1252 exports write what they cannot
#: encode. A question mark alone is a marker of a value not known, not this.
_LOST: Final = re.compile(r"\ufffd|(?<=[^\W\d_])\?|\?(?=[^\W\d_])")


def _byte(ch: str) -> bytes:
    try:
        return ch.encode("cp1252")
    except UnicodeEncodeError:
        return ch.encode("latin-1")  # the five bytes Windows-1252 leaves undefined


def _a_name_letter(ch: str) -> bool:
    """A letter or mark a name holds: not IPA's letters, spacing modifiers or the combining
    marks past the common accents (U+0250-U+036F), which real text read twice never makes."""
    return not 0x0250 <= ord(ch) <= 0x036F and unicodedata.category(ch)[0] in "LM"


def misencoded(text: str) -> bool:
    """Whether ``text`` holds a UTF-8 sequence read one byte a character in Windows-1252 or
    Latin-1 (``MÃ¼ller``, ``Nguyá»…n``, ``Ð˜Ð²Ð°Ð½``): a run of such characters that, turned
    back into its bytes, is UTF-8 for a letter. A correctly written name whose capitals run
    into a symbol (``KŘÍŽ``, ``JOSÉ`` and a no-break space) reads back as no letter."""
    for run in _SEQUENCE.finditer(text):
        try:
            ch = b"".join(_byte(c) for c in run.group()).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if _a_name_letter(ch):
            return True
    return False


def lost_a_character(text: str) -> bool:
    """Whether ``text`` holds a character an export could not write (:data:`_LOST`)."""
    return _LOST.search(text) is not None


class GarbledNames:
    """Counts the records of a load whose names look mis-encoded or lost a character."""

    def __init__(self) -> None:
        self.misencoded = 0
        self.lost = 0

    def note(self, values: Mapping[str, str]) -> None:
        """Count one record by its canonical values."""
        names = "\x00".join([values.get(f, "") for f in _LOOKED_AT])  # no letter between
        if names.isascii() and "?" not in names:  # most records: nothing to look for
            return
        if misencoded(names):
            self.misencoded += 1
        if lost_a_character(names):
            self.lost += 1
