"""The memoising token derivation (xlink.linkage._derive, used by derive_token_set) gives exactly
the tokens of the reference derive_match_keys: same values, same order, same keys, for
generated records and generated schemas, with its memos cold and warm, and in worker
processes."""

from __future__ import annotations

import dataclasses
import gc
import threading
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.linkage._derive import TokenDeriver
from xlink.linkage.fields import (
    DATE_ONLY_TRANSFORMS,
    PHONETIC_TRANSFORMS,
    Field,
    Transform,
    TransformKind,
    apply_chain,
    apply_transform,
)
from xlink.linkage.keys import derive_match_keys, derive_token_set
from xlink.linkage.schema import LinkageSchema, load_default_schema, load_schema, validate_schema
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.records.model import (
    Address,
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
    Sex,
)

# Few distinct values, so that memos hit; letters that transliterate to variants, that do not
# transliterate at all, placeholders, particles, honorifics, compound names.
_NAMES = st.sampled_from(
    [
        "", "Anna", "Müller", "Jürgen", "van der Berg", "García-López", "O'Brien", "Baby",
        "Unknown", "Dr. José", "Smith Jr", "Петров", "Łukasz", "محمد", "Ann Marie", "Øster",
        "De La Cruz", "Nguyen", "ß",
    ]
)  # fmt: skip
_TEXT = st.sampled_from(["", "Toronto", "Montréal", "K1A 0B1", "m2r 2x0", "12 Rue de l'Église",
                         "Zürich", "3 George Road", "ON", "QC", "東京"])  # fmt: skip
_CODES = st.sampled_from(["", "CAN", "USA", "DEU", "D", "GBR"])


@st.composite
def _names(draw: st.DrawFn) -> PersonName:
    if draw(st.booleans()):
        full = draw(st.sampled_from(["Ivan Petrovich Sidorov", "Anna", "Mr John Smith", "Li Wei"]))
        return PersonName(full=full)
    given_name, family, middle = draw(_NAMES), draw(_NAMES), draw(_NAMES)
    if not (given_name or family or middle):
        family = "Smith"
    return PersonName(given=given_name, middle=middle, family=family)


@st.composite
def _birth(draw: st.DrawFn) -> BirthDate | None:
    kind = draw(st.integers(0, 4))
    year = draw(st.sampled_from([1970, 1980, 2001]))
    if kind == 0:
        return None
    if kind == 1:
        return BirthDate(year)
    if kind == 2:
        return BirthDate(year, draw(st.integers(1, 12)))
    day, month = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    return BirthDate(year, month, day, day_month_ambiguous=kind == 4 and day != month)


