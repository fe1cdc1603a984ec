"""The one definition of every identifier xlink accepts: agency ids, MOU ids, linkage schema ids,
purposes, country codes, payload field names, match-key names, reason codes and key
fingerprints.

Each rule is an :class:`IdentifierRule` (``AGENCY_ID_RULE``...) with its compiled pattern under
a short name (``AGENCY_ID``, for ``fullmatch``) and a ``check_*`` function that returns the value
or raises :class:`~xlink.errors.IdentifierError`. The MOU validator, the audit vocabulary, the
store, the key files and the command line all use these, so that whatever one part accepts the
others accept too (an MOU id may contain ``/``; the audit log takes it). The patterns are mirrored
in ``protocols/schemas/mou-v1.json`` (tested).

Identifiers are not secret, but an identifier field can be misused to carry a name, so an error
never quotes the value: it names the rule, and the length or the position of the first character
that breaks it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from xlink.errors import IdentifierError

__all__ = [
    "AGENCY_ID",
    "AGENCY_ID_RULE",
    "COUNTRY",
    "COUNTRY_RULE",
    "FINGERPRINT",
    "FINGERPRINT_RULE",
    "KEY_NAME",
    "KEY_NAME_RULE",
    "LAYOUT_CHARACTERS",
    "MOU_ID",
    "MOU_ID_RULE",
    "PAYLOAD_NAME",
    "PAYLOAD_NAME_RULE",
    "PURPOSE",
    "PURPOSE_RULE",
    "REASON_CODE",
    "REASON_CODE_RULE",
    "RULES",
    "SCHEMA_ID",
    "SCHEMA_ID_RULE",
    "UNSAFE_TEXT",
    "IdentifierRule",
    "arg_type",
    "check_agency_id",
    "check_country",
    "check_fingerprint",
    "check_key_name",
    "check_mou_id",
    "check_payload_name",
    "check_purpose",
    "check_reason_code",
    "check_schema_id",
]


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    """One kind of identifier: a first character from ``first``, then characters from ``rest``,
    ``min_chars`` to ``max_chars`` in all (ASCII only). ``first`` and ``rest`` are the insides of
    a regex character class (``"A-Za-z0-9_-"``). ``description`` completes "must be ..." in
    error messages (the MOU validator's wording, docs/mou.md §2)."""

    kind: str
    first: str
    rest: str
    min_chars: int
    max_chars: int
    description: str
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _first: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _rest: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.min_chars <= self.max_chars:
            raise ValueError("an identifier has 1 <= min_chars <= max_chars")
        if self.first == self.rest and self.min_chars == self.max_chars:
            source = f"[{self.first}]{{{self.max_chars}}}"
        else:
            source = f"[{self.first}][{self.rest}]{{{self.min_chars - 1},{self.max_chars - 1}}}"
        object.__setattr__(self, "pattern", re.compile(source))
        object.__setattr__(self, "_first", re.compile(f"[{self.first}]"))
        object.__setattr__(self, "_rest", re.compile(f"[{self.rest}]"))

    def matches(self, value: object) -> bool:
        """Whether ``value`` is a string this rule accepts."""
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    def problem(self, value: object) -> str:
        """What is wrong with ``value``, without quoting it (``""`` when nothing is)."""
        if not isinstance(value, str):
            return "not a string"
        if not value:
            return "empty"
        if not self.min_chars <= len(value) <= self.max_chars:
            return f"{len(value)} characters"
        if not self._first.fullmatch(value[0]):
            return "the first character is not allowed there"
        for i, ch in enumerate(value[1:], start=2):
            if not self._rest.fullmatch(ch):
                return f"character {i} is not allowed"
        return ""

    def check(self, value: object, *, what: str | None = None) -> str:
        """Return ``value`` if this rule accepts it; else raise
        :class:`~xlink.errors.IdentifierError` naming ``what`` (default: the kind), the rule
        and the problem, never the value."""
        if self.matches(value):
            assert isinstance(value, str)
            return value
        raise IdentifierError(
            self.kind, f"{what or self.kind}: must be {self.description} ({self.problem(value)})"
        )


AGENCY_ID_RULE: Final = IdentifierRule(
    "agency id", "A-Za-z0-9", "A-Za-z0-9_-", 1, 64,
    "1-64 chars of A-Z a-z 0-9 _ -, starting with a letter or digit",
)  # fmt: skip
"""An agency as an MOU names it (a party, a third party of onward sharing, a key directory's
owner, a peer in the audit log)."""
MOU_ID_RULE: Final = IdentifierRule(
    "MOU id", "A-Za-z0-9", "A-Za-z0-9._:/-", 1, 128,
    "1-128 chars of A-Z a-z 0-9 . _ : / -, starting with a letter or digit",
)  # fmt: skip
SCHEMA_ID_RULE: Final = IdentifierRule(
    "linkage schema id", "A-Za-z0-9", "A-Za-z0-9._:/-", 1, 128,
    "1-128 chars of A-Z a-z 0-9 . _ : / -, starting with a letter or digit",
)  # fmt: skip
PURPOSE_RULE: Final = IdentifierRule(
    "purpose", "a-z", "a-z0-9-", 1, 64, "lower-case [a-z][a-z0-9-]*, at most 64 chars"
)
"""A purpose an MOU permits (``purposes``), stated when a stored record is read or shared."""
COUNTRY_RULE: Final = IdentifierRule(
    "country", "A-Z", "A-Z", 3, 3, "an ISO 3166-1 alpha-3 code in capitals (CAN, USA)"
)
PAYLOAD_NAME_RULE: Final = IdentifierRule(
    "payload field name", "a-z", "a-z0-9_", 1, 64, "lower-case [a-z][a-z0-9_]*, at most 64 chars"
)
"""The ``<name>`` of a ``payload.<name>`` record field."""
KEY_NAME_RULE: Final = IdentifierRule(
    "match key name", "a-z", "a-z0-9_", 1, 64, "lower-case [a-z][a-z0-9_]*, at most 64 chars"
)
"""The name of a match key in a linkage schema."""
REASON_CODE_RULE: Final = IdentifierRule(
    "reason code", "a-z", "a-z0-9_.-", 1, 64, "lower-case [a-z][a-z0-9_.-]*, at most 64 chars"
)
"""A machine-readable reason (a refusal, a denial, a purge), as audited."""
FINGERPRINT_RULE: Final = IdentifierRule(
    "key fingerprint", "0-9a-f", "0-9a-f", 32, 32, "32 lower-case hex digits"
)
"""An officer's signing-key fingerprint (``VerifyKey.fingerprint()``): approver, reader."""

AGENCY_ID: Final = AGENCY_ID_RULE.pattern
MOU_ID: Final = MOU_ID_RULE.pattern
SCHEMA_ID: Final = SCHEMA_ID_RULE.pattern
PURPOSE: Final = PURPOSE_RULE.pattern
COUNTRY: Final = COUNTRY_RULE.pattern
PAYLOAD_NAME: Final = PAYLOAD_NAME_RULE.pattern
KEY_NAME: Final = KEY_NAME_RULE.pattern
REASON_CODE: Final = REASON_CODE_RULE.pattern
FINGERPRINT: Final = FINGERPRINT_RULE.pattern

RULES: Final[Mapping[str, IdentifierRule]] = MappingProxyType(
    {
        rule.kind: rule
        for rule in (
            AGENCY_ID_RULE,
            MOU_ID_RULE,
            SCHEMA_ID_RULE,
            PURPOSE_RULE,
            COUNTRY_RULE,
            PAYLOAD_NAME_RULE,
            KEY_NAME_RULE,
            REASON_CODE_RULE,
            FINGERPRINT_RULE,
        )
    }
)
"""Every rule, by kind."""


#: Characters that change how the text around them reads or hide in it: the bidirectional
#: controls (the marks, embeddings, overrides and isolates), the line and paragraph
#: separators, and the invisible ones (soft hyphen, zero-width space, word joiner and invisible
#: operators, byte order mark, tag characters; the zero-width joiner and non-joiner that names
#: are written with are not among them). A fixed list, not Unicode categories, so that what is
#: valid does not change with the Unicode version. A regular expression class's body.
LAYOUT_CHARACTERS: Final = (
    "\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\u2028\u2029"
    "\ufeff\U000e0000-\U000e007f"
)
#: A character no text that is shown to people or printed to a terminal may hold: a control
#: character (C0, DEL, C1), which drives a terminal or breaks a line, or one of
#: :data:`LAYOUT_CHARACTERS`. An MOU's texts (xlink.policy) and record ids (xlink.records).
UNSAFE_TEXT: Final = re.compile(f"[\x00-\x1f\x7f-\x9f{LAYOUT_CHARACTERS}]")


def check_agency_id(value: object, *, what: str | None = None) -> str:
    """``value`` if it is an agency id (:data:`AGENCY_ID`), else :class:`IdentifierError`."""
    return AGENCY_ID_RULE.check(value, what=what)


def check_mou_id(value: object, *, what: str | None = None) -> str:
    """``value`` if it is an MOU id (:data:`MOU_ID`), else :class:`IdentifierError`."""
    return MOU_ID_RULE.check(value, what=what)


def check_schema_id(value: object, *, what: str | None = None) -> str:
    """``value`` if it is a linkage schema id (:data:`SCHEMA_ID`), else
    :class:`IdentifierError`."""
    return SCHEMA_ID_RULE.check(value, what=what)


def check_purpose(value: object, *, what: str | None = None) -> str:
    """``value`` if it is a purpose (:data:`PURPOSE`), else :class:`IdentifierError`."""
    return PURPOSE_RULE.check(value, what=what)


def check_country(value: object, *, what: str | None = None) -> str:
    """``value`` if it is an ISO 3166-1 alpha-3 code (:data:`COUNTRY`), else
    :class:`IdentifierError`."""
    return COUNTRY_RULE.check(value, what=what)


def check_payload_name(value: object, *, what: str | None = None) -> str:
    """``value`` if it is a payload field name (:data:`PAYLOAD_NAME`, without ``payload.``),
    else :class:`IdentifierError`."""
    return PAYLOAD_NAME_RULE.check(value, what=what)


def check_key_name(value: object, *, what: str | None = None) -> str:
    """``value`` if it is a match-key name (:data:`KEY_NAME`), else :class:`IdentifierError`."""
    return KEY_NAME_RULE.check(value, what=what)


def check_reason_code(value: object, *, what: str | None = None) -> str:
    """``value`` if it is a reason code (:data:`REASON_CODE`), else :class:`IdentifierError`."""
    return REASON_CODE_RULE.check(value, what=what)


def check_fingerprint(value: object, *, what: str | None = None) -> str:
    """``value`` if it is a key fingerprint (:data:`FINGERPRINT`), else
    :class:`IdentifierError`."""
    return FINGERPRINT_RULE.check(value, what=what)


def arg_type(rule: IdentifierRule) -> Callable[[str], str]:
    """An ``argparse`` ``type=`` for ``rule``: the text unchanged, or
    ``argparse.ArgumentTypeError`` (a usage error, exit code 2) saying what is wrong."""

    def parse(text: str) -> str:
        if rule.matches(text):
            return text
        raise argparse.ArgumentTypeError(f"must be {rule.description} ({rule.problem(text)})")

    parse.__name__ = parse.__qualname__ = rule.kind.replace(" ", "_")
    parse.__doc__ = f"argparse type: a {rule.kind} ({rule.description})."
    return parse
