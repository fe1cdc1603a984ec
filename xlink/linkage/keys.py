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
  sorted, order-insensitive. A name with only ``full`` is split first word / last word.
- ``birth_date`` (ISO at its own precision), ``birth_year``, ``birth_year_month`` (absent for a
  year-only date).
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

from xlink.linkage.fields import Field, FieldGroup, apply_chain
from xlink.linkage.schema import KeyRecipe, LinkageSchema
from xlink.linkage.tokens import TokenSet, TokenSetBuilder, token_digest
from xlink.records.model import PersonRecord, Sex
from xlink.records.normalise import (
    birth_date_variants_ordered,
    normalise_code,
    normalise_document_number,
    normalise_name,
    normalise_place,
)

__all__ = [
    "MAX_TOKENS_PER_KEY",
    "PLACEHOLDER_GIVEN_NAMES",
    "Instance",
    "derive_match_keys",
    "derive_token_set",
    "iter_key_tokens",
    "key_parts",
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


#: Given names that stand for "not known yet" (an infant, an unidentified person), with spaces
#: removed, in the MRZ form: a record whose given name is one of them has no given name, since
#: two such records share nothing but the placeholder (docs/records-and-linkage.md §3).
PLACEHOLDER_GIVEN_NAMES = frozenset(
    {
        "BABY",
        "BABYBOY",
        "BABYGIRL",
        "BOY",
        "GIRL",
        "CHILD",
        "MALE",
        "FEMALE",
        "MALECHILD",
        "FEMALECHILD",
        "INFANT",
        "NEWBORN",
        "UNKNOWN",
        "UNK",
        "UNNAMED",
        "NONAME",
        "NN",
        "FNU",
        "TWIN",
        "TWINA",
        "TWINB",
    }
)


def _given(values: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` unless the name is a placeholder (:data:`PLACEHOLDER_GIVEN_NAMES`)."""
    if any(v.replace(" ", "") in PLACEHOLDER_GIVEN_NAMES for v in values):
        return ()
    return values


def record_instances(
    record: PersonRecord, *, placeholder_names: bool = False
) -> dict[FieldGroup, tuple[Instance, ...]]:
    """Normalise ``record`` into instances per field group (module docstring). With
    ``placeholder_names`` (a schema's ``placeholder_names``), a placeholder given name is no
    given name. Never raises."""
    names: list[Instance] = []
    for name in (record.name, *record.aliases):
        for reading in normalise_name(name):
            if placeholder_names and reading.swapped and not _given(reading.family):
                continue  # a placeholder read as a family name
            given = _given(reading.given) if placeholder_names else reading.given
            values = {
                Field.GIVEN: given,
                Field.GIVEN_FIRST: reading.given_first if given else (),
                Field.FAMILY: reading.family,
                Field.FAMILY_PART: reading.family_parts,
                Field.FULL_NAME: reading.full_name,
            }
            names.append(Instance({f: v for f, v in values.items() if v}, reading.swapped))
    out: dict[FieldGroup, tuple[Instance, ...]] = {FieldGroup.NAME: tuple(names)}
    if record.birth_date is not None:
        dates = birth_date_variants_ordered(record.birth_date)
        birth: dict[Field, tuple[str, ...]] = {
            Field.BIRTH_DATE: dates,
            Field.BIRTH_YEAR: (f"{record.birth_date.year:04d}",),
        }
        if record.birth_date.month is not None:
            birth[Field.BIRTH_YEAR_MONTH] = tuple(dict.fromkeys(d[:7] for d in dates))
        out[FieldGroup.BIRTH] = (Instance(birth),)
    if record.sex is not None and record.sex is not Sex.UNSPECIFIED:
        out[FieldGroup.SEX] = (Instance({Field.SEX: (record.sex.value,)}),)
    out[FieldGroup.DOCUMENT] = tuple(
        Instance(
            _one(Field.DOCUMENT_NUMBER, normalise_document_number(d.number))
            | _one(Field.DOCUMENT_COUNTRY, normalise_code(d.issuing_country))
            | _one(Field.DOCUMENT_TYPE, normalise_code(d.doc_type))
        )
        for d in record.documents
    )
    out[FieldGroup.NATIONALITY] = tuple(
        Instance(_one(Field.NATIONALITY, normalise_code(n))) for n in record.nationalities
    )
    out[FieldGroup.ADDRESS] = tuple(
        Instance(
            _one(Field.POSTCODE, normalise_code(a.postcode))
            | _one(Field.LOCALITY, normalise_place(a.locality))
            | _one(Field.STREET, normalise_place(a.lines[0]) if a.lines else "")
            | _one(Field.REGION, normalise_code(a.region))
        )
        for a in record.addresses
    )
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


def _group_options(
    recipe: KeyRecipe, fields: Sequence[int], instances: Iterable[Instance]
) -> list[tuple[str, ...]]:
    """All value tuples one group contributes to ``recipe`` (fields by index in the recipe)."""
    options: dict[tuple[str, ...], None] = {}
    swaps = recipe.use_variants and _uses_both_name_parts(recipe)
    for inst in instances:
        if inst.variant and not swaps:
            continue
        columns: list[list[str]] = []
        for i in fields:
            raw = inst.values.get(recipe.fields[i], ())
            if not recipe.use_variants:
                raw = raw[:1]
            chain = recipe.transforms[i]
            column = list(dict.fromkeys(v for r in raw for v in apply_chain(chain, r)))
            if not column:
                break
            columns.append(column)
        else:
            options.update(dict.fromkeys(itertools.product(*columns)))
    return list(options)


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
        options = _group_options(recipe, indices, instances.get(group, ()))
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
    instances = record_instances(record, placeholder_names=schema.placeholder_names)
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
) -> TokenSet:
    """Tokens of every record, in columns. ``progress(n)`` is called every 1,000 records and at
    the end with the number of records done so far. Never raises for valid records."""
    builder = TokenSetBuilder(schema.key_names)
    n = 0
    for n, record in enumerate(records, start=1):
        builder.add_record(record.record_id, derive_match_keys(record, schema))
        if progress is not None and n % 1000 == 0:
            progress(n)
    if progress is not None and n % 1000 != 0:
        progress(n)
    return builder.build()


def iter_key_tokens(tokens: TokenSet) -> Iterator[tuple[str, str, bytes]]:
    """``(record_id, key_name, token)`` for every token of a :class:`TokenSet`."""
    for i in range(len(tokens)):
        yield tokens.record_of(i), tokens.key_of(i), tokens.value(i)