@st.composite
def records(draw: st.DrawFn, n: int = 1) -> PersonRecord:
    documents = tuple(
        IdentityDocument(draw(st.sampled_from(["P", "ID", ""])), number, draw(_CODES))
        for number in draw(
            st.lists(st.sampled_from(["AB123456", "ab-123 456", "X1", "Z"]), max_size=2)
        )
    )
    addresses = tuple(
        Address(
            lines=tuple(draw(st.lists(_TEXT.filter(bool), max_size=2))),
            locality=draw(_TEXT),
            region=draw(_TEXT),
            postcode=draw(_TEXT),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    return PersonRecord(
        record_id=f"r{draw(st.integers(0, 10**6))}",
        category=Category.WATCHLIST,
        name=draw(_names()),
        aliases=tuple(draw(st.lists(_names(), max_size=2))),
        birth_date=draw(_birth()),
        sex=draw(st.sampled_from([None, Sex.FEMALE, Sex.MALE, Sex.UNSPECIFIED])),
        nationalities=tuple(draw(st.lists(_CODES.filter(bool), max_size=2, unique=True))),
        birth_place=draw(_TEXT),
        documents=documents,
        addresses=addresses,
    )


_TRANSFORMS = {
    "name": ["soundex", "nysiis", "metaphone", "first_initial", "first_n:3", "last_n:2",
             "deletions", "minhash:2x2", "nospace"],
    "date": ["year", "year_month", "day_month_sorted", "digits", "deletions"],
    "other": ["first_n:2", "digits", "nospace", "deletions", "minhash:3x1"],
}  # fmt: skip


@st.composite
def schemas(draw: st.DrawFn) -> LinkageSchema:
    keys = []
    for k in range(draw(st.integers(1, 6))):
        fields = draw(st.lists(st.sampled_from(list(Field)), min_size=1, max_size=4, unique=True))
        transforms: dict[str, str] = {}
        fuzzy = False
        for field in fields:
            if not draw(st.booleans()):
                continue
            kind = "date" if field is Field.BIRTH_DATE else "name" if field.alphabetic else "other"
            spec = draw(st.sampled_from(_TRANSFORMS[kind]))
            step = Transform.parse(spec)
            if step.expanding and fuzzy:
                continue
            if step.kind in PHONETIC_TRANSFORMS and not field.alphabetic:
                continue
            if step.kind in DATE_ONLY_TRANSFORMS and field is not Field.BIRTH_DATE:
                continue
            fuzzy = fuzzy or step.expanding
            transforms[field.value] = spec
        key: dict[str, object] = {
            "name": f"k{k}",
            "version": 1,
            "fields": [f.value for f in fields],
            "transforms": transforms,
            "use_variants": draw(st.booleans()),
        }
        if len(fields) > 1:
            key["unordered"] = draw(st.booleans())
        keys.append(key)
    return validate_schema(
        {
            "id": "gen",
            "version": 1,
            "keys": keys,
            "placeholder_names": draw(st.booleans()),
            "full_birth_dates": draw(st.booleans()),
        }
    )


def _reference(items: list[PersonRecord], schema: LinkageSchema) -> TokenSet:
    builder = TokenSetBuilder(schema.key_names)
    for record in items:
        builder.add_record(record.record_id, derive_match_keys(record, schema))
    return builder.build()


def _same(a: TokenSet, b: TokenSet) -> bool:
    return (
        a.key_names == b.key_names
        and a.record_ids == b.record_ids
        and a.values == b.values
        and array("I", a.record_index) == array("I", b.record_index)
        and array("B", a.key_index) == array("B", b.key_index)
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(records(), min_size=1, max_size=12), schemas())
def test_cached_derivation_equals_reference_on_generated_schemas(
    items: list[PersonRecord], schema: LinkageSchema
) -> None:
    expected = _reference(items, schema)
    assert _same(derive_token_set(items, schema), expected)
    deriver = TokenDeriver(schema)  # warm memos: the same records again
    for _ in range(2):
        for record in items:
            keys, values = deriver.derive(record)
            pairs = derive_match_keys(record, schema)
            assert values == b"".join(t for _, t in pairs)
            assert [schema.key_names[i] for i in keys] == [k for k, _ in pairs]


def _bundled_older() -> list[LinkageSchema]:
    from importlib import resources

    older = []
    for resource in ("data/schemas/default-v3.json", "data/schemas/default-v4.json"):
        with resources.as_file(resources.files("xlink") / resource) as path:
            older.append(load_schema(path))
    return older


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=1, max_size=20))
def test_cached_derivation_equals_reference_on_bundled_schemas(items: list[PersonRecord]) -> None:
    for schema in (load_default_schema(), *_bundled_older()):
        assert _same(derive_token_set(items, schema), _reference(items, schema))


