"""The field parsers one row check uses (:class:`~xlink.records.validation.RowChecker`), each
under the file's settings and, when asked, remembering (bounded) the texts it has read: real
lists repeat categories, codes, dates and aliases, and parsed values are immutable, so a
repeated text is parsed once and its value shared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Final, TypeVar

from xlink.records._fields import (
    DateOrder,
    category_key,
    parse_aliases,
    parse_birth_date,
    parse_category,
    parse_country_code,
    parse_doc_type,
    parse_grading,
    parse_handling_code,
    parse_nationalities,
    parse_sex,
    salvage_birth_date,
)
from xlink.records.model import BirthDate, Category

__all__ = ["MEMO_SIZE", "FieldParsers"]

_T = TypeVar("_T")

#: Bound on the texts each remembering parser keeps; a full memo is emptied and starts again.
MEMO_SIZE = 1 << 16


#: Dates a system writes for "unknown" (the first of its calendar, a spreadsheet's day zero):
#: two strangers given one would agree on a date of birth neither has told.
PLACEHOLDER_BIRTH_DATES: Final = frozenset(
    {(1900, 1, 1), (1901, 1, 1), (1899, 12, 31), (1899, 12, 30)}
)
#: The reason a placeholder date of birth is left out with (nothing of it is kept).
PLACEHOLDER_DATE: Final = "a placeholder date (unknown), not a date of birth"
#: The reason a date of birth after the load's date is left out with (nothing of it is kept:
#: its year at least is wrong, and which part was mistyped cannot be told).
FUTURE_DATE: Final = "a date of birth after the date of the load"
#: How far after the load's date (its clock's UTC date) a date of birth may be: a birth
#: registered today where the day has already begun but UTC's has not.
FUTURE_SLACK: Final = timedelta(days=1)


class FieldParsers:
    """The parsers of one file's fields: ``orders`` its date order per date field,
    ``two_digit_until`` its mapping's ``two_digit_years_until``, ``today`` the load's date
    (a later date of birth is refused; ``None``: no bound); with ``remember``, each parser
    remembers what it read (module docstring)."""

    def __init__(
        self,
        orders: Mapping[str, DateOrder],
        two_digit_until: int | None,
        remember: bool,
        today: date | None = None,
        categories: Mapping[str, Category] | None = None,
    ) -> None:
        wrap = _remembering if remember else _as_is
        birth_order, expiry_order = orders["birth_date"], orders["doc_expiry"]
        named = dict(categories or {})

        def category(text: str) -> Category:  # the mapping's word for it first
            return named.get(category_key(text)) or parse_category(text)

        self.category = wrap(category)
        self.sex = wrap(parse_sex)
        self.aliases = wrap(parse_aliases)
        self.nationalities = wrap(parse_nationalities)
        self.country = wrap(parse_country_code)
        self.doc_type = wrap(parse_doc_type)
        self.grading = wrap(parse_grading)
        self.handling_code = wrap(parse_handling_code)

        latest = None if today is None else today + FUTURE_SLACK
        if today is not None and two_digit_until is not None:
            # a two-digit year is read no later than the load's (a year to come is no birth)
            two_digit_until = min(two_digit_until, today.year)

        def birth_date(text: str) -> BirthDate:
            found = parse_birth_date(text, birth_order, two_digit_years_until=two_digit_until)
            if _placeholder(found):
                raise ValueError(PLACEHOLDER_DATE)
            if latest is not None and _after(found, latest):
                raise ValueError(FUTURE_DATE)
            return found

        self.birth_date = wrap(birth_date)
        self.expiry = wrap(lambda t: parse_birth_date(t, expiry_order).isoformat())

        def salvage(text: str) -> tuple[BirthDate, str] | None:
            kept = salvage_birth_date(text, birth_order, two_digit_years_until=two_digit_until)
            if kept is None:
                return None
            # a placeholder mended or read the other way round is still "unknown"
            if _placeholder(kept[0]) or (latest is not None and _after(kept[0], latest)):
                return None
            return kept

        #: What is readable of a date of birth ``birth_date`` refused, and what was kept.
        self.salvage_birth_date = salvage


def _placeholder(found: BirthDate) -> bool:
    return (found.year, found.month, found.day) in PLACEHOLDER_BIRTH_DATES


def born_after(found: BirthDate, today: date) -> bool:
    """Whether a date of birth is after the load's date ``today`` in every reading of it (a
    day's slack, :data:`FUTURE_SLACK`): what a loaded file leaves out (:data:`FUTURE_DATE`)."""
    return _after(found, today + FUTURE_SLACK)


def _after(found: BirthDate, latest: date) -> bool:
    """Whether every reading of ``found`` (a partial date: each of its days; an ambiguous
    one: either order) is after ``latest``."""
    if found.month is None:
        return found.year > latest.year
    readings = [(found.month, found.day)]
    if found.day_month_ambiguous:
        assert found.day is not None
        readings.append((found.day, found.month))
    bound = (latest.year, latest.month, latest.day)
    return all((found.year, m, 1 if d is None else d) > bound for m, d in readings)


class _Failed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _as_is(parser: Callable[[str], _T]) -> Callable[[str], _T]:
    return parser


def _remembering(parser: Callable[[str], _T]) -> Callable[[str], _T]:
    """``parser``, remembering its value, or its ``ValueError``'s reason, for each text."""
    memo: dict[str, _T | _Failed] = {}

    def parse(text: str) -> _T:
        hit = memo.get(text)
        if hit is None:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            try:
                hit = parser(text)
            except ValueError as exc:
                hit = _Failed(str(exc))
            memo[text] = hit
        if isinstance(hit, _Failed):
            raise ValueError(hit.reason)
        return hit

    return parse
