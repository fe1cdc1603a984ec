"""The field parsers one row check uses (:class:`~xlink.records.validation.RowChecker`), each
under the file's settings and, when asked, remembering (bounded) the texts it has read: real
lists repeat categories, codes, dates and aliases, and parsed values are immutable, so a
repeated text is parsed once and its value shared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from xlink.records._fields import (
    DateOrder,
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
from xlink.records.model import BirthDate

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


class FieldParsers:
    """The parsers of one file's fields: ``orders`` its date order per date field,
    ``two_digit_until`` its mapping's ``two_digit_years_until``; with ``remember``, each
    parser remembers what it read (module docstring)."""

    def __init__(
        self, orders: Mapping[str, DateOrder], two_digit_until: int | None, remember: bool
    ) -> None:
        wrap = _remembering if remember else _as_is
        birth_order, expiry_order = orders["birth_date"], orders["doc_expiry"]
        self.category = wrap(parse_category)
        self.sex = wrap(parse_sex)
        self.aliases = wrap(parse_aliases)
        self.nationalities = wrap(parse_nationalities)
        self.country = wrap(parse_country_code)
        self.doc_type = wrap(parse_doc_type)
        self.grading = wrap(parse_grading)
        self.handling_code = wrap(parse_handling_code)

        def birth_date(text: str) -> BirthDate:
            found = parse_birth_date(text, birth_order, two_digit_years_until=two_digit_until)
            if _placeholder(found):
                raise ValueError(PLACEHOLDER_DATE)
            return found

        self.birth_date = wrap(birth_date)
        self.expiry = wrap(lambda t: parse_birth_date(t, expiry_order).isoformat())

        def salvage(text: str) -> tuple[BirthDate, str] | None:
            kept = salvage_birth_date(text, birth_order, two_digit_years_until=two_digit_until)
            # a placeholder mended or read the other way round is still "unknown"
            return None if kept is not None and _placeholder(kept[0]) else kept

        #: What is readable of a date of birth ``birth_date`` refused, and what was kept.
        self.salvage_birth_date = salvage


def _placeholder(date: BirthDate) -> bool:
    return (date.year, date.month, date.day) in PLACEHOLDER_BIRTH_DATES


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