@pytest.mark.parametrize(
    "full",
    ["IVANOV Ivan Petrovich", "Jan van der BERG", "AJ Smith", "MARY Ann Smith", "BABY Smith"],
)
def test_cached_derivation_equals_reference_on_names_read_two_ways(full: str) -> None:
    """A full name whose family name alone is in capitals has a second reading
    (``name_readings``); the memoised derivation reads it as the reference does."""
    record = PersonRecord(
        record_id="R1",
        category=Category.WATCHLIST,
        name=PersonName(full=full),
        aliases=(PersonName(full="PETROV Petr"),),
        birth_date=BirthDate(1980, 4, 3),
    )
    for schema in (load_default_schema(), *_bundled_older()):
        keys, values = TokenDeriver(schema).derive(record)
        pairs = derive_match_keys(record, schema)
        assert values == b"".join(t for _, t in pairs)
        assert [schema.key_names[i] for i in keys] == [k for k, _ in pairs]


def test_a_reading_from_case_only_adds_tokens_within_each_keys_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key keeps at most MAX_TOKENS_PER_KEY tokens; the readings from case come after every
    name's first reading, so a record with many variants keeps every token it had without
    them (read after the name and before its aliases, they pushed an alias's out)."""
    import xlink.records.names as names

    record = PersonRecord(
        record_id="R1",
        category=Category.WATCHLIST,
        name=PersonName(full="MÜLLER-LÜDENSCHEIDT Jürgen Öztürk"),
        aliases=(PersonName(full="Ærøskøbing Øystein"), PersonName(full="Хрущёв Жюльен")),
        birth_date=BirthDate(1980, 4, 3),
    )
    schema = load_default_schema()
    pairs = derive_match_keys(record, schema)
    assert TokenDeriver(schema).derive(record)[1] == b"".join(t for _, t in pairs)
    monkeypatch.setattr(names, "_capitals_texts", lambda _name, _first: None)
    monkeypatch.setattr(names, "_compound_texts", lambda _name, _first: None)
    without = set(derive_match_keys(record, schema))
    assert without < set(pairs)


def test_workers_give_the_same_token_set() -> None:
    schema = load_default_schema()
    base = [
        PersonRecord(
            record_id=f"r{i}",
            category=Category.TRAVELLER,
            name=PersonName(given=("Anna", "Jürgen", "Li")[i % 3], family=f"Family{i % 97}"),
            birth_date=BirthDate(1950 + i % 50, 1 + i % 12, 1 + i % 28),
            sex=(Sex.FEMALE, Sex.MALE)[i % 2],
            documents=(IdentityDocument("P", f"AB{i:06d}", "CAN"),) if i % 3 else (),
            addresses=(Address(lines=(f"{i} Main St",), locality="Toronto", postcode="K1A0B1"),),
        )
        for i in range(2_500)
    ]
    calls: list[int] = []
    serial = derive_token_set(base, schema)
    parallel = derive_token_set(base, schema, progress=calls.append, workers=2)
    assert _same(serial, parallel)
    assert calls == [1000, 2000, 2500]


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=1, max_size=20), st.data())
def test_a_token_set_cut_to_some_records_is_theirs(
    items: list[PersonRecord], data: st.DataObject
) -> None:
    """``TokenSet.only_records`` (what a side keeps of a category its MOU does not list) gives
    exactly the token set of the records kept, derived on their own."""
    unique = list({r.record_id: r for r in items}.values())
    keep = data.draw(st.sets(st.sampled_from([r.record_id for r in unique])))
    schema = load_default_schema()
    whole = derive_token_set(unique, schema)
    kept = [r for r in unique if r.record_id in keep]
    assert _same(whole.only_records(keep), derive_token_set(kept, schema))


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), min_size=1, max_size=20), st.data())
def test_the_tokens_of_some_records_are_each_its_own(
    items: list[PersonRecord], data: st.DataObject
) -> None:
    """``TokenSet.tokens_of`` (what a released record spends of the day's claims) gives each
    record asked for exactly its own tokens, in a set built record by record or in any order."""
    unique = list({r.record_id: r for r in items}.values())
    wanted = data.draw(st.sets(st.sampled_from([r.record_id for r in unique])))
    schema = load_default_schema()
    whole = derive_token_set(unique, schema)
    alone = {r.record_id: derive_token_set([r], schema) for r in unique if r.record_id in wanted}
    expected = {rid: sorted(t.value(i) for i in range(len(t))) for rid, t in alone.items()}
    assert {rid: sorted(v) for rid, v in whole.tokens_of(wanted | {"not-a-record"}).items()} == (
        expected
    )
    order = data.draw(st.permutations(range(len(whole))))
    shuffled = TokenSet(
        key_names=whole.key_names,
        record_ids=whole.record_ids,
        values=b"".join(whole.value(i) for i in order),
        record_index=array("I", [whole.record_index[i] for i in order]),
        key_index=array("B", [whole.key_index[i] for i in order]),
    )
    assert {rid: sorted(v) for rid, v in shuffled.tokens_of(wanted).items()} == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(records(), min_size=1, max_size=6))
