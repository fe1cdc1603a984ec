"""Match keys: from a person record and a linkage schema to domain-separated tokens (DESIGN §2).

A record is first normalised into *instances* per field group (:class:`~xlink.linkage.fields.
FieldGroup`): one per name reading (the name, each alias, and their given/family swaps), one per
document, one per address, one per nationality, one for the birth date, sex and birth place.
Each instance gives every field a tuple of values, primary first (transliteration variants,
both orders of an ambiguous date).

For each key recipe, every combination of one instance per group the recipe uses, and of one
value per field, is transformed and hashed with
:func:`~xlink.linkage.tokens.token_digest` (schema id and version, key name and version, parts):
the same value under two key names or two schemas gives unrelated tokens. Fields of one group
always come from the same instance (a key on document number and country never pairs the number
of one passport with the country of another).

Fields, from :class:`~xlink.records.model.PersonRecord`:

- ``given``, ``family``: joined MRZ forms of the given and family names
  (:func:`~xlink.records.normalise.name_part_variants`); ``given_first``: the first given word;
  ``family_part``: secondary components of a compound family name; ``full_name``: all name words
  sorted, order-insensitive. A name with only ``full`` is split first word / last word (at
  its comma, family name first, when it has one: ``SMITH, John Paul``), and also at its
  family name when that alone is in capitals (``IVANOV Ivan Petrovich``).
- ``birth_date`` (ISO at its own precision; full dates only in a schema with
  ``full_birth_dates``), ``birth_year``, ``birth_year_month`` (absent for a year-only date).
- ``sex``: ``F`` or ``M``; ``X`` (unspecified) counts as missing, since two unspecified markers
  are no evidence of identity.
- ``document_number`` (:func:`~xlink.records.normalise.normalise_document_number`),
  ``document_country``, ``document_type``; ``nationality``; ``postcode``, ``locality``,
  ``street`` (the first address line), ``region``; ``birth_place``.

Variants (transliteration alternatives, the second order of an ambiguous date, name swaps) are
used only by recipes with ``use_variants``; the given/family swap only by those that also use a
given-name field and a family-name field; aliases and second documents always are (they are
recorded facts, not guesses). A key whose field is missing (or untransliterable) on the record is
skipped. A key gives at most :data:`MAX_TOKENS_PER_KEY` tokens per record, first ones first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xlink._gc import collector_paused
from xlink.linkage.fields import Field, FieldGroup, apply_chain, clear_word_memo
from xlink.linkage.schema import KeyRecipe, LinkageSchema
from xlink.linkage.tokens import TokenSet, TokenSetBuilder, token_digest
from xlink.records.model import Address, BirthDate, IdentityDocument, PersonName, PersonRecord, Sex
from xlink.records.names import normalise_name
from xlink.records.normalise import (
    PLACEHOLDER_GIVEN_NAMES,
    birth_date_variants_ordered,
    clear_caches,
    normalise_code,
    normalise_document_number,
    normalise_place,
)

if TYPE_CHECKING:
    from xlink.linkage._derive import TokenDeriver

__all__ = [
    "MAX_TOKENS_PER_KEY",
    "PLACEHOLDER_GIVEN_NAMES",
    "Instance",
    "address_instance",
    "address_instances",
    "birth_instances",
    "derive_match_keys",
    "derive_token_set",
    "document_instance",
    "document_instances",
    "group_options",
    "iter_key_tokens",
    "key_parts",
    "known_given",
    "name_instances",
    "name_swaps",
    "nationality_instances",
    "recipe_column",
    "record_instances",
]

#: Cap on the tokens one key gives for one record (bounds variant and alias blow-up).
MAX_TOKENS_PER_KEY = 32


@dataclass(frozen=True, slots=True)
class Instance:
    """One source of values for one field group; ``variant`` marks a guessed reading."""

    values: Mapping[Field, tuple[str, ...]]
    variant: bool = False


def _one(field: Field, value: str) -> dict[Field, tuple[str, ...]]:
    return {field: (value,)} if value else {}


def known_given(values: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` unless the name is a placeholder (:data:`PLACEHOLDER_GIVEN_NAMES`)."""
    if any(v.replace(" ", "") in PLACEHOLDER_GIVEN_NAMES for v in values):
        return ()
    return values


