"""The synthetic data generator: determinism, loadability, ground truth, corruption rates."""

from __future__ import annotations

import datetime
import re
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlink.records.loaders import load_csv
from xlink.records.model import PersonRecord
from xlink.synth import (
    OUTPUT_FILES,
    SynthData,
    build_synth,
    generate_synth,
    read_split,
    read_truth,
)
from xlink.synth.corrupt import ADDRESS_TAGS, DOB_TAGS, FORMAT_TAGS, NAME_TAGS, RATES

N = 5000


@pytest.fixture(scope="module")
def data() -> SynthData:
    return build_synth(N, 7)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_synth(out, 2000, 11)
    return out


@pytest.fixture(scope="module")
def loaded(written: Path) -> dict[str, dict[str, PersonRecord]]:
    out: dict[str, dict[str, PersonRecord]] = {}
    for side in ("ca", "us"):
        result = load_csv(
            written / f"{side}.csv", mapping=written / f"{side}.mapping.json", write_rejects=False
        )
        assert result.rejected == 0, [str(e) for r in result.rejects for e in r.errors][:5]
        out[side] = {r.record_id: r for r in result.records}
    return out


def _true_pairs(data: SynthData) -> set[tuple[str, str]]:
    us_of: dict[int, list[str]] = {}
    for r in data.us:
        us_of.setdefault(r.person, []).append(r.record_id)
    return {(c.record_id, u) for c in data.ca for u in us_of.get(c.person, [])}


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    first = build_synth(400, 3).files()
    assert build_synth(400, 3).files() == first
    other = build_synth(400, 4).files()
    assert other["ca.csv"] != first["ca.csv"] and other["truth.csv"] != first["truth.csv"]


