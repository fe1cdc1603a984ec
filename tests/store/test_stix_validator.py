"""The STIX 2.1 export passes the OASIS validator (``stix2-validator``, a test extra) with no
error and no warning: a store holding releases of every category, with and without grading and
handling conditions, every TLP 2.0 marking, the CLI's ``xlink store export`` output, and the
stores the bundled demo fills. Also: ids are UUIDv4 and the same on every export of a release.

These tests import nothing from xlink's STIX module beyond ``to_stix_bundle``: the expected id
is recomputed here from the construction docs/store.md documents."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _officers import READER, enrol_agency_officers, export_act
from _store_support import (
    CA,
    MOU,
    SESSION,
    T0,
    US,
    make_record,
    open_store,
    seal,
)
from _two_agencies import exchanged_in_process
from stix2validator import ValidationOptions, validate_instance, validate_string

from xlink.policy import CategoryPolicy, Mou, Tlp
from xlink.policy.mou import PermittedAction
from xlink.records.model import AdmiraltyGrading, Category, HandlingCode
from xlink.release import ReleaseRecord
from xlink.store import ReleaseStore, to_stix_bundle

# Every check the validator has, at its defaults, plus the two opt-in ones that flag custom
# object types and custom properties: xlink's own properties are all inside its extension.
OPTIONS = ValidationOptions(version="2.1", strict_types=True, strict_properties=True)
# The id construction of docs/store.md, written out again here (not imported from xlink).
ID_DST = b"xlink/v1/stix-id"


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _expected_id(kind: str, name: str) -> str:
    digest = hashlib.sha256(_lp(ID_DST) + _lp(kind.encode()) + _lp(name.encode())).digest()
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return f"{kind}--{uuid.UUID(bytes=bytes(raw))}"


def _text(bundle: dict[str, object]) -> str:
    """The bundle as ``xlink store export`` writes it."""
    return json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False)


def assert_valid(text: str) -> None:
    """The validator finds no error and no warning in the bundle ``text``."""
    result = validate_string(text, OPTIONS)
    errors = [str(e) for e in result.errors]
    warnings = [str(w) for w in result.warnings or []]
    assert (result.is_valid, errors, warnings) == (True, [], [])


# -- a store holding several releases -------------------------------------------------------

# The sample MOU plus the one category it lacks, ``other``: TLP:RED, no grading required,
# released fields only payload (so the record has no name and no ``fields``).
_OTHER = CategoryPolicy(
    Category.OTHER,
    ("payload.remarks",),
    dataclasses.replace(
        MOU.categories[0].caveats,
        tlp=Tlp.RED,
        permitted_actions=PermittedAction.NONE,
        handling_code=HandlingCode.CONDITIONS,
        handling_conditions="Border screening only.",
        require_grading=False,
    ),
)
ALL_MOU: Mou = dataclasses.replace(MOU, categories=(*MOU.categories, _OTHER))


def several_records() -> list[ReleaseRecord]:
    """One release of each category the MOU allows, under :data:`ALL_MOU`: graded 3x5x2 and
    Admiralty, and ungraded; with handling conditions (C) and without (P)."""
    assert {p.category for p in ALL_MOU.categories} == set(Category)
    other = make_record(5, mou=ALL_MOU)
    return [
        make_record(1, mou=ALL_MOU),
        make_record(2, category=Category.SEX_OFFENDER, mou=ALL_MOU),
        make_record(3, category=Category.TRAVELLER, mou=ALL_MOU, grading=None),
        make_record(4, mou=ALL_MOU, grading=AdmiraltyGrading("B", 2)),
        dataclasses.replace(
            other,
            category=Category.OTHER,
            caveats=_OTHER.caveats,
            grading=None,
            fields={"payload.remarks": ("seen at the border",)},
        ),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReleaseStore]:
    with open_store(tmp_path / "store.db", mou=ALL_MOU) as opened:
        for record in several_records():
            opened.receive(seal(record, mou=ALL_MOU), expected_session_id=SESSION, now=T0)
        yield opened


def _read_all(store: ReleaseStore, *, later: timedelta = timedelta(0)) -> list[ReleaseRecord]:
    """Every record, as ``xlink store export`` reads them (``ReleaseStore.export``), ``later``
    after T0 (an officer's act is used once: a second export is a second act)."""
    now = T0 + later
    act = export_act(READER, agency=US, purpose="border-security", now=now)
    return list(store.export(act=act, now=now))


def test_store_export_validates(store: ReleaseStore) -> None:
    records = _read_all(store)
    assert {r.category for r in records} == set(Category)
    assert any(r.grading is None for r in records)
    assert_valid(_text(to_stix_bundle(records)))
    # The parsed-object API agrees, and so does the validator treating warnings as errors.
    strict = ValidationOptions(version="2.1", strict=True)
    result = validate_instance(to_stix_bundle(records), strict)
    assert result.is_valid and not result.errors


def test_every_tlp_marking_validates() -> None:
    records = [
        dataclasses.replace(
            make_record(10 + i), caveats=dataclasses.replace(MOU.categories[0].caveats, tlp=tlp)
        )
        for i, tlp in enumerate(Tlp)
    ]
    bundle = to_stix_bundle(records)
    markings = [o for o in bundle["objects"] if o["type"] == "marking-definition"]  # type: ignore[attr-defined,index]
    assert len(markings) == len(Tlp)
    assert_valid(_text(bundle))


def test_ids_are_uuid4_and_stable_across_exports(store: ReleaseStore) -> None:
    records = _read_all(store)
    first = to_stix_bundle(records)
    again = to_stix_bundle(_read_all(store, later=timedelta(hours=1)))  # a second export
    alone = to_stix_bundle(records[:1])  # the same release in another bundle
    assert _text(first) == _text(again)
    objects = {o["id"]: o for o in first["objects"]}  # type: ignore[attr-defined]
    for stix_id in [first["id"], *objects]:
        value = str(stix_id).partition("--")[2]
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122, stix_id
        assert str(parsed) == value  # canonical lower-case form
    for record in records:
        expected = _expected_id("identity", f"release:{record.release_id.hex()}")
        assert expected in objects
        assert objects[expected]["created_by_ref"] == _expected_id(
            "identity", f"agency:{record.originator}"
        )
    ids = sorted(r.release_id.hex() for r in records)
    assert first["id"] == _expected_id("bundle", "releases:" + ",".join(ids))
    alone_ids = {o["id"] for o in alone["objects"]}  # type: ignore[attr-defined]
    assert _expected_id("identity", f"release:{records[0].release_id.hex()}") in alone_ids
    assert alone["id"] != first["id"]


# -- the demo's stores ----------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
# The bundled files `xlink demo` exchanges (xlink.cli.cmd_demo.AGENCY_FILES).
DEMO_FILES = {
    CA: [DATA / "ca_watchlist.csv", DATA / "ca_sex_offenders.csv"],
    US: [DATA / "us_watchlist.csv", DATA / "us_travellers.csv"],
}


@pytest.mark.slow
def test_demo_stores_export_validates(tmp_path: Path) -> None:
    """The demo's exchange (the one exchange path, over a memory pair): each agency's store of
    the partner's releases exports to a bundle the validator accepts. US-DHS's releases to
    CA-RCMP include ungraded travellers (the issue's null gradings)."""
    ungraded = 0
    with exchanged_in_process(
        tmp_path, DEMO_FILES, passphrase=b"stix demo test, not secret", seed="stix"
    ) as run:
        now = datetime.now(UTC)
        for a in (CA, US):
            enrol_agency_officers(run.agencies[a], now)
            records = list(
                run.agencies[a].store.export(
                    act=export_act(READER, agency=a, purpose="border-security", now=now), now=now
                )
            )
            assert records
            ungraded += sum(r.grading is None for r in records)
            assert_valid(_text(to_stix_bundle(records)))
    assert ungraded  # the case the issue reported is in there