def name_instances(
    names: Iterable[PersonName], *, placeholder_names: bool = False
) -> tuple[Instance, ...]:
    """The :data:`~xlink.linkage.fields.FieldGroup.NAME` instances of a record's name and
    aliases (``names``, the name first): every reading of each (see :func:`record_instances`).
    Never raises."""
    out: list[Instance] = []
    every = [normalise_name(name) for name in names]
    # every name's first reading before any reading from case: a key's cap on tokens
    # (MAX_TOKENS_PER_KEY) keeps what the first readings alone gave
    ordered = [r for rs in every for r in rs if not r.second]
    ordered += [r for rs in every for r in rs if r.second]
    for reading in ordered:
        if placeholder_names and reading.swapped and not known_given(reading.family):
            continue  # a placeholder read as a family name
        given = known_given(reading.given) if placeholder_names else reading.given
        values = {
            Field.GIVEN: given,
            Field.GIVEN_FIRST: reading.given_first if given else (),
            Field.FAMILY: reading.family,
            Field.FAMILY_PART: reading.family_parts,
            Field.FULL_NAME: reading.full_name,
        }
        out.append(Instance({f: v for f, v in values.items() if v}, reading.swapped))
    return tuple(out)


def birth_instances(
    birth_date: BirthDate, *, full_birth_dates: bool = False
) -> tuple[Instance, ...]:
    """The :data:`~xlink.linkage.fields.FieldGroup.BIRTH` instance of a birth date. With
    ``full_birth_dates`` (a schema's ``full_birth_dates``), a partial date has no
    ``birth_date`` value, only its year (and month)."""
    dates = birth_date_variants_ordered(birth_date)
    birth: dict[Field, tuple[str, ...]] = {Field.BIRTH_YEAR: (f"{birth_date.year:04d}",)}
    if birth_date.day is not None or not full_birth_dates:
        birth[Field.BIRTH_DATE] = dates
    if birth_date.month is not None:
        birth[Field.BIRTH_YEAR_MONTH] = tuple(dict.fromkeys(d[:7] for d in dates))
    return (Instance(birth),)


def document_instance(number: str, issuing_country: str, doc_type: str) -> Instance:
    """The :data:`~xlink.linkage.fields.FieldGroup.DOCUMENT` instance of one document."""
    return Instance(
        _one(Field.DOCUMENT_NUMBER, normalise_document_number(number))
        | _one(Field.DOCUMENT_COUNTRY, normalise_code(issuing_country))
        | _one(Field.DOCUMENT_TYPE, normalise_code(doc_type))
    )


def document_instances(documents: Iterable[IdentityDocument]) -> tuple[Instance, ...]:
    """One :data:`~xlink.linkage.fields.FieldGroup.DOCUMENT` instance per document."""
    return tuple(document_instance(d.number, d.issuing_country, d.doc_type) for d in documents)


def nationality_instances(nationalities: Iterable[str]) -> tuple[Instance, ...]:
    """One :data:`~xlink.linkage.fields.FieldGroup.NATIONALITY` instance per nationality."""
    return tuple(Instance(_one(Field.NATIONALITY, normalise_code(n))) for n in nationalities)


def address_instance(street: str, locality: str, region: str, postcode: str) -> Instance:
    """The :data:`~xlink.linkage.fields.FieldGroup.ADDRESS` instance of one address
    (``street``: its first line)."""
    return Instance(
        _one(Field.POSTCODE, normalise_code(postcode))
        | _one(Field.LOCALITY, normalise_place(locality))
        | _one(Field.STREET, normalise_place(street) if street else "")
        | _one(Field.REGION, normalise_code(region))
    )


def address_instances(addresses: Iterable[Address]) -> tuple[Instance, ...]:
    """One :data:`~xlink.linkage.fields.FieldGroup.ADDRESS` instance per address."""
    return tuple(
        address_instance(a.lines[0] if a.lines else "", a.locality, a.region, a.postcode)
        for a in addresses
    )


