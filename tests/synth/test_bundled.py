"""The bundled sample (xlink/data) is exactly what ``python -m xlink.synth.bundled`` writes, and
it holds what the demo, the examples and the tests rely on."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

import xlink
from xlink.records.loaders import BadFieldPolicy, load_csv
from xlink.records.model import PersonRecord
from xlink.synth.agencies import BAD_ROWS, CA_SO, CA_WL, FILES, MAPPINGS, US_TR, US_WL
from xlink.synth.bundled import (
    OVERLAPS,
    SIZES,
    TRIPLES,
    BundledSample,
    build_bundled,
    main,
)
from xlink.synth.corrupt import DOB_TAGS

DATA = Path(xlink.__file__).resolve().parent / "data"
CATEGORY = {CA_WL: "watchlist", CA_SO: "sex_offender", US_WL: "watchlist", US_TR: "traveller"}
# What the loader says about each kind of deliberately bad row.
REJECT_REASON = {
    "handling code C without conditions": "required when the handling code is C",
}


@pytest.fixture(scope="module")
def sample() -> BundledSample:
    return build_bundled()


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict[str, PersonRecord]]:
    out: dict[str, dict[str, PersonRecord]] = {}
    for file in FILES:
        mapping = DATA / file.replace(".csv", ".mapping.json")
        result = load_csv(DATA / file, mapping=mapping, write_rejects=False)
        out[file] = {r.record_id: r for r in result.records}
    return out


def test_regenerating_reproduces_the_bundled_files_exactly(tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    written = sorted(p.name for p in tmp_path.iterdir())
    bundled = sorted(
        p.name
        for p in DATA.iterdir()
        if p.is_file()
        and p.suffix in (".csv", ".json")
        and ".rejects." not in p.name
        and ".field-errors." not in p.name
    )
    assert written == bundled
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), (
            f"xlink/data/{name} is stale: run python -m xlink.synth.bundled --out xlink/data"
        )


def test_same_seed_same_bytes_another_seed_not(sample: BundledSample) -> None:
    assert build_bundled().files() == sample.files()
    other = build_bundled(1).files()
    assert all(other[f] != sample.files()[f] for f in (*FILES, "truth.csv"))


def test_files_keep_their_sizes_and_the_manifest_its_bookkeeping(sample: BundledSample) -> None:
    manifest = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["synthetic"] is True and manifest["generator"]["name"] == "xlink-synth"
    for file in FILES:
        info = manifest["files"][file]
        bad = len(BAD_ROWS[file])
        assert (info["loaded"], info["rejected"], info["rows"]) == (
            SIZES[file],
            bad,
            SIZES[file] + bad,
        )
        assert sorted(info["reject_reasons"]) == sorted(reason for reason, _ in BAD_ROWS[file])
        lines = [n for n, r in enumerate(sample.rows[file], start=2) if r.bad]
        assert info["reject_lines"] == lines
    assert manifest["truth"]["pairs"] == len(sample.truth)


def test_the_bad_rows_are_rejected_for_their_reason(sample: BundledSample) -> None:
    for file in FILES:
        mapping = DATA / file.replace(".csv", ".mapping.json")
        # REJECT_ROW: by default a row whose only fault is a field a record may lack (a bad
        # date, a handling code C without conditions) loads without it (tests/records)
        result = load_csv(
            DATA / file, mapping=mapping, bad_field=BadFieldPolicy.REJECT_ROW, write_rejects=False
        )
        bad = {n: r.bad for n, r in enumerate(sample.rows[file], start=2) if r.bad}
        assert {r.line for r in result.rejects} == set(bad)
        for reject in result.rejects:
            (error,) = reject.errors  # each bad row is broken in one way only
            expected = REJECT_REASON.get(bad[reject.line], bad[reject.line])
            assert error.reason.startswith(expected), (file, reject.line, error.reason)


def test_truth_is_exactly_the_same_person_pairs(sample: BundledSample) -> None:
    good = [r for rows in sample.rows.values() for r in rows if not r.bad]
    ca = [r for r in good if r.file in (CA_WL, CA_SO)]
    us = [r for r in good if r.file in (US_WL, US_TR)]
    pairs = {
        (c.file, c.record_id, u.file, u.record_id) for c in ca for u in us if c.person == u.person
    }
    assert set(sample.truth) == pairs and list(sample.truth) == sorted(pairs)
    person = {r.record_id: r.person for r in good}
    twins = {frozenset(t) for t in sample.twins}
    assert all(frozenset((person[c], person[u])) not in twins for _, c, _, u in sample.truth)
    # about a fifth of each list is on the other side, as OVERLAPS and TRIPLES say
    by_files = Counter((cf, uf) for cf, _, uf, _ in sample.truth)
    expected = Counter({(c, u): n for c, u, n in OVERLAPS})
    expected[(CA_WL, US_TR)] += TRIPLES
    assert by_files == expected


def test_truth_file_lists_the_pairs_and_both_records_corruptions(sample: BundledSample) -> None:
    lines = (DATA / "truth.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "ca_file,ca_record_id,us_file,us_record_id,ca_corruptions,us_corruptions"
    assert [tuple(line.split(",")[:4]) for line in lines[1:]] == list(sample.truth)


def test_records_load_with_their_category_and_true_dates(
    sample: BundledSample, loaded: dict[str, dict[str, PersonRecord]]
) -> None:
    checked = 0
    for file in FILES:
        assert {r.category.value for r in loaded[file].values()} == {CATEGORY[file]}
        for r in sample.rows[file]:
            if r.bad or set(r.tags) & DOB_TAGS:
                continue
            bd = loaded[file][r.record_id].birth_date
            dob = sample.people[r.person].dob
            assert bd is not None and (bd.year, bd.month, bd.day) == (dob.year, dob.month, dob.day)
            checked += 1
    assert checked > 1200


def test_agency_layouts(loaded: dict[str, dict[str, PersonRecord]]) -> None:
    for file in FILES:
        mapping = json.loads((DATA / file.replace(".csv", ".mapping.json")).read_text())
        assert mapping == MAPPINGS[file]
    assert (DATA / CA_SO).read_bytes().startswith(b"\xef\xbb\xbf")  # an Excel export
    assert not (DATA / CA_WL).read_bytes().startswith(b"\xef\xbb\xbf")
    # US dates are MM/DD/YYYY (or partial); some with a day above 12 show it
    with (DATA / US_WL).open(encoding="utf-8", newline="") as f:
        us_dob = [row["dob"] for row in csv.DictReader(f)]
    assert all(re.fullmatch(r"(\d\d/\d\d/\d{4}|\d\d/\d{4}|\d{4}|)", d) for d in us_dob)
    assert any(int(d[3:5]) > 12 for d in us_dob if len(d) == 10)
    # every traveller shows a passport
    assert all(r.documents for r in loaded[US_TR].values())