def test_every_file_is_written_and_nothing_else(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted(OUTPUT_FILES)


def test_files_load_with_the_real_loaders_without_rejects(
    loaded: dict[str, dict[str, PersonRecord]],
) -> None:
    assert len(loaded["ca"]) == 2000 and len(loaded["us"]) == 2000
    assert all(re.fullmatch(r"CA-\d{7}", rid) for rid in loaded["ca"])
    assert all(re.fullmatch(r"US-\d{7}", rid) for rid in loaded["us"])


def test_truth_and_split_files_match_the_records(
    written: Path, loaded: dict[str, dict[str, PersonRecord]]
) -> None:
    import json

    manifest = json.loads((written / "manifest.json").read_text())
    truth = read_truth(written / "truth.csv")
    assert len(truth) == manifest["counts"]["true_pairs"] > 0
    assert all(ca in loaded["ca"] and us in loaded["us"] for ca, us in truth)
    lines = (written / "truth.csv").read_text().splitlines()
    assert lines[0] == "ca_record_id,us_record_id" and lines[1:] == sorted(lines[1:])
    split = read_split(written / "split.csv")
    assert set(split) == set(loaded["ca"])
    assert manifest["counts"]["ca_records"] == manifest["counts"]["us_records"] == 2000
    assert manifest["synthetic"] is True and manifest["seed"] == 11


def test_ids_do_not_reveal_matches(data: SynthData) -> None:
    same_number = sum(1 for ca, us in data.truth if ca[3:] == us[3:])
    assert same_number < 5
    first_half = sum(1 for ca, _ in data.truth if int(ca[3:]) <= N // 2)
    assert 0.4 < first_half / len(data.truth) < 0.6


def test_truth_is_exactly_the_same_person_pairs(data: SynthData) -> None:
    assert set(data.truth) == _true_pairs(data)
    assert list(data.truth) == sorted(data.truth)
    counts = data.manifest["counts"]
    assert isinstance(counts, dict)
    assert counts["true_pairs"] == len(data.truth)
    assert counts["ca_records"] == len(data.ca) == N == len(data.us) == counts["us_records"]


def test_true_pairs_agree_with_the_underlying_person(
    written: Path, loaded: dict[str, dict[str, PersonRecord]]
) -> None:
    """Regenerate the people and check uncorrupted fields against them."""
    again = build_synth(2000, 11)
    tags = {r.record_id: r.tags for r in (*again.ca, *again.us)}
    person_of = {r.record_id: again.population.people[r.person] for r in (*again.ca, *again.us)}
    checked = 0
    for ca, us in sorted(read_truth(written / "truth.csv"))[:400]:
        assert person_of[ca] is person_of[us]
        person = person_of[ca]
        for rid, side in ((ca, "ca"), (us, "us")):
            bd = loaded[side][rid].birth_date
            if not set(tags[rid]) & DOB_TAGS:
                assert bd is not None
                assert datetime.date(bd.year, bd.month or 0, bd.day or 0) == person.dob
                checked += 1
    assert checked > 600


def test_twins_and_household_members_are_not_true_pairs(data: SynthData) -> None:
    by_id = {r.record_id: r for r in (*data.ca, *data.us)}
    twins = {frozenset(t) for t in data.population.twins}
    assert twins
    for ca, us in data.truth:
        assert by_id[ca].person == by_id[us].person
        assert frozenset((by_id[ca].person, by_id[us].person)) not in twins
    people = data.population.people
    for a, b in data.population.twins:
        assert people[a].dob == people[b].dob and people[a].home == people[b].home
        assert people[a].family == people[b].family or people[a].sex != people[b].sex
        assert people[a].given.spellings[0] != people[b].given.spellings[0]


def test_twins_and_households_appear_across_the_two_sides(data: SynthData) -> None:
    """The traps exist: a twin on one side and the other twin on the other."""
    ca_people = {r.person for r in data.ca}
    us_people = {r.person for r in data.us}
    split_twins = [(a, b) for a, b in data.population.twins if a in ca_people and b in us_people]
    assert split_twins


def test_overlap_is_near_the_requested_share() -> None:
    for overlap in (0.2, 0.5, 0.9):
        d = build_synth(1000, 5, overlap=overlap)
        ca_people = {r.person for r in d.ca}
        us_people = {r.person for r in d.us}
        assert len(ca_people & us_people) / len(ca_people) == pytest.approx(overlap, abs=0.01)
        assert len(us_people) == len(ca_people)


def test_split_is_by_household_and_roughly_balanced(data: SynthData) -> None:
    assert set(data.split) == {r.record_id for r in data.ca}
    by_household: dict[int, set[str]] = {}
    for r in data.ca:
        by_household.setdefault(r.household, set()).add(data.split[r.record_id])
    assert all(len(s) == 1 for s in by_household.values())
    assert 0.45 < Counter(data.split.values())["dev"] / N < 0.55
    for a, b in data.population.twins:
        assert data.population.people[a].household == data.population.people[b].household


def test_duplicates_within_a_side_exist_at_the_documented_rate(data: SynthData) -> None:
    for records in (data.ca, data.us):
        extra = len(records) - len({r.person for r in records})
        assert extra == round(0.015 * N)


def test_every_corruption_kind_occurs(data: SynthData) -> None:
    kinds = NAME_TAGS | DOB_TAGS | ADDRESS_TAGS | FORMAT_TAGS
    kinds |= {"doc_typo", "doc_renewed", "sex_missing"}
    seen = Counter(t for r in (*data.ca, *data.us) for t in r.tags)
    assert {k for k in kinds if seen[k] == 0} == set()
    corruptions = data.manifest["corruptions"]
    assert isinstance(corruptions, dict)
    assert sum(corruptions["ca"].values()) + sum(corruptions["us"].values()) == sum(seen.values())


@pytest.mark.parametrize(
    "kind", ["given_typo", "family_typo", "dob_missing", "sex_missing", "address_moved"]
)
def test_flat_rates_are_near_the_documented_ones(data: SynthData, kind: str) -> None:
    rate = RATES[kind]
    assert isinstance(rate, float)
    count = sum(1 for r in (*data.ca, *data.us) if kind in r.tags)
    assert 0.6 * rate < count / (2 * N) < 1.4 * rate


def test_documents_are_on_the_documented_share_of_records(data: SynthData) -> None:
    ca_present = sum(1 for r in data.ca if r.row[10]) / N
    us_present = sum(1 for r in data.us if r.row[10]) / N
    assert ca_present == pytest.approx(0.40, abs=0.03)
    assert us_present == pytest.approx(0.60, abs=0.03)


def test_pair_difficulty_is_in_the_documented_bands(data: SynthData) -> None:
    rates = data.manifest["pair_rates"]
    assert isinstance(rates, dict)
    assert 0.15 <= rates["name_differs"] <= 0.25
    assert 0.045 <= rates["dob_differs"] <= 0.09
    assert 0.20 <= rates["address_differs"] <= 0.32


def test_names_are_varied_and_zipf_like(data: SynthData) -> None:
    families = Counter(r.row[1] for r in data.ca)
    top, top_count = families.most_common(1)[0]
    assert 0.005 < top_count / N < 0.05, top
    assert len(families) > 1500
    assert any(re.search("[а-яА-ЯіїєІЇЄ]", r.row[1] + r.row[2]) for r in data.ca)
    givens = Counter(r.row[3] for r in data.us)
    assert len(givens) > 400


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=80),
    seed=st.integers(min_value=0, max_value=2**32),
    overlap=st.floats(min_value=0.0, max_value=1.0),
)
def test_any_small_data_set_is_consistent(n: int, seed: int, overlap: float) -> None:
    d = build_synth(n, seed, overlap=overlap)
    assert len(d.ca) == len(d.us) == n
    assert set(d.truth) == _true_pairs(d)
    counts = d.manifest["counts"]
    assert isinstance(counts, dict) and counts["true_pairs"] == len(d.truth)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate_synth(out, n, seed, overlap=overlap)
        assert read_truth(out / "truth.csv") == set(d.truth)
        assert set(read_split(out / "split.csv")) == {r.record_id for r in d.ca}
        for side in ("ca", "us"):
            result = load_csv(
                out / f"{side}.csv", mapping=out / f"{side}.mapping.json", write_rejects=False
            )
            assert result.rejected == 0 and result.loaded == n


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_synth(0, 1)
    with pytest.raises(ValueError):
        generate_synth(tmp_path, 10, 1, overlap=1.5)
    assert not any(tmp_path.iterdir())


def test_progress_is_reported() -> None:
    seen: list[int] = []
    build_synth(12_000, 2, progress=seen.append)
    assert seen[:2] == [10_000, 20_000] and seen[-1] == 24_000