def test_the_household_a_won_record_spends_is_derived_as_the_reference_derives_it(
    items: list[PersonRecord],
) -> None:
    """The day of claims derives a household's tokens (each family name of a record with each
    of its addresses alone) with a prepared side's deriver, one for many records: the same
    tokens as :func:`derive_match_keys`, the reference, gives the household records."""
    from xlink.agency._claims import household_names, spent_tokens

    schema = load_default_schema()
    shared = TokenDeriver(schema)
    for record in items:
        reference: dict[bytes, None] = {}
        for family in household_names(record):
            for address in record.addresses:
                household = PersonRecord(
                    record_id=record.record_id, category=record.category,
                    name=PersonName(family=family), addresses=(address,),
                )  # fmt: skip
                reference.update(dict.fromkeys(t for _, t in derive_match_keys(household, schema)))
        assert spent_tokens(record, [], schema, shared) == list(reference)
        assert spent_tokens(record, [], schema) == list(reference)


_ANNA = PersonRecord(
    record_id="r1",
    category=Category.TRAVELLER,
    name=PersonName(given="Anna", family="Müller"),
    birth_date=BirthDate(1970, 3, 4),
    sex=Sex.FEMALE,
)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("fails", [False, True])
def test_deriving_leaves_the_garbage_collector_as_it_found_it(
    enabled: bool, fails: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deriving pauses the cyclic collector (xlink._gc): on, it is on again afterwards, also
    when deriving fails part-way; off (the caller's choice), it stays off."""
    schema, record = load_default_schema(), _ANNA
    seen: list[bool] = []
    derive = TokenDeriver.derive

    def watched(self: TokenDeriver, item: PersonRecord) -> Any:
        seen.append(gc.isenabled())
        if fails and len(seen) > 1:
            raise RuntimeError("deriving fails part-way")
        return derive(self, item)

    monkeypatch.setattr(TokenDeriver, "derive", watched)
    items = [record, dataclasses.replace(record, record_id="r2")]
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        if fails:
            with pytest.raises(RuntimeError):
                derive_token_set(items, schema, workers=1)
        else:
            assert len(derive_token_set(items, schema, workers=1)) > 0
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False, False]  # paused while deriving


_SPECS = [
    "identity", "soundex", "nysiis", "metaphone", "first_initial", "first_n:3", "last_n:2",
    "digits", "year", "year_month", "day_month_sorted", "nospace", "deletions", "minhash:4x3",
    "minhash:2x1",
]  # fmt: skip


@given(
    st.sampled_from(_SPECS),
    st.one_of(
        st.text(alphabet="ABCDEÉßaz -'0123456789", max_size=14),
        st.sampled_from(["1970-03-04", "1970-11-04", "1970", "1970-03", "AB123456", "MUELLER"]),
    ),
)
def test_one_transform_is_one_step_of_a_chain(spec: str, value: str) -> None:
    """The deriver takes a value through one transform with ``apply_transform`` itself, where
    the reference takes ``apply_chain``: the same values, distinct, in the same order."""
    step = Transform.parse(spec)
    assert apply_transform(step, value) == apply_chain((step,), value)
    assert set(TransformKind) <= {Transform.parse(s).kind for s in _SPECS}


def test_deriving_in_another_thread_leaves_the_garbage_collector_running() -> None:
    """The collector is the process's: a thread deriving (the hub agent prepares its list in
    one) does not pause it for the threads serving other partners meanwhile (xlink._gc)."""
    schema, record = load_default_schema(), _ANNA
    seen: list[bool] = []

    def progress(_n: int) -> None:
        seen.append(gc.isenabled())

    items = [dataclasses.replace(record, record_id=f"r{i}") for i in range(1000)]
    was = gc.isenabled()
    gc.enable()
    try:
        thread = threading.Thread(target=derive_token_set, args=(items, schema, progress))
        thread.start()
        thread.join()
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [True]


def test_deriving_in_workers_pauses_the_garbage_collector_here_too() -> None:
    """Handing a large list to the worker processes ran with the collector on: each of its
    walks went over every loaded record (xlink._gc). It is paused there too, and on again
    afterwards."""
    schema, record = load_default_schema(), _ANNA
    seen: list[bool] = []
    items = [dataclasses.replace(record, record_id=f"r{i}") for i in range(3000)]
    was = gc.isenabled()
    gc.enable()
    try:
        tokens = derive_token_set(items, schema, lambda _n: seen.append(gc.isenabled()), workers=2)
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert len(tokens) > 0
    assert seen and not any(seen)


def test_a_derive_worker_exits_without_walking_its_objects() -> None:
    """A worker's interpreter walked every object it still held at exit (its last collection
    runs even with the collector off): the memos, about 2.5 s of CPU a worker over 200,000
    records. It exits with them frozen. Shown with a reference cycle whose finaliser that walk
    would run: it must not run."""
    import subprocess
    import sys

    script = (
        "from xlink.linkage._pool import _start\n"
        "from xlink.linkage.schema import load_default_schema\n"
        "_start(load_default_schema())\n"
        "class Cycle:\n"
        "    def __del__(self):\n"
        "        print('walked at exit', flush=True)\n"
        "c = Cycle(); c.me = c; del c\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert "walked at exit" not in done.stdout
    control = script.replace("_start(load_default_schema())", "import gc; gc.disable()")
    done = subprocess.run(
        [sys.executable, "-c", control], capture_output=True, text=True, timeout=120, check=True
    )
    assert "walked at exit" in done.stdout  # what the test would see if the walk still ran


@given(st.lists(st.integers(min_value=0, max_value=4), max_size=12), st.booleans())
def test_a_chunk_adds_what_its_records_add_one_by_one(counts: list[int], as_array: bool) -> None:
    """``TokenSetBuilder.add_chunk`` (the workers' results) gives each record its tokens, as
    ``add_distinct`` does one record at a time, records with no token included."""
    keys = ("a", "b")
    chunk, single = TokenSetBuilder(keys), TokenSetBuilder(keys)
    single.add_distinct("before", b"\x01", bytes([255]) * 32)
    chunk.add_distinct("before", b"\x01", bytes([255]) * 32)
    ids = [f"r{j}" for j in range(len(counts))]
    key_index, values = bytearray(), bytearray()
    for j, count in enumerate(counts):
        mine_keys = bytes(k % 2 for k in range(count))
        mine = b"".join(bytes([j, k]) * 16 for k in range(count))
        single.add_distinct(ids[j], mine_keys, mine)
        key_index += mine_keys
        values += mine
    chunk.add_chunk(
        ids, array("I", counts) if as_array else counts, bytes(key_index), bytes(values)
    )
    a, b = chunk.build(), single.build()
    assert (a.record_ids, a.values, a.record_index, a.key_index) == (
        b.record_ids,
        b.values,
        b.record_index,
        b.key_index,
    )
