"""Token derivation for many records: the tokens of :func:`~xlink.linkage.keys.derive_match_keys`,
with the work done once per distinct value rather than once per record.

Real lists repeat given names, family names, birth dates, places and codes massively, so a
:class:`TokenDeriver` compiles the schema once and then, for each record:

1. takes, for each field group the schema uses, the group's *entry*: for every key recipe
   that uses the group, its :mod:`slot <xlink.linkage._slots>` (the value tuples
   :func:`~xlink.linkage.keys.group_options` gives, each with its encoding as
   :func:`~xlink.linkage.tokens.token_digest` hashes it), and for a recipe that uses only this
   group, its tokens outright. Entries are memoised per distinct group value (a name with its
   aliases, a birth date, the nationalities, the addresses, a birth place; not documents,
   whose numbers are unique); recipes that read the same fields of a group the same way share
   one computation; a field's values through a recipe's transforms
   (:func:`~xlink.linkage.keys.recipe_column`) are memoised per distinct value, and the name
   group is built from memoised name parts (:mod:`xlink.linkage._names`);
2. combines the slots of each recipe's groups in the order and with the rules of
   :func:`~xlink.linkage.keys.key_parts` (product, first group slowest; sorted parts for an
   ``unordered`` key; distinct; at most :data:`~xlink.linkage.keys.MAX_TOKENS_PER_KEY`), and
   hashes each combination from a copy of the recipe's constant SHA-256 prefix
   (:func:`~xlink.linkage.tokens.token_prefix`).

A record enters as :func:`record_fields`, a tuple of plain values (what derivation reads of
it), so that records can be sent to worker processes cheaply (:mod:`xlink.linkage._pool`).
The tokens, their order and their keys are exactly those of ``derive_match_keys``
(tests/linkage/test_derive.py). Memos are bounded (:data:`~xlink.linkage._slots.MEMO_SIZE`
entries each, emptied when full) and belong to the deriver, so no name outlives it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from xlink.linkage._names import NameGroup
from xlink.linkage._slots import (
    CONCAT,
    EMPTY_SLOT,
    PLACED,
    SINGLE,
    SORTED,
    Entry,
    FieldSlot,
    Slot,
    Values,
    bounded,
    column_slot,
    combine,
    compose,
    union,
)
from xlink.linkage.fields import Field, FieldGroup, Transform, apply_transform
from xlink.linkage.keys import (
    MAX_TOKENS_PER_KEY,
    Instance,
    birth_instances,
    name_swaps,
    nationality_instances,
    recipe_column,
)
from xlink.linkage.schema import KeyRecipe, LinkageSchema
from xlink.linkage.tokens import token_prefix
from xlink.records.model import BirthDate, PersonName, PersonRecord, Sex
from xlink.records.normalise import normalise_code, normalise_document_number, normalise_place

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = ["RecordFields", "TokenDeriver", "record_fields"]

#: What derivation reads of a record: the name's parts, the aliases, the birth date's
#: ``(year, month, day, day_month_ambiguous)``, the sex marker, each document's ``(number,
#: issuing country, type)``, the nationalities, each address's ``(first line, locality,
#: region, postcode)``, the birth place.
RecordFields = tuple[
    tuple[str, str, str, str],
    tuple[PersonName, ...],
    tuple[int, int | None, int | None, bool] | None,
    str | None,
    tuple[tuple[str, str, str], ...],
    tuple[str, ...],
    tuple[tuple[str, str, str, str], ...],
    str,
]


Reader = Callable[[RecordFields], Entry]

#: A column memo is kept only if, after this many look-ups, at least one in five is a hit.
_MEMO_TRIAL = 10_000


def record_fields(record: PersonRecord) -> RecordFields:
    """What derivation reads of ``record``, as plain values (see :data:`RecordFields`)."""
    n, d, sex = record.name, record.birth_date, record.sex
    return (
        (n.given, n.middle, n.family, n.full),
        record.aliases,
        None if d is None else (d.year, d.month, d.day, d.day_month_ambiguous),
        None if sex is None else sex.value,
        tuple((x.number, x.issuing_country, x.doc_type) for x in record.documents),
        record.nationalities,
        tuple(
            (a.lines[0] if a.lines else "", a.locality, a.region, a.postcode)
            for a in record.addresses
        ),
        record.birth_place,
    )


#: The fields of each group other than names, in the order an instance's values are kept.
_GROUP_FIELDS: dict[FieldGroup, tuple[Field, ...]] = {
    group: tuple(f for f in Field if f.group is group)
    for group in FieldGroup
    if group is not FieldGroup.NAME
}


class _Projection:
    """How recipes read one group: recipes that read the same fields with the same transforms,
    variants and swap get the same slot, so they share one computation. ``columns`` is indexed
    by the recipe's field index; ``reads`` pairs each of the projection's fields' position in
    an instance (:data:`_GROUP_FIELDS`) with its slot function."""

    __slots__ = ("columns", "fields", "reads", "recipe", "swaps")

    def __init__(
        self, recipe: KeyRecipe, fields: tuple[int, ...], columns: list[FieldSlot]
    ) -> None:
        self.recipe = recipe
        self.fields = fields
        self.columns = columns
        self.swaps = name_swaps(recipe)
        group = recipe.fields[fields[0]].group
        order = _GROUP_FIELDS.get(group, ())
        self.reads = tuple((order.index(recipe.fields[i]), columns[i]) for i in fields if order)


class _Plan:
    """One compiled key recipe: its groups as ``(group position, slot)`` pairs in group order,
    each group's field indices in the recipe (``places``), and its hash prefix."""

    __slots__ = ("groups", "key_byte", "kind", "n_fields", "places", "prefix", "unordered")

    def __init__(
        self,
        key_index: int,
        recipe: KeyRecipe,
        prefix: HASH,
        kind: int,
        groups: tuple[tuple[int, int], ...],
        places: tuple[tuple[int, ...], ...],
    ) -> None:
        self.key_byte = bytes((key_index,))
        self.n_fields = len(recipe.fields)
        self.unordered = recipe.unordered
        self.prefix = prefix
        self.kind = kind
        self.groups = groups
        self.places = places