def record_instances(
    record: PersonRecord, *, placeholder_names: bool = False, full_birth_dates: bool = False
) -> dict[FieldGroup, tuple[Instance, ...]]:
    """Normalise ``record`` into instances per field group (module docstring). With
    ``placeholder_names`` (a schema's ``placeholder_names``), a placeholder given name is no
    given name; with ``full_birth_dates``, a partial birth date is no ``birth_date``
    (:func:`birth_instances`). Never raises."""
    out: dict[FieldGroup, tuple[Instance, ...]] = {
        FieldGroup.NAME: name_instances(
            (record.name, *record.aliases), placeholder_names=placeholder_names
        )
    }
    if record.birth_date is not None:
        out[FieldGroup.BIRTH] = birth_instances(
            record.birth_date, full_birth_dates=full_birth_dates
        )
    if record.sex is not None and record.sex is not Sex.UNSPECIFIED:
        out[FieldGroup.SEX] = (Instance({Field.SEX: (record.sex.value,)}),)
    out[FieldGroup.DOCUMENT] = document_instances(record.documents)
    out[FieldGroup.NATIONALITY] = nationality_instances(record.nationalities)
    out[FieldGroup.ADDRESS] = address_instances(record.addresses)
    place = normalise_place(record.birth_place)
    if place:
        out[FieldGroup.BIRTH_PLACE] = (Instance({Field.BIRTH_PLACE: (place,)}),)
    return out


_GIVEN_FIELDS = frozenset({Field.GIVEN, Field.GIVEN_FIRST})
_FAMILY_FIELDS = frozenset({Field.FAMILY, Field.FAMILY_PART})


def _uses_both_name_parts(recipe: KeyRecipe) -> bool:
    """Whether a recipe has a given-name field and a family-name field: only such a key is
    helped by the given/family swap (in any other, the swap just puts the family name where the
    given name belongs, so that siblings would agree on it)."""
    fields = set(recipe.fields)
    return bool(fields & _GIVEN_FIELDS) and bool(fields & _FAMILY_FIELDS)


def name_swaps(recipe: KeyRecipe) -> bool:
    """Whether ``recipe`` takes the given/family swap of a name (a variant reading): only with
    ``use_variants``, and only when it has a given-name field and a family-name field."""
    return recipe.use_variants and _uses_both_name_parts(recipe)


def group_options(
    recipe: KeyRecipe,
    fields: Sequence[int],
    instances: Iterable[Instance],
    columns: Sequence[Callable[[tuple[str, ...]], tuple[str, ...]]] | None = None,
) -> list[tuple[str, ...]]:
    """All value tuples one group contributes to ``recipe`` (``fields``: the group's fields, by
    index in the recipe), distinct, in order. ``columns[i]``, when given, stands for
    :func:`recipe_column` of field ``i`` (a memo of it)."""
    options: dict[tuple[str, ...], None] = {}
    swaps = name_swaps(recipe)
    for inst in instances:
        if inst.variant and not swaps:
            continue
        found: list[tuple[str, ...]] = []
        for i in fields:
            raw = inst.values.get(recipe.fields[i], ())
            column = recipe_column(recipe, i, raw) if columns is None else columns[i](raw)
            if not column:
                break
            found.append(column)
        else:
            options.update(dict.fromkeys(itertools.product(*found)))
    return list(options)


def recipe_column(recipe: KeyRecipe, i: int, raw: tuple[str, ...]) -> tuple[str, ...]:
    """The values field ``i`` of ``recipe`` takes from an instance's values ``raw`` of that
    field: the primary one only without ``use_variants``, through the field's transforms,
    distinct, in order."""
    if not recipe.use_variants:
        raw = raw[:1]
    chain = recipe.transforms[i]
    return tuple(dict.fromkeys(v for r in raw for v in apply_chain(chain, r)))


