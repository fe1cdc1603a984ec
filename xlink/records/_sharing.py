"""One immutable object for the equal parts of a file's records (:class:`SharedValues`).

A list repeats much of what its records hold: a household shares an address, a registry's
payloads repeat its categories, a name recurs. The loader's checker
(:class:`~xlink.records.validation.RowChecker`) hands a record the same name, document list,
address, source or payload object as an earlier record of the file with an equal one, so that
memory goes with the records, not their fields (at a million records, 1.75 GB to 1.47 GB for
``xlink prepare``: docs/PERFORMANCE.md).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from xlink.records.model import Payload

__all__ = ["ADDRESSES", "DOCUMENTS", "NAME", "SOURCE", "SharedValues"]

_T = TypeVar("_T")

#: The kinds of value shared; each has a memo of its own.
NAME, DOCUMENTS, ADDRESSES, SOURCE = range(4)
_PAYLOAD: Final = 4

#: Bound on the values of each kind remembered: large, since what is shared is the records' own
#: memory, and a file's households and repeated payloads are spread over all of it.
SHARED_SIZE = 1 << 20
#: A kind of value is shared only if, of its first :data:`SHARE_TRIAL` look-ups, at least one in
#: :data:`SHARE_MIN_HITS` found an equal value: not a file's unique document numbers, but still
#: its addresses, of which the first 65,536 records of a million share only a few (their
#: households are spread over the file).
SHARE_TRIAL = 1 << 16
SHARE_MIN_HITS = 100


class SharedValues:
    """Memos of the immutable values one file's records hold, per kind (not thread-safe; one
    per file, gone when it is loaded). With ``enabled`` false every value is its own."""

    __slots__ = ("_memos", "_tries")

    def __init__(self, enabled: bool = True) -> None:
        # per kind: its memo (None: not shared), and its look-ups and hits during the trial
        self._memos: list[dict[Any, Any] | None] = [{} if enabled else None for _ in range(5)]
        self._tries = [[0, 0] for _ in range(5)]

    def _memo(self, kind: int) -> dict[Any, Any] | None:
        """The memo of ``kind`` for one more look-up, or None when that kind is not shared:
        disabled, or fewer than one look-up in :data:`SHARE_MIN_HITS` hit during the first
        :data:`SHARE_TRIAL` (values of that kind are unique in this file, and a memo of them
        would only cost memory)."""
        memo = self._memos[kind]
        if memo is None:
            return None
        tries = self._tries[kind]
        tries[0] += 1
        if tries[0] == SHARE_TRIAL and tries[1] * SHARE_MIN_HITS < SHARE_TRIAL:
            self._memos[kind] = None
            return None
        if len(memo) >= SHARED_SIZE:
            memo.clear()
        return memo

    def one(self, kind: int, value: _T) -> _T:
        """``value``, or an equal value of ``kind`` an earlier record holds (at most
        :data:`SHARED_SIZE` values of each kind, then its memo starts again)."""
        memo = self._memo(kind)
        if memo is None:
            return value
        shared: _T = memo.setdefault(value, value)
        if shared is not value:
            self._tries[kind][1] += 1
        return shared

    def payload(self, items: tuple[tuple[str, str], ...]) -> Payload:
        """The payload of these fields, shared as :meth:`one` shares values."""
        payload = Payload(dict(items))
        memo = self._memo(_PAYLOAD)
        if memo is None:
            return payload
        # keyed by what the payload holds (its shared column positions and its values), so
        # that the memo keeps nothing the records do not; the payload it maps to keeps the
        # positions alive, so their id is not reused while the key is there
        key = (id(payload._index), payload._values)
        found: Payload | None = memo.get(key)
        if found is None:
            memo[key] = payload
            return payload
        self._tries[_PAYLOAD][1] += 1
        return found