def _one(value: str) -> Values:
    return (value,) if value else ()


def _document_values(number: str, issuing_country: str, doc_type: str) -> tuple[Values, ...]:
    """:func:`~xlink.linkage.keys.document_instance`'s values, in :data:`_GROUP_FIELDS` order."""
    return (
        _one(normalise_document_number(number)),
        _one(normalise_code(issuing_country)),
        _one(normalise_code(doc_type)),
    )


def _address_values(street: str, locality: str, region: str, postcode: str) -> tuple[Values, ...]:
    """:func:`~xlink.linkage.keys.address_instance`'s values, in :data:`_GROUP_FIELDS` order."""
    return (
        _one(normalise_code(postcode)),
        _one(normalise_place(locality)),
        _one(normalise_place(street) if street else ""),
        _one(normalise_code(region)),
    )


def _birth_instances(
    full_birth_dates: bool,
) -> Callable[[tuple[int, int | None, int | None, bool]], Sequence[Instance]]:
    """The birth date's instances, from its fields in :data:`RecordFields`, under a schema's
    ``full_birth_dates``."""

    def instances(key: tuple[int, int | None, int | None, bool]) -> Sequence[Instance]:
        date = BirthDate(key[0], key[1], key[2], day_month_ambiguous=key[3])
        return birth_instances(date, full_birth_dates=full_birth_dates)

    return instances


def _place_instances(text: str) -> Sequence[Instance]:
    place = normalise_place(text)
    return (Instance({Field.BIRTH_PLACE: (place,)}),) if place else ()


def _hash_all(prefix: HASH, encodings: Sequence[bytes]) -> list[bytes]:
    out = []
    for encoding in encodings:
        h = prefix.copy()
        h.update(encoding)
        out.append(h.digest())
    return out