def key_parts(
    recipe: KeyRecipe, instances: Mapping[FieldGroup, tuple[Instance, ...]]
) -> list[tuple[str, ...]]:
    """The distinct value tuples (in recipe field order) one recipe hashes for one record.

    Empty when a field is missing. At most :data:`MAX_TOKENS_PER_KEY`. Never raises.
    """
    groups: dict[FieldGroup, list[int]] = {}
    for i, field in enumerate(recipe.fields):
        groups.setdefault(field.group, []).append(i)
    per_group: list[tuple[list[int], list[tuple[str, ...]]]] = []
    for group, indices in groups.items():
        options = group_options(recipe, indices, instances.get(group, ()))
        if not options:
            return []
        per_group.append((indices, options))
    out: dict[tuple[str, ...], None] = {}
    for combo in itertools.product(*(options for _, options in per_group)):
        parts = [""] * len(recipe.fields)
        for (indices, _), values in zip(per_group, combo, strict=True):
            for i, v in zip(indices, values, strict=True):
                parts[i] = v
        out[tuple(sorted(parts)) if recipe.unordered else tuple(parts)] = None
        if len(out) >= MAX_TOKENS_PER_KEY:
            break
    return list(out)


def derive_match_keys(record: PersonRecord, schema: LinkageSchema) -> list[tuple[str, bytes]]:
    """The ``(key name, token)`` pairs of one record under ``schema``, in schema key order.

    Keys whose fields the record lacks are skipped; a token value appears once per record.
    Never raises for a valid record and schema.
    """
    instances = record_instances(
        record,
        placeholder_names=schema.placeholder_names,
        full_birth_dates=schema.full_birth_dates,
    )
    out: list[tuple[str, bytes]] = []
    seen: set[bytes] = set()
    for recipe in schema.keys:
        for parts in key_parts(recipe, instances):
            token = token_digest(schema.id, schema.version, recipe.name, recipe.version, parts)
            if token not in seen:
                seen.add(token)
                out.append((recipe.name, token))
    return out


def derive_token_set(
    records: Iterable[PersonRecord],
    schema: LinkageSchema,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = 1,
) -> TokenSet:
    """Tokens of every record, in columns: those of :func:`derive_match_keys`, derived with
    the work done once per distinct name part, date, place or code
    (:mod:`xlink.linkage._derive`). ``progress(n)`` is called every 1,000 records and at the end
    with the number of records done so far. ``workers``: processes to derive in (default 1:
    this process only; ``None``: one per core for 20,000 records or more; see
    :mod:`xlink.linkage._pool`); the token set is the same whatever their number. Never raises
    for valid records."""
    from xlink.linkage import _pool
    from xlink.linkage._derive import TokenDeriver

    builder = TokenSetBuilder(schema.key_names)
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    if not isinstance(records, Sequence):
        records = list(records)
    if workers is None:
        workers = _pool.default_workers(len(records))
    n = 0
    try:
        # Deriving makes no reference cycles (xlink._gc), here or handing records to the
        # workers. The collector comes back with what deriving kept (the records, the memos
        # still held) in its oldest generation, unwalked; the memos then go by reference
        # counting.
        with collector_paused():
            if workers > 1 and len(records) > _pool.CHUNK:
                _pool.derive_in_workers(records, schema, builder, workers, progress)
                n = len(records)
            else:
                n = _derive_here(records, TokenDeriver(schema), builder, progress)
    finally:
        clear_caches()  # no name outlives the run in a memo
        clear_word_memo()
    if progress is not None and n % 1000 != 0:
        progress(n)
    return builder.build()


def _derive_here(
    records: Iterable[PersonRecord],
    deriver: TokenDeriver,
    builder: TokenSetBuilder,
    progress: Callable[[int], None] | None,
) -> int:
    """Add every record's tokens to ``builder``, derived in this process (for
    :func:`derive_token_set`); the number of records. The deriver's memos go before this
    returns."""
    derive, add = deriver.derive, builder.add_distinct
    n = 0
    try:
        for n, record in enumerate(records, start=1):
            add(record.record_id, *derive(record))
            if progress is not None and n % 1000 == 0:
                progress(n)
    finally:
        deriver.close()
    return n


def iter_key_tokens(tokens: TokenSet) -> Iterator[tuple[str, str, bytes]]:
    """``(record_id, key_name, token)`` for every token of a :class:`TokenSet`."""
    for i in range(len(tokens)):
        yield tokens.record_of(i), tokens.key_of(i), tokens.value(i)
