"""The slips a clerk makes, for the synthetic records of :mod:`xlink.synth.corrupt`: typing
errors in names and numbers, and dates written in a file's order, mistyped, impossible or
garbled past reading."""

from __future__ import annotations

import calendar
import datetime
import random

__all__ = [
    "dob_typo",
    "doc_typo",
    "garble_date",
    "impossible_date",
    "typo",
    "typo_digits",
    "write_date",
]

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ADJACENT: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _i, _ch in enumerate(_row):
        near = [_row[j] for j in (_i - 1, _i + 1) if 0 <= j < len(_row)]
        for other in (_r - 1, _r + 1):
            if 0 <= other < len(_ROWS):
                near += [_ROWS[other][j] for j in (_i - 1, _i) if 0 <= j < len(_ROWS[other])]
        _ADJACENT[_ch] = "".join(near)


def typo(rng: random.Random, text: str) -> str:
    """One slip of the keyboard: a letter substituted (usually by a neighbouring key), deleted,
    inserted or swapped with the next. The first letter is rarely touched. Always changes
    ``text``."""
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(letters) < 2:
        return text + rng.choice("aeiou")
    for _ in range(10):
        i = rng.choice(letters[1:]) if rng.random() < 0.9 else letters[0]
        ch = text[i]
        near = _ADJACENT.get(ch.lower(), "")
        op = rng.random()
        if op < 0.35:
            new = rng.choice(near) if near and rng.random() < 0.75 else rng.choice("aeinorst")
            new = new.upper() if ch.isupper() else new
            out = text[:i] + new + text[i + 1 :]
        elif op < 0.6:
            out = text[:i] + text[i + 1 :]
        elif op < 0.8:
            new = rng.choice(near) if near and rng.random() < 0.5 else ch.lower()
            out = text[:i] + new + text[i:]
        else:
            j = i + 1 if i + 1 < len(text) else i - 1
            a, b = sorted((i, j))
            out = text[:a] + text[b] + text[a] + text[b + 1 :]
        if out != text and out.strip():
            return out
    return text + rng.choice("aeiou")


def _valid(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return 1900 <= year <= 2015


def dob_typo(rng: random.Random, d: datetime.date) -> tuple[int, int, int]:
    """A mistyped date of birth that is still a valid date in 1900..2015: a day, month or year
    a little off, or the year's last two digits swapped (1986 → 1968)."""
    for _ in range(20):
        y, m, dd = d.year, d.month, d.day
        kind = rng.random()
        if kind < 0.4:
            dd += rng.choice((-1, 1, 10, -10))
        elif kind < 0.6:
            m += rng.choice((-1, 1))
        elif kind < 0.85:
            y += rng.choice((-1, 1, 10, -10))
        else:
            y = y - y % 100 + int(f"{y % 100:02d}"[::-1])  # 1986 -> 1968
        if (y, m, dd) != (d.year, d.month, d.day) and _valid(y, m, dd):
            return y, m, dd
    return d.year, d.month, max(1, d.day - 1) if d.day > 1 else 2


def write_date(parts: tuple[int, int | None, int | None] | None, order: str) -> str:
    """A date as a file of date order ``order`` writes it: ``DMY`` ``DD/MM/YYYY``, ``MDY``
    ``MM/DD/YYYY``; a partial date as ``MM/YYYY`` or ``YYYY``; none as ``""``. The parts are
    written as they are, so an impossible date (31 February, day 0) stays impossible."""
    if parts is None:
        return ""
    y, m, d = parts
    if m is None:
        return f"{y:04d}"
    if d is None:
        return f"{m:02d}/{y:04d}"
    return f"{d:02d}/{m:02d}/{y:04d}" if order == "DMY" else f"{m:02d}/{d:02d}/{y:04d}"


def impossible_date(rng: random.Random, year: int, month: int, day: int) -> tuple[int, int, int]:
    """A date no calendar has, as clerks write them: a day past the month's end (31/04, 30/02,
    29/02 of a common year), the day and month in the other order when the day is over 12 (so
    the month is 13 or more), or a day or month of 00."""
    last = calendar.monthrange(year, month)[1]
    u = rng.random()
    if day > 12 and u < 0.4:
        return year, day, month
    if last < 31 and u < 0.8:
        return year, month, rng.randrange(last + 1, 32)
    if rng.random() < 0.5:
        return year, month, 0
    return year, 0, day


#: Letters read or typed for a digit (OCR of handwriting, a slipped shift key).
_LOOKALIKE = {
    "0": "OD", "1": "lI", "2": "Z", "3": "E", "4": "A", "5": "S", "6": "Gb", "7": "T", "8": "B",
    "9": "gq",
}  # fmt: skip


def garble_date(rng: random.Random, text: str) -> str:
    """A written full date (``NN/NN/YYYY``) garbled so that no date parser reads it: a letter in
    place of a digit (``10/Z7/1983``), an unknown day or month written ``??`` or ``XX``
    (``??/10/1983``), a two-digit year (``10/27/83``), or a digit doubled (``10/277/1983``).
    Always changes ``text``; the result still has at least one digit."""
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    u = rng.random()
    if u < 0.55:
        i = rng.choice(digits)
        pool = _LOOKALIKE[text[i]] if rng.random() < 0.7 else "ABCDEFGHJKLMNPRSTUVWXYZ"
        return text[:i] + rng.choice(pool) + text[i + 1 :]
    head, middle, year = text.split("/")
    if u < 0.7:
        mark = rng.choice(("??", "XX", "xx"))
        if rng.random() < 0.6:
            return f"{mark}/{middle}/{year}" if rng.random() < 0.5 else f"{head}/{mark}/{year}"
        return f"{mark}/{mark}/{year}"
    if u < 0.85:
        return f"{head}/{middle}/{year[2:]}"
    i = rng.choice(digits)
    return text[: i + 1] + text[i] + text[i + 1 :]


def typo_digits(rng: random.Random, digits: str) -> str:
    """A digit string with one digit changed or two neighbours swapped (always different)."""
    for _ in range(10):
        i = rng.randrange(len(digits))
        if rng.random() < 0.5 and len(digits) > 1 and i + 1 < len(digits):
            out = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        else:
            out = digits[:i] + str(rng.randrange(10)) + digits[i + 1 :]
        if out != digits and not out.startswith("0"):
            return out
    return digits + str(rng.randrange(10))


def doc_typo(rng: random.Random, number: str) -> str:
    """A document number with one character changed or two neighbours swapped."""
    i = rng.randrange(len(number))
    if rng.random() < 0.3 and i + 1 < len(number) and number[i] != number[i + 1]:
        return number[:i] + number[i + 1] + number[i] + number[i + 2 :]
    pool = "0123456789" if number[i].isdigit() else "ABCDEFGHJKLMNPRSTUVWXYZ"
    new = rng.choice([c for c in pool if c != number[i]])
    return number[:i] + new + number[i + 1 :]