def _values_of(recipe: KeyRecipe, i: int) -> Callable[[Values], Values]:
    """:func:`~xlink.linkage.keys.recipe_column` of field ``i`` of ``recipe``; for one value
    through at most one transform, that transform's values straight away (what
    :func:`~xlink.linkage.fields.apply_chain` would give: :func:`~xlink.linkage.fields.
    apply_transform`'s values are distinct, in order)."""
    chain = recipe.transforms[i]
    if len(chain) > 1:
        return functools.partial(recipe_column, recipe, i)
    step = chain[0] if chain else None

    def values_of(raw: Values) -> Values:
        if len(raw) != 1:
            return recipe_column(recipe, i, raw)
        value = raw[0]
        if step is None:
            return (value,) if value else ()
        return apply_transform(step, value)

    return values_of


def _kind(recipe: KeyRecipe, by_group: dict[FieldGroup, list[int]]) -> int:
    if len(by_group) == 1:
        return SINGLE
    if recipe.unordered:
        return SORTED
    order = [i for indices in by_group.values() for i in indices]
    return CONCAT if order == list(range(len(recipe.fields))) else PLACED


class TokenDeriver:
    """Derives the token columns of records under one schema, memoising per distinct value
    (module docstring). Not thread-safe; cheap to make: one per run."""

    def __init__(self, schema: LinkageSchema) -> None:
        self.schema = schema
        self._column_memos: dict[tuple[tuple[Transform, ...], bool], FieldSlot] = {}
        groups: list[FieldGroup] = []
        projections: list[list[_Projection]] = []
        signatures: list[dict[tuple[object, ...], int]] = []
        slots: list[
            list[tuple[int, int]]
        ] = []  # per group: (recipe of its tokens or -1, projection)
        plans: list[_Plan] = []
        for key_index, recipe in enumerate(schema.keys):
            by_group: dict[FieldGroup, list[int]] = {}
            for i, field in enumerate(recipe.fields):
                by_group.setdefault(field.group, []).append(i)
            columns = [self._column(recipe, i) for i in range(len(recipe.fields))]
            kind = _kind(recipe, by_group)
            plan_groups: list[tuple[int, int]] = []
            for group, indices in by_group.items():
                if group not in groups:
                    groups.append(group)
                    projections.append([])
                    signatures.append({})
                    slots.append([])
                g = groups.index(group)
                fields = tuple(indices)
                signature = (
                    tuple(recipe.fields[i] for i in fields),
                    tuple(recipe.transforms[i] for i in fields),
                    recipe.use_variants,
                    name_swaps(recipe),
                )
                p = signatures[g].get(signature)
                if p is None:
                    p = signatures[g][signature] = len(projections[g])
                    projections[g].append(_Projection(recipe, fields, columns))
                slot = (key_index if kind == SINGLE else -1, p)
                if slot not in slots[g]:
                    slots[g].append(slot)
                plan_groups.append((g, slots[g].index(slot)))
            prefix = token_prefix(
                schema.id, schema.version, recipe.name, recipe.version, len(recipe.fields)
            )
            places = tuple(tuple(by_group[groups[g]]) for g, _ in plan_groups)
            plans.append(_Plan(key_index, recipe, prefix, kind, tuple(plan_groups), places))
        self._plans = tuple(plans)
        self._groups = tuple(groups)
        self._projections = tuple(tuple(p) for p in projections)
        self._slots = tuple(tuple(s) for s in slots)
        name_reads = (
            [(p.recipe, p.fields, p.columns) for p in projections[groups.index(FieldGroup.NAME)]]
            if FieldGroup.NAME in groups
            else []
        )
        self._names = NameGroup(name_reads, schema.placeholder_names)
        self._empty: tuple[Entry, ...] = ()
        self._empty = tuple(
            self._entry(g, [EMPTY_SLOT] * len(p)) for g, p in enumerate(projections)
        )
        self._readers = tuple(self._reader(g, group) for g, group in enumerate(groups))

    def _column(self, recipe: KeyRecipe, i: int) -> FieldSlot:
        """The slot of :func:`~xlink.linkage.keys.recipe_column` of field ``i``, memoised per
        value tuple; shared by every field with the same transforms and ``use_variants``."""
        chain = recipe.transforms[i]
        key = (chain, recipe.use_variants)
        column = self._column_memos.get(key)
        if column is None:
            memo: dict[Values, Slot] = {}
            counts = [0, 0]  # look-ups, misses: a memo that rarely hits is dropped
            values_of = _values_of(recipe, i)

            def column(raw: Values) -> Slot:
                counts[0] += 1
                hit = memo.get(raw)
                if hit is None:
                    hit = column_slot(values_of(raw))
                    counts[1] += 1
                    if counts[0] < _MEMO_TRIAL or counts[1] * 5 <= counts[0] * 4:
                        bounded(memo)
                        memo[raw] = hit
                    elif memo:
                        memo.clear()  # unique values (document numbers, streets): no memo
                return hit

            self._column_memos[key] = column
        return column

    def _instances_entry(self, g: int, instances: Sequence[Instance]) -> Entry:
        """Group ``g``'s entry for these instances of it (none of them a variant: only names
        have variants), as :func:`~xlink.linkage.keys.group_options` gives each recipe's."""
        if not instances:
            return self._empty[g]
        order = _GROUP_FIELDS[self._groups[g]]
        return self._values_entry(
            g, [tuple(inst.values.get(f, ()) for f in order) for inst in instances]
        )

    def _values_entry(self, g: int, found: Sequence[tuple[Values, ...]]) -> Entry:
        """Group ``g``'s entry for its instances given as their values (in
        :data:`_GROUP_FIELDS` order)."""
        parts: list[Slot] = []
        for projection in self._projections[g]:
            reads = projection.reads
            if len(found) == 1:
                values = found[0]
                if len(reads) == 1:
                    i, column = reads[0]
                    parts.append(column(values[i]))
                else:
                    parts.append(compose([column(values[i]) for i, column in reads]))
                continue
            slots = [compose([column(values[i]) for i, column in reads]) for values in found]
            slots = [slot for slot in slots if slot[0]]
            parts.append(union(slots) if slots else EMPTY_SLOT)
        return self._entry(g, parts)

    def _entry(self, g: int, parts: Sequence[Slot]) -> Entry:
        """Group ``g``'s entry from its projections' slots: a recipe of this group alone gets
        its tokens."""
        entry: list[Slot] = []
        for key_index, p in self._slots[g]:
            if key_index < 0:
                entry.append(parts[p])
                continue
            encodings = parts[p][1]
            plan = self._plans[key_index]
            if plan.unordered:  # the one group holds every field, in recipe order
                # each option's (value, encoding) pairs sorted (by value: equal values have
                # equal encodings), joined; distinct options sorted alike join alike
                distinct = dict.fromkeys(
                    b"".join([e for _, e in sorted(pairs)]) for pairs in parts[p][2]
                )
                encodings = tuple(itertools.islice(distinct, MAX_TOKENS_PER_KEY))
            else:
                encodings = encodings[:MAX_TOKENS_PER_KEY]
            entry.append(((), tuple(_hash_all(plan.prefix, encodings)), ()))
        return tuple(entry)

    def _reader(self, g: int, group: FieldGroup) -> Callable[[RecordFields], Entry]:
        """How a record's entry for group ``g`` is found: the memo key, and the instances."""
        empty = self._empty[g]
        instances_entry, values_entry = self._instances_entry, self._values_entry
        memo: dict[object, Entry] = {}
        if group is FieldGroup.NAME:
            names, entry = self._names, self._entry

            def read_name(fields: RecordFields) -> Entry:
                given, middle, family, full = fields[0]
                name = PersonName(given=given, middle=middle, family=family, full=full)
                return entry(g, names.slots((name, *fields[1])))

            return read_name

        def memoised(position: int, instances: Callable[[Any], Sequence[Instance]]) -> Reader:
            """A reader of one hashable field, its entry computed once per distinct value."""

            def read(fields: RecordFields) -> Entry:
                key = fields[position]
                if not key:
                    return empty
                hit = memo.get(key)
                if hit is None:
                    bounded(memo)
                    hit = memo[key] = instances_entry(g, instances(key))
                return hit

            return read

        def listed(position: int, values_of: Callable[..., tuple[Values, ...]]) -> Reader:
            """A reader of a field holding several items (documents, addresses)."""

            def read(fields: RecordFields) -> Entry:
                items = cast(tuple[tuple[str, ...], ...], fields[position])
                if not items:
                    return empty
                return values_entry(g, [values_of(*item) for item in items])

            return read

        if group is FieldGroup.BIRTH:
            return memoised(2, _birth_instances(self.schema.full_birth_dates))
        if group is FieldGroup.SEX:
            female = instances_entry(g, (Instance({Field.SEX: (Sex.FEMALE.value,)}),))
            male = instances_entry(g, (Instance({Field.SEX: (Sex.MALE.value,)}),))
            by_marker = {Sex.FEMALE.value: female, Sex.MALE.value: male}

            def read_sex(fields: RecordFields) -> Entry:
                marker = fields[3]
                return empty if marker is None else by_marker.get(marker, empty)

            return read_sex
        if group is FieldGroup.DOCUMENT:
            return listed(4, _document_values)
        if group is FieldGroup.NATIONALITY:
            return memoised(5, nationality_instances)
        if group is FieldGroup.ADDRESS:
            return listed(6, _address_values)
        assert group is FieldGroup.BIRTH_PLACE
        return memoised(7, _place_instances)

    def close(self) -> None:
        """Let reference counting free the deriver and its memos once the caller drops it: the
        readers, which hold the memos, refer back to the deriver, so that otherwise only the
        cyclic garbage collector frees them, walking every entry. A closed deriver must not
        be used again (its readers are gone)."""
        self._readers = ()
        self._column_memos.clear()

    def derive(self, record: PersonRecord) -> tuple[bytes, bytes]:
        """The record's tokens in two columns: key indices (a byte each) and token values (32
        bytes each), in the order of ``derive_match_keys``, each value once."""
        return self.derive_fields(record_fields(record))

    def derive_fields(self, fields: RecordFields) -> tuple[bytes, bytes]:
        """:meth:`derive` of a record given as :func:`record_fields`."""
        entries = [read(fields) for read in self._readers]
        keys: list[bytes] = []
        values: list[bytes] = []
        for plan in self._plans:
            groups = plan.groups
            g, s = groups[0]
            first = entries[g][s]
            if plan.kind == SINGLE:
                tokens = first[1]
                if tokens:
                    values += tokens
                    keys.append(plan.key_byte * len(tokens))
                continue
            if not first[0]:
                continue
            if len(groups) == 2:
                g, s = groups[1]
                second = entries[g][s]
                if not second[0]:
                    continue
                if plan.kind == CONCAT and (len(first[1]) == 1 or len(second[1]) == 1):
                    # the product of the two groups' encodings, the first slowest
                    head, tail = first[1], second[1]
                    if len(head) == 1 and len(tail) == 1:
                        h = plan.prefix.copy()
                        h.update(head[0] + tail[0])
                        values.append(h.digest())
                        keys.append(plan.key_byte)
                        continue
                    if len(tail) == 1:
                        end = tail[0]
                        encodings = [e + end for e in head[:MAX_TOKENS_PER_KEY]]
                    else:
                        start = head[0]
                        encodings = [start + e for e in tail[:MAX_TOKENS_PER_KEY]]
                    values += _hash_all(plan.prefix, encodings)
                    keys.append(plan.key_byte * len(encodings))
                    continue
                parts = [first, second]
            else:
                parts = [entries[g][s] for g, s in groups]
                if not all(part[0] for part in parts):
                    continue
            hashed = _hash_all(plan.prefix, combine(plan.kind, plan.n_fields, plan.places, parts))
            values += hashed
            keys.append(plan.key_byte * len(hashed))
        key_index = b"".join(keys)
        if len(set(values)) != len(values):  # only if SHA-256 collided; derive_match_keys' rule
            distinct: dict[bytes, int] = {}
            for k, value in zip(key_index, values, strict=True):
                distinct.setdefault(value, k)
            return bytes(distinct.values()), b"".join(distinct)
        return key_index, b"".join(values)
