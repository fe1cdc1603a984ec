"""The name group of token derivation (:mod:`xlink.linkage._derive`), built from name parts.

A key recipe reads a name through its readings (the name as recorded and, for a recipe that
takes it, the given/family swap; then each alias the same way): the given-name fields
(``given``, ``given_first``) of a reading come from one name part, its family-name fields
(``family``, ``family_part``) from another, and ``full_name`` from all the words. Names repeat
far less than their parts (a list of 100,000 people has ~10,000 given names and ~11,000 family
names, but ~73,000 full names), so what a recipe takes from one part is memoised per part
text, and a new name costs a few look-ups and concatenations. The result is exactly
:func:`~xlink.linkage.keys.group_options` of :func:`~xlink.linkage.keys.name_instances`
(tests/linkage/test_derive.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from xlink.linkage._slots import (
    EMPTY_SLOT,
    FieldSlot,
    Slot,
    Values,
    bounded,
    compose,
    concat,
    union,
)
from xlink.linkage.fields import Field
from xlink.linkage.keys import known_given, name_swaps
from xlink.linkage.schema import KeyRecipe
from xlink.records.model import PersonName
from xlink.records.names import full_name_variants, name_readings
from xlink.records.normalise import family_first_forms, name_part_forms

__all__ = ["NameGroup"]

#: A reading's values: the given-name part's (``given``, ``given_first``), the family-name
#: part's (``family``, ``family_part``), then ``full_name``.
_READING_FIELDS = (Field.GIVEN, Field.GIVEN_FIRST, Field.FAMILY, Field.FAMILY_PART, Field.FULL_NAME)
_GIVEN_SIDE = frozenset({Field.GIVEN, Field.GIVEN_FIRST})
_FAMILY_SIDE = frozenset({Field.FAMILY, Field.FAMILY_PART})
_GIVEN_POSITIONS = frozenset(i for i, f in enumerate(_READING_FIELDS) if f in _GIVEN_SIDE)
_FAMILY_POSITIONS = frozenset(i for i, f in enumerate(_READING_FIELDS) if f in _FAMILY_SIDE)
_FULL_POSITION = _READING_FIELDS.index(Field.FULL_NAME)

# What a recipe reads of a name.
_GIVEN = 0  # given-name fields only
_FAMILY = 1  # family-name fields only
_GIVEN_FAMILY = 2  # given-name fields, then family-name fields
_OTHER = 3  # anything else (full_name, or a family field before a given one)


class _Reader:
    """What one recipe (or several that read alike) reads of a name; ``columns`` pairs each of
    its fields' position in a reading with the field's slot function."""

    __slots__ = (
        "columns",
        "family_memo",
        "given_memo",
        "kind",
        "positions",
        "split",
        "swapped_memo",
        "swaps",
    )

    def __init__(self, recipe: KeyRecipe, fields: Sequence[int], columns: Sequence[FieldSlot]):
        names = [recipe.fields[i] for i in fields]
        self.columns = tuple(
            (_READING_FIELDS.index(f), columns[i]) for f, i in zip(names, fields, strict=True)
        )
        self.positions = frozenset(position for position, _ in self.columns)
        self.swaps = name_swaps(recipe)
        given = sum(1 for f in names if f in _GIVEN_SIDE)
        family = sum(1 for f in names if f in _FAMILY_SIDE)
        if given == len(names):
            self.kind = _GIVEN
        elif family == len(names):
            self.kind = _FAMILY
        elif given + family == len(names) and all(f in _GIVEN_SIDE for f in names[:given]):
            self.kind = _GIVEN_FAMILY
        else:
            self.kind = _OTHER
        self.split = given  # the given-name fields come first in a _GIVEN_FAMILY reader
        self.given_memo: dict[str, Slot] = {}
        self.family_memo: dict[str, Slot] = {}
        self.swapped_memo: dict[str, Slot] = {}  # a family name read as the given name


def _given_memo(reader: _Reader, swapped: bool) -> dict[str, Slot]:
    return reader.swapped_memo if swapped else reader.given_memo


class NameGroup:
    """The slots of the name group for a list of recipes' reads (see the module docstring)."""

    def __init__(
        self,
        reads: Sequence[tuple[KeyRecipe, Sequence[int], Sequence[FieldSlot]]],
        placeholder_names: bool,
    ) -> None:
        self._readers = tuple(_Reader(recipe, fields, columns) for recipe, fields, columns in reads)
        self._placeholder = placeholder_names
        self._given_values: dict[tuple[str, bool], tuple[Values, Values]] = {}

    def _given_side(self, text: str, swapped: bool = False) -> tuple[Values, Values]:
        """``given`` and ``given_first`` of a reading whose given name is ``text``; of a
        swapped reading (``text`` a family name), ``given_first`` is its first word that is no
        particle, as :func:`~xlink.records.names.normalise_name` reads it."""
        found = self._given_values.get((text, swapped))
        if found is None:
            bounded(self._given_values)
            variants, first, _ = name_part_forms(text)
            if self._placeholder:
                variants = known_given(variants)
            first = family_first_forms(text) if swapped else first
            found = self._given_values[text, swapped] = (variants, first if variants else ())
        return found

    @staticmethod
    def _family_side(text: str) -> tuple[Values, Values]:
        """``family`` and ``family_part`` of a reading whose family name is ``text``."""
        variants, _, components = name_part_forms(text)
        return variants, components

    def _part(self, reader: _Reader, text: str, family: bool, swapped: bool = False) -> Slot:
        """What ``reader`` takes from one side of a reading (of a swapped one: ``swapped``),
        memoised per text."""
        memo = reader.family_memo if family else _given_memo(reader, swapped)
        found = memo.get(text)
        if found is None:
            bounded(memo)
            values = self._family_side(text) if family else self._given_side(text, swapped)
            offset = 2 if family else 0
            side = self._side(reader, family)
            found = memo[text] = compose(
                [column(values[position - offset]) for position, column in side]
            )
        return found

    @staticmethod
    def _side(reader: _Reader, family: bool) -> Sequence[tuple[int, FieldSlot]]:
        if reader.kind == _GIVEN_FAMILY:
            return reader.columns[reader.split :] if family else reader.columns[: reader.split]
        return reader.columns

    def slots(self, names: Sequence[PersonName]) -> list[Slot]:
        """Each reader's slot for a record's name and aliases (``names``, the name first)."""
        placeholder = self._placeholder
        readings: list[tuple[str, str, tuple[str, ...], bool]] = []
        plain: list[tuple[str, str]] = []  # each name's given and family texts, as recorded
        # the same, each followed by its swap (if it has one), marked as one
        both: list[tuple[str, str, bool]] = []
        # every name's first reading, then its further readings (from case, or a compound
        # family name), as normalise_name orders them for key derivation: a key's cap on
        # tokens keeps what first readings gave; a reading past ``swapped`` takes no swap
        read = [name_readings(name) for name in names]
        for given_text, family_text, words, swaps in [
            *((pairs[0][0], pairs[0][1], words, swapped > 0) for pairs, words, swapped in read),
            *(
                (g, f, words, i < swapped)
                for pairs, words, swapped in read
                for i, (g, f) in enumerate(pairs)
                if i
            ),
        ]:
            readings.append((given_text, family_text, words, False))
            plain.append((given_text, family_text))
            both.append((given_text, family_text, False))
            given = name_part_forms(given_text)[0]
            if (
                swaps
                and given
                and name_part_forms(family_text)[0]
                and not (placeholder and not known_given(given))
            ):
                readings.append((family_text, given_text, words, True))
                both.append((family_text, given_text, True))
        out: list[Slot] = []
        part = self._part
        for reader in self._readers:
            kind = reader.kind
            found: list[Slot]
            if kind in (_GIVEN, _FAMILY):  # neither takes the swap
                family = kind == _FAMILY
                memo = reader.family_memo if family else reader.given_memo
                side = 1 if family else 0
                found = []
                for texts in plain:
                    text = texts[side]
                    slot = memo.get(text) or part(reader, text, family)
                    if slot[0]:
                        found.append(slot)
            elif kind == _GIVEN_FAMILY:
                family_memo = reader.family_memo
                found = []
                for given_text, family_text, swapped in (
                    both if reader.swaps else [(g, f, False) for g, f in plain]
                ):
                    slot = _given_memo(reader, swapped).get(given_text) or part(
                        reader, given_text, False, swapped
                    )
                    if not slot[0]:
                        continue
                    second = family_memo.get(family_text) or part(reader, family_text, True)
                    if second[0]:
                        found.append(concat(slot, second))
            else:
                found = [
                    slot
                    for given_text, family_text, words, swapped in readings
                    if not (swapped and not reader.swaps)
                    and (slot := self._other(reader, given_text, family_text, words, swapped))[0]
                ]
            if not found:
                out.append(EMPTY_SLOT)
            else:
                out.append(found[0] if len(found) == 1 else union(found))
        return out

    def _other(
        self,
        reader: _Reader,
        given_text: str,
        family_text: str,
        words: tuple[str, ...],
        swapped: bool,
    ) -> Slot:
        """A reader of ``full_name`` or of fields in another order: every field's column (each
        side of the name read only if one of them needs it)."""
        needs = reader.positions
        given = self._given_side(given_text, swapped) if needs & _GIVEN_POSITIONS else ((), ())
        family = self._family_side(family_text) if needs & _FAMILY_POSITIONS else ((), ())
        full = full_name_variants(words) if _FULL_POSITION in needs else ()
        values = (*given, *family, full)
        return compose([column(values[position]) for position, column in reader.columns])
