"""The member-by-member checker behind MOU validation (docs/mou.md §2).

Each method reads one member, appends ``"<location>: <reason>"`` to :attr:`Checker.errors` when it
is wrong and returns a stand-in, so that one pass reports every problem. Messages never quote the
value.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType
from typing import TypeVar

from xlink.crypto.keys import SealingPublicKey, VerifyKey
from xlink.documents import finite_number
from xlink.identifiers import LAYOUT_CHARACTERS, UNSAFE_TEXT

__all__ = ["ABSENT", "MISSING", "Checker"]

_E = TypeVar("_E", bound=Enum)
_K = TypeVar("_K", VerifyKey, SealingPublicKey)

MAX_NAME_CHARS = 200
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Officers read and sign an MOU's texts (names, legal basis, handling conditions): none may
#: hold a character that drives a terminal, changes how the text around it reads or hides in
#: it (:data:`xlink.identifiers.UNSAFE_TEXT`; a multi-line text may hold a newline and a
#: tab). protocols/schemas/mou-v1.json has the same classes.
_CONTROL = UNSAFE_TEXT
_CONTROL_BUT_NEWLINE_TAB = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{LAYOUT_CHARACTERS}]")


MISSING = object()
#: Stands in for a table that is missing or not a table (already reported): its members are not
#: reported again as missing.
ABSENT: Mapping[str, object] = MappingProxyType({})


def _choices(enum: type[Enum]) -> str:
    return ", ".join(repr(m.value) for m in enum)


class Checker:
    """Reads members of one document, collecting every problem in :attr:`errors`."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, where: str, reason: str) -> None:
        self.errors.append(f"{where}: {reason}")

    def table(self, obj: Mapping[str, object], key: str, where: str) -> Mapping[str, object]:
        """``obj[key]`` as a table; :data:`ABSENT` (after an error) when missing or not a table."""
        value = self.get(obj, key, where)
        if isinstance(value, Mapping):
            return value
        if value is not MISSING:
            self.error(where, "must be a table/object")
        return ABSENT

    def members(
        self, obj: Mapping[str, object], allowed: tuple[str, ...] | frozenset[str], where: str
    ) -> None:
        prefix = f"{where}." if where else ""
        for member in sorted(set(obj) - set(allowed), key=str):
            self.error(f"{prefix}{member}", "unknown member")

    def get(self, obj: Mapping[str, object], key: str, where: str) -> object:
        value = obj.get(key, MISSING)
        if value is MISSING and obj is not ABSENT:
            self.error(where, "required")
        return value

    def list(self, obj: Mapping[str, object], key: str, where: str) -> list[object] | None:
        """``obj[key]`` as a list; ``None`` (after an error, if present) when it is not one."""
        value = self.get(obj, key, where)
        if value is MISSING:
            return None
        if not isinstance(value, list):
            self.error(where, "must be a list")
            return None
        return value

    def text(
        self,
        obj: Mapping[str, object],
        key: str,
        where: str,
        *,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        max_chars: int = MAX_NAME_CHARS,
        multiline: bool = False,
        required: bool = True,
    ) -> str:
        value = self.get(obj, key, where) if required else obj.get(key, "")
        if value is MISSING:
            return ""
        if not isinstance(value, str):
            self.error(where, "must be a string")
            return ""
        if pattern is not None:
            if not pattern.fullmatch(value):
                self.error(where, f"must be {rule}")
                return ""
            return value
        if required and not value.strip():
            self.error(where, "must not be empty")
        elif len(value) > max_chars:
            self.error(where, f"at most {max_chars} characters")
        elif not _is_utf8(value):
            self.error(where, "must be valid Unicode text (no lone surrogates)")
        elif (_CONTROL_BUT_NEWLINE_TAB if multiline else _CONTROL).search(value):
            self.error(where, "must not contain control, bidirectional or separator characters")
        else:
            return value
        return ""

    def integer(self, obj: Mapping[str, object], key: str, where: str, lo: int, hi: int) -> int:
        value = self.get(obj, key, where)
        if value is MISSING:
            return lo
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return value
        self.error(where, f"must be an integer {lo}..{hi}")
        return lo

    def boolean(self, obj: Mapping[str, object], key: str, where: str) -> bool:
        value = self.get(obj, key, where)
        if value is MISSING:
            return False
        if not isinstance(value, bool):
            self.error(where, "must be true or false")
            return False
        return value

    def number(self, obj: Mapping[str, object], key: str, where: str) -> float:
        value = self.get(obj, key, where)
        if value is MISSING:
            return 0.0
        real = finite_number(value)
        if real is not None:
            return real
        self.error(where, "must be a finite number")
        return 0.0

    def hexbytes(self, obj: Mapping[str, object], key: str, where: str, size: int) -> bytes:
        value = self.get(obj, key, where)
        if value is MISSING:
            return b""
        if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{2 * size}}}", value):
            self.error(where, f"must be {2 * size} lower-case hex digits ({size} bytes)")
            return b""
        return bytes.fromhex(value)

    def date(self, obj: Mapping[str, object], key: str, where: str) -> datetime.date | None:
        value = self.get(obj, key, where)
        if value is MISSING:
            return None
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            return value
        if isinstance(value, str) and DATE.fullmatch(value):
            try:
                return datetime.date.fromisoformat(value)
            except ValueError:
                pass
        self.error(where, "must be a calendar date YYYY-MM-DD")
        return None

    def enum(self, obj: Mapping[str, object], key: str, where: str, enum: type[_E]) -> _E | None:
        value = self.get(obj, key, where)
        if value is MISSING:
            return None
        for member in enum:
            if isinstance(value, str) and member.value == value:
                return member
        self.error(where, f"must be one of {_choices(enum)}")
        return None

    def key(
        self,
        obj: Mapping[str, object],
        key: str,
        where: str,
        make: Callable[[bytes], _K],
        what: str,
    ) -> _K | None:
        raw = self.hexbytes(obj, key, where, 32)
        if not raw:
            return None
        try:
            return make(raw)
        except ValueError as exc:  # the key type's own reason when it gives one
            reason = str(exc)
            self.error(
                where, reason if reason.startswith("not a") else f"not a valid {what} public key"
            )
            return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
