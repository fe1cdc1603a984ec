from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from xlink.errors import SchemaError
from xlink.linkage.fields import Field, FieldGroup, Transform, TransformKind
from xlink.linkage.schema import (
    SCHEMA_DIGEST_DST,
    LinkageSchema,
    load_default_schema,
    load_schema,
    parse_schema,
    schema_digest,
    schema_to_canonical,
    schema_to_document,
    validate_schema,
)

GOOD_JSON = """
{
  "id": "ca-us-mou-7",
  "version": 2,
  "description": "test schema",
  "threshold": 12.5,
  "keys": [
    {"name": "name_dob", "version": 1, "fields": ["given", "family", "birth_date"],
     "m": 0.9, "u": 0.0001},
    {"name": "phonetic", "version": 3, "fields": ["family", "birth_date"],
     "transforms": {"family": ["soundex"], "birth_date": "year"}, "use_variants": false},
    {"name": "pair", "version": 1, "fields": ["given", "family"], "unordered": true,
     "transforms": {"given": ["identity", "first_n:3"]}}
  ]
}
"""

GOOD_TOML = """
id = "ca-us-mou-7"
version = 2
description = "same schema, other words and format"
threshold = 12.5

[[keys]]
name = "name_dob"
version = 1
fields = ["given", "family", "birth_date"]
m = 0.9
u = 1e-4

[[keys]]
name = "phonetic"
version = 3
fields = ["family", "birth_date"]
use_variants = false
transforms = { family = ["soundex"], birth_date = ["year"] }

[[keys]]
name = "pair"
version = 1
fields = ["given", "family"]
unordered = true
transforms = { given = ["first_n:3"] }
"""


def test_valid_schema() -> None:
    schema = parse_schema(GOOD_JSON, "json")
    assert schema.id == "ca-us-mou-7" and schema.version == 2 and schema.threshold == 12.5
    assert schema.key_names == ("name_dob", "phonetic", "pair")
    phonetic = schema.keys[1]
    assert phonetic.fields == (Field.FAMILY, Field.BIRTH_DATE)
    assert phonetic.transforms == (
        (Transform(TransformKind.SOUNDEX),),
        (Transform(TransformKind.YEAR),),
    )
    assert not phonetic.use_variants
    assert schema.keys[2].transforms == ((Transform(TransformKind.FIRST_N, 3),), ())
    assert schema.keys[2].unordered


def test_toml_and_json_give_the_same_digest() -> None:
    a, b = parse_schema(GOOD_JSON, "json"), parse_schema(GOOD_TOML, "toml")
    assert a.description != b.description
    assert schema_digest(a) == schema_digest(b)


