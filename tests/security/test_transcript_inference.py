"""What a party can infer from its own view of a PSI session, measured (docs/leakage.md).

Two tests back the leakage statement:

- **Indistinguishability.** Party A is fixed; the peer's list is B1 or B2, which differ only in
  records sharing no token with A (same number of distinct tokens, so the same padded size).
  With the same randomness, everything A obtains (its result and the peer's padded size) is
  identical, and of the bytes the peer sends only the singly-blinded Elements differ. A third
  peer list whose extra record *does* share a token with A shows that the comparison notices
  a difference.
- **Inference on synthetic data.** A real exchange over ``xlink synth`` files under a schema
  with exact, phonetic and fuzzy keys. From A's result alone we compute the candidate pairs and,
  labelling them afterwards with the ground truth, what A can confirm about the peer's record in
  pairs that are not the same person. Every agreement pattern is checked against the patterns
  computed in the clear from both records, so the doc's claims are exactly right. The figures
  are written to ``leakage-figures.json`` in the test's tmp dir and printed (``pytest -s``).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import jellyfish
import pytest

from xlink.crypto.rand import DeterministicRandom
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.fields import Field, TransformKind, deletion_neighbourhood
from xlink.linkage.keys import Instance, derive_token_set, key_parts, record_instances
from xlink.linkage.schema import KeyRecipe, LinkageSchema, validate_schema
from xlink.linkage.tokens import TokenSet
from xlink.prepare import load_records
from xlink.protocol.codec import decode_message
from xlink.protocol.config import Role
from xlink.protocol.events import CandidatePair, PsiResult
from xlink.protocol.messages import Elements, Hello
from xlink.records.model import (
    Address,
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
    Sex,
)
from xlink.synth import generate_synth, read_truth

MOU_ID = "mou-leakage-test"
MOU_DIGEST = bytes(range(32))

#: Exact, phonetic and fuzzy keys (built here: the bundled default schema changes over time).
SCHEMA = validate_schema(
    {
        "id": "leakage-test",
        "version": 1,
        "keys": [
            {"name": "document", "version": 1, "fields": ["document_number"]},
            {"name": "family_dob", "version": 1, "fields": ["family", "birth_date"]},
            {"name": "given_dob", "version": 1, "fields": ["given", "birth_date"]},
            {"name": "street_postcode", "version": 1, "fields": ["street", "postcode"]},
            {
                "name": "soundex_names_year",
                "version": 1,
                "fields": ["given", "family", "birth_year"],
                "transforms": {"given": "soundex", "family": "soundex"},
            },
            {
                "name": "family_deletions_dob",
                "version": 1,
                "fields": ["family", "birth_date"],
                "transforms": {"family": "deletions"},
            },
            {
                "name": "given_minhash_family_year",
                "version": 1,
                "fields": ["given", "family", "birth_year"],
                "transforms": {"given": "minhash:4x2"},
            },
        ],
    }
)


def _is_exact(recipe: KeyRecipe) -> bool:
    return all(not chain for chain in recipe.transforms)


def _transcript_run(
    a: TokenSet, b: TokenSet, schema: LinkageSchema, *, bucket: int
) -> tuple[PsiResult, PsiResult, list[bytes]]:
    """One session with fixed randomness: both results and every message the responder (B)
    sent, in order."""
    sent_by_b: list[bytes] = []

    def observe(sender: object, message: bytes) -> None:
        if getattr(sender, "role", None) is Role.RESPONDER:
            sent_by_b.append(message)

    ra, rb = exchange_in_memory(
        Party("agency-a", a, DeterministicRandom("leakage/a")),
        Party("agency-b", b, DeterministicRandom("leakage/b")),
        schema=schema,
        mou_id=MOU_ID,
        mou_digest=MOU_DIGEST,
        padding_bucket=bucket,
        chunk_size=bucket,
        observer=observe,
    )
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    return ra, rb, sent_by_b


def _a_view(result: PsiResult, sent_by_b: list[bytes]) -> dict[str, object]:
    """What the leakage statement says A learns: its pairs as (local record, pattern), the
    number of matched tokens and the peer's padded size (from the peer's Hello)."""
    hellos = [m for m in map(decode_message, sent_by_b) if isinstance(m, Hello)]
    assert len(hellos) == 1
    return {
        "pairs": Counter((p.local_record_id, p.agreeing_keys) for p in result.iter_pairs()),
        "matched_tokens": result.matched_tokens,
        "peer_padded_size": hellos[0].padded_size,
    }


def _person(
    record_id: str,
    given: str,
    family: str,
    dob: tuple[int, int, int],
    *,
    street: str = "",
    postcode: str = "",
    passport: str = "",
) -> PersonRecord:
    return PersonRecord(
        record_id=record_id,
        category=Category.WATCHLIST,
        name=PersonName(given=given, family=family),
        birth_date=BirthDate(*dob),
        sex=Sex.MALE,
        documents=(IdentityDocument("P", passport, "CAN"),) if passport else (),
        addresses=(Address(lines=(street,), locality="Ottawa", postcode=postcode),)
        if street
        else (),
    )


A_RECORDS = (
    _person("a1", "Ivan", "Petrov", (1980, 5, 17), street="12 Elm St", postcode="K1A0B1",
            passport="AB123456"),
    _person("a2", "Maria", "Lopez", (1975, 1, 2), street="4 Oak Ave", postcode="K2B7C3"),
    _person("a3", "John", "Smith", (1990, 9, 30)),
)  # fmt: skip

#: Peer records that share tokens with A: the same Ivan Petrov (typo in the family name), a
#: household member of Maria Lopez (same family name and address, other given name and date).
B_SHARED = (
    _person("b-ivan", "Ivan", "Petrof", (1980, 5, 17), passport="AB123456"),
    _person("b-lopez-son", "Carlos", "Lopez", (2005, 3, 8), street="4 Oak Ave",
            postcode="K2B7C3"),
)  # fmt: skip

#: Two different peer records sharing no token with A, with the same number of tokens.
B_UNSHARED_1 = _person("b-x", "Olga", "Sokolova", (1962, 11, 4), street="9 Pine Rd",
                       postcode="V5K0A1")  # fmt: skip
B_UNSHARED_2 = _person("b-x", "Tomas", "Novakova", (1971, 2, 25), street="77 Birch Ln",
                       postcode="H2X1Y4")  # fmt: skip
#: A third variant whose extra record *does* share a token with A (John Smith's namesake born on
#: the same day): A must see it.
B_NEAR = _person("b-x", "Johnny", "Smith", (1990, 9, 30), street="9 Pine Rd", postcode="V5K0A1")


def test_records_sharing_no_token_do_not_change_what_a_learns() -> None:
    a = derive_token_set(A_RECORDS, SCHEMA)
    b1 = derive_token_set((*B_SHARED, B_UNSHARED_1), SCHEMA)
    b2 = derive_token_set((*B_SHARED, B_UNSHARED_2), SCHEMA)
    b3 = derive_token_set((*B_SHARED, B_NEAR), SCHEMA)
    own = {a.value(i) for i in range(len(a))}

    def distinct(t: TokenSet) -> set[bytes]:
        return {t.value(i) for i in range(len(t))}

    # Preconditions: B1 and B2 differ only in tokens A does not hold, and have as many distinct
    # tokens (so the padding cannot tell them apart); B3's extra record shares tokens with A.
    assert distinct(b1) != distinct(b2)
    assert not (distinct(b1) ^ distinct(b2)) & own
    assert len(distinct(b1)) == len(distinct(b2))
    assert distinct(b3) - distinct(b1) & own

    bucket = 8  # small, so the padded size follows the token count closely
    ra1, _, sent1 = _transcript_run(a, b1, SCHEMA, bucket=bucket)
    ra2, _, sent2 = _transcript_run(a, b2, SCHEMA, bucket=bucket)
    ra3, _, sent3 = _transcript_run(a, b3, SCHEMA, bucket=bucket)

    view1, view2, view3 = _a_view(ra1, sent1), _a_view(ra2, sent2), _a_view(ra3, sent3)
    assert view1["pairs"], "the shared records must give candidate pairs"
    # What A learns is the same whichever unshared record the peer holds ...
    assert view1 == view2
    # ... to the byte: same session id, handles, peer references.
    assert ra1 == ra2
    # The peer's bytes did differ, but only in its singly-blinded Elements (DDH-protected);
    # its Hello, its re-blinding of A's elements and its Reveal are byte-identical, and every
    # message has the same length.
    assert sent1 != sent2
    assert [len(m) for m in sent1] == [len(m) for m in sent2]
    differing = [
        type(decode_message(m1)).__name__ for m1, m2 in zip(sent1, sent2, strict=True) if m1 != m2
    ]
    assert differing and set(differing) == {Elements.__name__}
    # A record that shares a token is seen: the comparison above can fail.
    assert view3 != view1
    new_pairs = view3["pairs"] - view1["pairs"]  # type: ignore[operator]
    assert {rid for rid, _ in new_pairs} == {"a3"}


# --- inference on synthetic data ----------------------------------------------------------


def _instances(records: list[PersonRecord]) -> dict[str, dict]:
    return {r.record_id: record_instances(r) for r in records}


def _clear_parts(
    inst: dict[str, dict], schema: LinkageSchema
) -> dict[str, dict[str, set[tuple[str, ...]]]]:
    """record id -> key name -> the value tuples the key hashes (computed in the clear)."""
    return {
        rid: {k.name: set(key_parts(k, groups)) for k in schema.keys}
        for rid, groups in inst.items()
    }


def _primary(groups: dict, field: Field) -> str:
    """The primary (first) normalised value of ``field`` on a record, or ""."""
    instances: tuple[Instance, ...] = groups.get(field.group, ())
    for inst in instances:
        if not inst.variant and inst.values.get(field):
            return inst.values[field][0]
    return ""


def _readings(a_groups: dict, b_groups: dict, field: Field) -> list[tuple[str, str]]:
    """Every (A reading, B reading) of ``field``: all instances and variants of each side."""
    xs = {v for inst in a_groups.get(field.group, ()) for v in inst.values.get(field, ())}
    ys = {v for inst in b_groups.get(field.group, ()) for v in inst.values.get(field, ())}
    return [(x, y) for x in sorted(xs) for y in sorted(ys)]


def _bigrams(value: str) -> set[str]:
    wrapped = "^" + value.replace(" ", "") + "$"
    return {wrapped[i : i + 2] for i in range(len(wrapped) - 1)}


def _jaccard(x: str, y: str) -> float:
    a, b = _bigrams(x), _bigrams(y)
    return len(a & b) / len(a | b)


def _resolve_refs(result: PsiResult, peer: PsiResult) -> dict[int, list[str]]:
    """Peer reference in ``result`` -> the peer's record ids (from the peer's own result: the
    record whose matched handles are exactly the reference's). Several ids when several peer
    records hold exactly the same matched tokens; they then have the same pattern with every
    local record. Test-only: A cannot do this."""
    per_ref: dict[int, set[bytes]] = defaultdict(set)
    for p in result.iter_pairs():
        per_ref[p.peer_ref].update(p.handles)
    per_record: dict[str, set[bytes]] = defaultdict(set)
    for p in peer.iter_pairs():
        per_record[p.local_record_id].update(p.handles)
    by_handles: dict[frozenset[bytes], list[str]] = defaultdict(list)
    for rid, hs in per_record.items():
        by_handles[frozenset(hs)].append(rid)
    return {ref: sorted(by_handles[frozenset(hs)]) for ref, hs in per_ref.items()}


@pytest.fixture(scope="module")
def synth_exchange(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("synth")
    generate_synth(d, 1000, seed=20240611)
    ca = list(load_records(d / "ca.csv").records)
    us = list(load_records(d / "us.csv").records)
    ta, tb = derive_token_set(ca, SCHEMA), derive_token_set(us, SCHEMA)
    ra, rb = exchange_in_memory(
        Party("ca", ta, DeterministicRandom("synth/ca")),
        Party("us", tb, DeterministicRandom("synth/us")),
        schema=SCHEMA,
        mou_id=MOU_ID,
        mou_digest=MOU_DIGEST,
    )
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    return {
        "dir": d,
        "ca": ca,
        "us": us,
        "tokens": (ta, tb),
        "results": (ra, rb),
        "truth": read_truth(d / "truth.csv"),
    }


def test_inference_from_a_result_matches_the_leakage_statement(
    synth_exchange: dict[str, object], tmp_path: Path
) -> None:
    ca: list[PersonRecord] = synth_exchange["ca"]  # type: ignore[assignment]
    us: list[PersonRecord] = synth_exchange["us"]  # type: ignore[assignment]
    ra, rb = synth_exchange["results"]  # type: ignore[misc]
    truth: set[tuple[str, str]] = synth_exchange["truth"]  # type: ignore[assignment]
    inst_ca, inst_us = _instances(ca), _instances(us)
    parts_ca, parts_us = _clear_parts(inst_ca, SCHEMA), _clear_parts(inst_us, SCHEMA)
    recipes = {k.name: k for k in SCHEMA.keys}
    exact = {k.name for k in SCHEMA.keys if _is_exact(k)}

    refs = _resolve_refs(ra, rb)

    def _is_true(p: CandidatePair) -> bool:
        return any((p.local_record_id, u) in truth for u in refs[p.peer_ref])

    pairs = list(ra.iter_pairs())
    assert pairs

    # 1. Every agreement pattern A sees is exactly the set of keys whose value tuples the two
    #    records share (computed in the clear), for every peer record behind the reference.
    for p in pairs:
        for us_id in refs[p.peer_ref]:
            shared = {
                name
                for name in recipes
                if parts_ca[p.local_record_id][name] & parts_us[us_id][name]
            }
            assert p.agreeing_keys == shared, (p.local_record_id, us_id)

    # 2. Only peer records sharing >= 1 token appear, and all of them do: peer records sharing
    #    no token contribute nothing to A's result.
    index: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    for rid, by_key in parts_us.items():
        for name, tuples in by_key.items():
            for t in tuples:
                index[(name, t)].add(rid)
    sharing = {
        rid
        for by_key in parts_ca.values()
        for name, tuples in by_key.items()
        for t in tuples
        for rid in index.get((name, t), ())
    }
    seen = {rid for ids in refs.values() for rid in ids}
    assert seen == sharing
    assert len(refs) <= len(sharing) < len(us)

    # 3. What each agreeing key lets A confirm about the peer's record, checked on the values.
    exact_checks = primary_equal = 0
    deletion_distance: Counter[int] = Counter()
    minhash_jaccard: list[float] = []
    confirmed_fields_nonmatch: list[int] = []
    nonmatch_pairs = 0
    nonmatch_ca: set[str] = set()
    match_pairs = 0
    nonmatch_patterns: Counter[str] = Counter()
    for p in pairs:
        a_groups = inst_ca[p.local_record_id]
        is_match = _is_true(p)
        for us_id in refs[p.peer_ref]:
            b_groups = inst_us[us_id]
            for name in p.agreeing_keys:
                recipe = recipes[name]
                for field, chain in zip(recipe.fields, recipe.transforms, strict=True):
                    kinds = {t.kind for t in chain}
                    pairs_of_readings = _readings(a_groups, b_groups, field)
                    if not kinds:
                        # exact: the peer holds one of A's readings of the field
                        assert any(x == y for x, y in pairs_of_readings), (name, field)
                        exact_checks += 1
                        primary_equal += _primary(a_groups, field) == _primary(b_groups, field)
                    elif kinds <= {TransformKind.SOUNDEX}:
                        # phonetic: the peer's value is in the same code class
                        assert any(
                            jellyfish.soundex(x.replace(" ", ""))
                            == jellyfish.soundex(y.replace(" ", ""))
                            for x, y in pairs_of_readings
                        ), (name, field)
                    elif TransformKind.DELETIONS in kinds:
                        # deletions: one deletion (or none) on each side gives the same string
                        close = [
                            (x, y)
                            for x, y in pairs_of_readings
                            if set(deletion_neighbourhood(x)) & set(deletion_neighbourhood(y))
                        ]
                        assert close, (name, field)
                        d = min(jellyfish.damerau_levenshtein_distance(x, y) for x, y in close)
                        assert d <= 2
                        deletion_distance[d] += 1
                    elif TransformKind.MINHASH in kinds:
                        # MinHash band: R minima coincide, so the values share bigrams
                        j = max(_jaccard(x, y) for x, y in pairs_of_readings)
                        assert j > 0, (name, field)
                        minhash_jaccard.append(j)
        if is_match:
            match_pairs += 1
            continue
        nonmatch_pairs += 1
        nonmatch_ca.add(p.local_record_id)
        nonmatch_patterns["+".join(sorted(p.agreeing_keys))] += 1
        # exact keys: A learns the peer holds these field values (one of A's readings)
        fields = {f for name in p.agreeing_keys & exact for f in recipes[name].fields}
        confirmed_fields_nonmatch.append(len(fields))

    assert exact_checks and deletion_distance and minhash_jaccard

    ta, tb = synth_exchange["tokens"]  # type: ignore[misc]
    figures = {
        "records": {"ca": len(ca), "us": len(us)},
        "tokens": {"ca": len(ta), "us": len(tb)},
        "matched_tokens": ra.matched_tokens,
        "candidate_pairs": len(pairs),
        "true_match_pairs": match_pairs,
        "non_match_pairs": nonmatch_pairs,
        "peer_records_revealed": len(refs),
        # pairs that only phonetic/fuzzy keys made candidates (absent under the exact keys alone)
        "pairs_only_via_non_exact_keys": sum(1 for p in pairs if not p.agreeing_keys & exact),
        "non_match_pairs_only_via_non_exact_keys": sum(
            1 for p in pairs if not p.agreeing_keys & exact and not _is_true(p)
        ),
        "ca_records_in_a_non_match_pair": len(nonmatch_ca),
        "ca_fraction_in_a_non_match_pair": round(len(nonmatch_ca) / len(ca), 4),
        "non_match_exact_fields_confirmed": dict(
            sorted(Counter(confirmed_fields_nonmatch).items())
        ),
        "non_match_patterns_top": dict(nonmatch_patterns.most_common(8)),
        "exact_field_agreements": exact_checks,
        "exact_field_agreements_on_primary_reading": primary_equal,
        "deletion_agreements_by_distance": dict(sorted(deletion_distance.items())),
        "minhash_agreement_jaccard": {
            "n": len(minhash_jaccard),
            "min": round(min(minhash_jaccard), 3) if minhash_jaccard else None,
            "median": round(statistics.median(minhash_jaccard), 3) if minhash_jaccard else None,
        },
    }
    out = tmp_path / "leakage-figures.json"
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    assert nonmatch_pairs == len(pairs) - match_pairs
    assert nonmatch_pairs > 0, "the synthetic data has households and namesakes"