def test_digest_is_documented_encoding() -> None:
    schema = parse_schema(GOOD_JSON, "json")
    canonical = json.dumps(schema_to_canonical(schema), sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(
        len(SCHEMA_DIGEST_DST).to_bytes(4, "big") + SCHEMA_DIGEST_DST + canonical.encode()
    ).digest()
    assert schema_digest(schema) == expected
    assert schema_to_canonical(schema)["threshold"] == "12.5"


def test_digest_changes_with_content() -> None:
    base = json.loads(GOOD_JSON)
    digests = {schema_digest(validate_schema(base))}
    for path, value in [
        (("id",), "other"),
        (("version",), 3),
        (("threshold",), 12.0),
        (("keys", 0, "version"), 2),
        (("keys", 0, "u"), 0.001),
        (("keys", 1, "use_variants"), True),
    ]:
        data = json.loads(GOOD_JSON)
        target = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        digests.add(schema_digest(validate_schema(data)))
    assert len(digests) == 7


def test_digest_is_stable() -> None:
    # Pinned: a change here breaks interoperability between versions of xlink.
    schema = parse_schema(GOOD_JSON, "json")
    assert schema_digest(schema) == schema_digest(parse_schema(GOOD_JSON, "json"))
    assert len(schema_digest(schema)) == 32
    assert schema_digest(schema).hex() == PINNED_DIGEST


PINNED_DIGEST = "52e4b9a001ec04977b2370791ee8b5385e06114cb06f030c3347c68a644b9aec"


def test_every_error_is_collected() -> None:
    bad = {
        "version": 0,
        "colour": "blue",
        "placeholder_names": "yes",
        "full_birth_dates": 1,
        "min_evidence_groups": 5,
        "keys": [
            {"name": "a", "version": 1, "fields": ["given", "shoe_size"]},
            {"name": "a", "version": 1, "fields": ["family"], "transforms": {"family": ["soundx"]}},
            {"name": "b", "version": 1, "fields": ["birth_date"], "m": 1.5, "u": 0.2},
            {"name": "c", "version": 1, "fields": ["given"], "m": 0.1, "u": 0.2},
            {"name": "d", "version": 1, "fields": ["sex"], "transforms": {"sex": ["soundex"]}},
            {"name": "e", "version": 1, "fields": ["given"], "transforms": {"given": ["first_n"]}},
            {"name": "f", "version": 1, "fields": ["given"], "m": 0.5},
            {"name": "Bad Name", "version": "1", "fields": []},
        ],
    }
    with pytest.raises(SchemaError) as info:
        validate_schema(bad)
    errors = "\n".join(info.value.errors)
    for expected in [
        "id: required",
        "version: must be an integer",
        "unknown member 'colour'",
        "placeholder_names: must be true or false",
        "full_birth_dates: must be true or false",
        "min_evidence_groups: must be an integer 1..4",
        "keys[0].fields[1]: unknown field 'shoe_size'",
        "keys[1].name: duplicate key name",
        "keys[1].transforms.family: unknown transform 'soundx'",
        "keys[2].m: must be a probability",
        "keys[3]: m must be greater than u",
        "keys[4].transforms.sex: soundex applies only to name-like fields",
        "keys[5].transforms.given: transform 'first_n' needs a length",
        "keys[6]: m and u go together",
        "keys[7].name: required",
        "keys[7].version: must be an integer",
        "keys[7].fields: required",
    ]:
        assert expected in errors, expected
    assert len(info.value.errors) >= 17


def test_syntax_errors_are_schema_errors() -> None:
    with pytest.raises(SchemaError):
        parse_schema("{", "json")
    with pytest.raises(SchemaError):
        parse_schema("id = ", "toml")
    with pytest.raises(SchemaError):
        validate_schema([1, 2])


def test_load_schema_from_file(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(GOOD_TOML, encoding="utf-8")
    (tmp_path / "s.json").write_text(GOOD_JSON, encoding="utf-8")
    assert schema_digest(load_schema(tmp_path / "s.toml")) == schema_digest(
        load_schema(tmp_path / "s.json")
    )
    with pytest.raises(SchemaError, match="unknown file type"):
        load_schema(tmp_path / "s.yaml")


def test_default_schema() -> None:
    schema = load_default_schema()
    assert schema.id == "xlink-default" and schema.version == 7
    assert schema.placeholder_names and schema.full_birth_dates
    assert schema.min_evidence_groups == 2 and schema.evidence is not None
    assert schema.threshold is not None and schema.certain_threshold is not None
    assert schema.certain_threshold >= schema.threshold
    assert all(k.weight is not None and k.m is None for k in schema.keys)
    assert all(k.disagreement_weight is not None for k in schema.keys)
    assert len(set(schema.key_names)) == len(schema.keys)


#: The digests of the shipped default schemas. A schema's digest is its tokens' identity in
#: every MOU signed over it: a change to a shipped file, or to how a member is canonicalised,
#: must fail here rather than break those MOUs unseen (a new meaning is a new version).
SHIPPED_DIGESTS = {
    "default-v3.json": "a9acdf80d84a938934e191fa71232a39668d79f14b82f7c466cb1d221efa6d47",
    "default-v4.json": "afbf40ffd655e1d3a842d8fe1a15ac88cba18cf7f9f9d5454921d80956acd986",
    "default-v5.json": "0c02f3a0cf2aa2cac171ed423da49523dcdec824c324dce503ab5d93f49ef00b",
    "default-v6.json": "0d8be994ea62f06abbc55845fcfeda30859eb7041eb15c8acc700fc60e404c2a",
    "default-v7.json": "f46202d6c4919136b29e77dc15007f02affd0666243120051a92ccca71a41488",
}


def test_shipped_schemas_keep_their_digests() -> None:
    from importlib import resources

    for name, digest in SHIPPED_DIGESTS.items():
        with resources.as_file(resources.files("xlink") / "data" / "schemas" / name) as path:
            assert schema_digest(load_schema(path)).hex() == digest, name
    assert schema_digest(load_default_schema()).hex() == SHIPPED_DIGESTS["default-v7.json"]


def test_schema_document_round_trips_weights_and_thresholds() -> None:
    from xlink.linkage.schema import schema_to_document

    data = {
        "id": "t",
        "version": 2,
        "description": "round trip",
        "threshold": -1.5,
        "certain_threshold": 4.25,
        "placeholder_names": True,
        "full_birth_dates": True,
        "min_evidence_groups": 3,
        "keys": [
            {"name": "a", "version": 1, "fields": ["family", "birth_date"], "weight": -0.75},
            {
                "name": "b",
                "version": 3,
                "description": "fuzzy",
                "fields": ["given", "family"],
                "transforms": {"given": ["nospace", "minhash:4x2"]},
                "unordered": True,
                "use_variants": False,
                "m": 0.9,
                "u": 0.001,
            },
        ],
    }
    schema = validate_schema(data)
    again = validate_schema(json.loads(json.dumps(schema_to_document(schema))))
    assert again == schema and schema_digest(again) == schema_digest(schema)
    assert schema.keys[0].score_weight == -0.75


def test_weight_and_certain_threshold_are_checked() -> None:
    base = {"id": "t", "version": 1, "threshold": 1.0, "keys": [
        {"name": "a", "version": 1, "fields": ["family"], "weight": 1.0}]}  # fmt: skip
    bad = [
        {"keys": [{"name": "a", "version": 1, "fields": ["family"], "weight": 65}]},
        {"keys": [{"name": "a", "version": 1, "fields": ["family"], "weight": "1"}]},
        {
            "keys": [
                {"name": "a", "version": 1, "fields": ["family"], "weight": 1, "m": 0.9, "u": 0.1}
            ]
        },
        {"certain_threshold": 0.5},
        {"threshold": None, "certain_threshold": 2.0},
    ]
    validate_schema(base)
    for change in bad:
        with pytest.raises(SchemaError):
            validate_schema({**base, **change})
    # Schemas without the new members keep their digest: they are left out of the canonical form.
    plain = validate_schema({"id": "t", "version": 1, "keys": [
        {"name": "a", "version": 1, "fields": ["family"]}]})  # fmt: skip
    assert "certain_threshold" not in schema_to_canonical(plain)


def _one_key(**extra: object) -> dict[str, object]:
    return {"id": "t", "version": 1, "keys": [
        {"name": "a", "version": 1, "fields": ["family"], **extra}]}  # fmt: skip


def test_disagreement_weight_goes_with_m_u_weight_or_neither() -> None:
    for extra in ({"m": 0.9, "u": 0.1}, {"weight": 3.5}, {}):
        schema = validate_schema(_one_key(disagreement_weight=-2.25, **extra))
        assert schema.keys[0].disagreement_weight == -2.25
        assert schema.disagreement_weights() == {"a": -2.25}
    for edge in (-64, 64, 0):
        key = validate_schema(_one_key(disagreement_weight=edge)).keys[0]
        assert key.disagreement_weight == float(edge)
    without = validate_schema(_one_key(weight=1.0))
    assert without.keys[0].disagreement_weight is None
    assert without.disagreement_weights() == {"a": 0.0}


@pytest.mark.parametrize("value", [64.5, -65, "1", True, None, [1.0], float("nan"), float("inf")])
def test_disagreement_weight_must_be_a_finite_number_of_at_most_64_bits(value: object) -> None:
    data = _one_key(disagreement_weight=value)
    if value is None:  # JSON null: as good as absent (like weight)
        assert validate_schema(data).keys[0].disagreement_weight is None
        return
    with pytest.raises(SchemaError) as err:
        validate_schema(data)
    assert err.value.errors == (
        "keys[0].disagreement_weight: must be a number between -64 and 64 (bits)",
    )


def test_disagreement_weight_errors_are_collected_with_the_others() -> None:
    data = _one_key(disagreement_weight="-1", weight=99)
    data["keys"].append({"name": "b", "version": 1, "fields": ["given"],  # type: ignore[attr-defined]
                         "disagreement_weight": -100})  # fmt: skip
    with pytest.raises(SchemaError) as err:
        validate_schema(data)
    assert err.value.errors == (
        "keys[0].weight: must be a number between -64 and 64 (bits)",
        "keys[0].disagreement_weight: must be a number between -64 and 64 (bits)",
        "keys[1].disagreement_weight: must be a number between -64 and 64 (bits)",
    )


def test_disagreement_weight_in_canonical_form_and_digest() -> None:
    plain = validate_schema(_one_key(weight=1.0))
    assert "disagreement_weight" not in schema_to_canonical(plain)["keys"][0]  # type: ignore[index]
    from xlink.linkage.schema import schema_to_document

    assert "disagreement_weight" not in schema_to_document(plain)["keys"][0]  # type: ignore[index]
    # Absent, the digest is the one of a schema that never knew the member (not even as null).
    canonical = {"id": "t", "version": 1, "threshold": None, "keys": [
        {"name": "a", "version": 1, "fields": ["family"], "transforms": [[]], "m": None,
         "u": None, "use_variants": True, "unordered": False, "weight": "1"}]}  # fmt: skip
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    dst = len(SCHEMA_DIGEST_DST).to_bytes(4, "big") + SCHEMA_DIGEST_DST
    assert schema_digest(plain) == hashlib.sha256(dst + encoded).digest()
    with_it = validate_schema(_one_key(weight=1.0, disagreement_weight=-0.1))
    key = schema_to_canonical(with_it)["keys"][0]  # type: ignore[index]
    assert key["disagreement_weight"] == "-0.10000000000000001"
    digests = {
        schema_digest(s)
        for s in (
            plain,
            with_it,
            validate_schema(_one_key(weight=1.0, disagreement_weight=-0.2)),
            validate_schema(_one_key(weight=1.0, disagreement_weight=0)),
        )
    }
    assert len(digests) == 4  # 0 is set, not absent: it is hashed
    doc = schema_to_document(with_it)
    assert doc["keys"][0]["disagreement_weight"] == -0.1  # type: ignore[index]
    again = validate_schema(json.loads(json.dumps(doc)))
    assert again == with_it and schema_digest(again) == schema_digest(with_it)


def test_pinned_digests_do_not_move() -> None:
    # GOOD_JSON and the v1 default schema (tests/linkage/test_fuzzy_transforms.py) use no
    # disagreement weight: their pinned digests hold.
    assert schema_digest(parse_schema(GOOD_JSON, "json")).hex() == PINNED_DIGEST
    v1 = load_schema(Path(__file__).with_name("schema-default-v1.json"))
    assert all(k.disagreement_weight is None for k in v1.keys)
    assert "disagreement_weight" not in json.dumps(schema_to_canonical(v1))


def test_evidence_counts_the_kinds_the_agreeing_keys_hold() -> None:
    schema = load_default_schema()
    # one fact about a person: a name, an address, a document number
    for alone in ("names", "street_postcode", "document"):
        assert schema.evidence_groups([alone]) == 1 and not schema.has_evidence([alone])
    # a name with a birth year, which a hundred guesses find, is one fact
    assert not schema.has_evidence(["names", "metaphone_names_year"])
    # two: a name part with a date of birth (to the month at least) or an address; a date of
    # birth with an address
    for two in ("names_year_month", "soundex_family_dob", "given_postcode", "dob_street"):
        assert schema.evidence_groups([two]) == 2 and schema.has_evidence([two])
    assert schema.evidence_groups(["names", "dob_street", "document"]) == 4
    assert schema.evidence_groups([]) == 0 and not schema.has_evidence([])
    with pytest.raises(KeyError):
        schema.evidence_groups(["no_such_key"])
    # without the member any pattern may be decided
    assert replace(schema, min_evidence_groups=None).has_evidence([])


@pytest.mark.parametrize(
    ("fields", "transforms", "held"),
    [
        (["given_first", "family"], {}, {"name"}),
        (["family_part"], {"family_part": "soundex"}, {"name"}),
        (["given_first", "birth_date"], {"given_first": "first_initial"}, {"birth"}),
        (["family", "postcode"], {"family": "first_n:3"}, {"address"}),
        (["family", "sex", "nationality", "birth_place"], {}, {"name"}),
        (["full_name"], {"full_name": "minhash:4x2"}, {"name"}),
        (["birth_date"], {"birth_date": "day_month_sorted"}, {"birth"}),
        (["birth_date"], {"birth_date": "year_month"}, {"birth"}),
        (["birth_date"], {"birth_date": "year"}, set()),
        (["birth_year"], {}, set()),
        (["birth_year_month"], {}, {"birth"}),
        (["street"], {"street": "nospace"}, {"address"}),
        (["locality"], {}, {"address"}),  # v6's table: no evidence member
        (["region", "sex"], {}, set()),
        (["postcode"], {"postcode": "digits"}, set()),
        (["document_number"], {"document_number": "deletions"}, {"document"}),
        (["document_country", "document_type"], {}, set()),
    ],
)
def test_what_a_key_holds(fields: list[str], transforms: dict[str, str], held: set[str]) -> None:
    key = {"name": "k", "version": 1, "fields": fields, "transforms": transforms}
    schema = validate_schema({"id": "t", "version": 1, "min_evidence_groups": 1, "keys": [key]})
    assert {g.value for g in schema.key_evidence()["k"]} == held
    assert schema.has_evidence(["k"]) == bool(held)


def test_the_evidence_rule_is_in_the_digest() -> None:
    """Two parties whose schemas differ only in the rule decide differently: the handshake's
    schema digest must tell them apart."""
    schema = load_default_schema()
    digests = {schema_digest(replace(schema, min_evidence_groups=n)).hex() for n in (None, 1, 2, 3)}
    assert len(digests) == 4


def test_from_v7_a_city_is_no_evidence() -> None:
    """A partner that knows a name lists it once per birth year with a city it guesses (a few
    cities hold most people): under v6 the city's keys made the name and year two facts."""
    schema = load_default_schema()
    v6 = _shipped("default-v6.json")
    guessed = ["metaphone_names_year", "names", "family_locality"]
    assert v6.has_evidence(guessed) and not schema.has_evidence(guessed)
    assert schema.evidence_groups(["dob_locality"]) == 1  # the date of birth alone
    # v6 and v7 differ in that alone: same keys, weights and thresholds
    assert replace(schema, version=6, evidence=None, description="") == replace(v6, description="")
    fields = schema.evidence_fields()
    assert Field.LOCALITY not in fields[FieldGroup.ADDRESS]
    assert fields[FieldGroup.ADDRESS] == {Field.STREET, Field.POSTCODE}
    assert schema.evidence_fields().keys() == v6.evidence_fields().keys()


def test_evidence_member_round_trips_and_is_in_the_digest() -> None:
    schema = load_default_schema()
    assert validate_schema(schema_to_document(schema)) == schema
    canonical = schema_to_canonical(schema)
    assert canonical["evidence"] == {
        "address": ["postcode", "street"],
        "birth": ["birth_date", "birth_year_month"],
        "document": ["document_number"],
        "name": ["family", "family_part", "full_name", "given", "given_first"],
    }
    assert "evidence" not in schema_to_canonical(_shipped("default-v6.json"))
    narrower = replace(
        schema, evidence=tuple(e for e in schema.evidence or () if e[0].value != "document")
    )
    assert schema_digest(narrower) != schema_digest(schema)
    # a kind left out holds nothing
    assert not narrower.key_evidence()["document"]


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        ({"name": ["family"]}, "only with min_evidence_groups"),
        ([["name", "family"]], "must be an object"),
        ({"names": ["family"]}, "unknown kind 'names'"),
        ({"sex": ["sex"]}, "unknown kind 'sex'"),
        ({"name": "family"}, "evidence.name: must be a list of field names"),
        ({"name": ["surname"]}, "evidence.name: unknown field 'surname'"),
        ({"address": ["birth_date"]}, "'birth_date' is not a field of the address group"),
        ({"name": ["family", "family"]}, "'family' listed twice"),
        ({"name": []}, "evidence.name: an empty list"),
        ({"birth": ["birth_year"]}, "'birth_year' holds no evidence"),
        ({"address": ["region", "postcode"]}, "'region' holds no evidence"),
        ({}, "0 kinds listed, fewer than min_evidence_groups (1)"),
    ],
)
def test_evidence_member_errors(evidence: object, message: str) -> None:
    key = {"name": "k", "version": 1, "fields": ["family"]}
    doc: dict[str, object] = {"id": "t", "version": 1, "keys": [key], "evidence": evidence}
    if message != "only with min_evidence_groups":
        doc["min_evidence_groups"] = 1
    with pytest.raises(SchemaError) as caught:
        validate_schema(doc)
    assert any(message in e for e in caught.value.errors), caught.value.errors


def _shipped(name: str) -> LinkageSchema:
    from importlib import resources

    with resources.as_file(resources.files("xlink") / "data" / "schemas" / name) as path:
        return load_schema(path)
