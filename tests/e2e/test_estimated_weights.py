"""An MOU that says `weights = "estimated"`: two real agencies over mutual TLS on 127.0.0.1
estimate the match evidence from their own session, reach the same decision without another
message, release under it, and each records the estimate in its decision file and its audit
log (issue 13)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _two_agencies import CA, DATA, US, TwoAgencies, small_files

from xlink.agency import AgencyOutcome
from xlink.audit import AuditEvent
from xlink.conformance.kit import AGENT_IDS, DISJOINT_IDS, subset_file
from xlink.errors import SchemaError
from xlink.linkage.link_rule import MIN_LIKELY
from xlink.linkage.schema import load_default_schema
from xlink.policy import load_mou, mou_to_canonical
from xlink.synth import generate_synth

PASSPHRASE = b"estimated weights tests, not secret"


def _decided(pair: TwoAgencies, agency: str) -> dict[str, Any]:
    (fields,) = [f for kind, f in pair.audit(agency) if kind is AuditEvent.DECIDED]
    return fields


def _decision_file(pair: TwoAgencies, agency: str, session: str) -> dict[str, Any]:
    path = pair.base / agency / "matches" / f"{session}.decision.json"
    assert path.stat().st_mode & 0o077 == 0
    return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]


@pytest.mark.slow
def test_both_agencies_estimate_the_same_evidence_and_release_under_it(tmp_path: Path) -> None:
    # xlink synth's lists, 1,200 records each: enough candidate pairs to estimate from
    generate_synth(tmp_path / "data", 1200, 5)
    files = {CA: [tmp_path / "data" / "ca.csv"], US: [tmp_path / "data" / "us.csv"]}
    linkage = {"weights": "estimated", "links": "best-of-either", "match_threshold": -1000.0}
    pair = TwoAgencies(tmp_path, files, passphrase=PASSPHRASE, timeout=60.0, linkage=linkage)
    mou = load_mou(pair.ceremony.mou).mou
    assert (mou.weights, mou.links) == ("estimated", "best-of-either")
    out = pair.run()
    for agency, outcome in out.items():
        assert isinstance(outcome, AgencyOutcome), (agency, outcome)
        assert outcome.audit_ok
    assert out[CA].decided == out[US].decided > 300  # same pairs: the transfer checked them
    session = out[CA].session_id
    ca, us = _decision_file(pair, CA, session), _decision_file(pair, US, session)
    assert ca["weights"] == "estimated" and ca["links"] == "best-of-either"
    assert ca["estimate"] is not None and ca["estimate_note"] is None
    assert ca["estimate"] == us["estimate"] and ca["threshold"] == us["threshold"]
    for agency in (CA, US):
        fields = _decided(pair, agency)
        assert fields["weights"] == "estimated" and fields["links"] == "best-of-either"
        assert fields["decided"] == out[agency].decided
        assert fields["expected"] == ca["estimate"]["expected_matches"]
        assert float(fields["certain"]) == ca["estimate"]["certain_threshold"]
        raw = (pair.base / agency / "matches" / f"{session}.decision.json").read_bytes()
        assert fields["digest"] == hashlib.sha256(raw).hexdigest()
    # released under it: every decided match went out (the MOU's floor is far below)
    assert sum(out[CA].released.values()) > 300 and sum(out[US].released.values()) > 300


@pytest.mark.slow
def test_a_registry_of_events_is_linked_best_of_either_when_the_rule_is_left_to_the_pairs(
    tmp_path: Path,
) -> None:
    """A census against a registry that holds a person once per event (xlink synth's
    names-dob-sex profile), under an MOU that leaves the link rule to the pairs: both agencies
    find the registry in their pairs, choose best-of-either, and decide and release the same
    pairs, a person keeping several events. (The profile's records are of category
    ``other``, which the test MOU does not list, and such records take no part in an exchange:
    the mappings file them as ``traveller``.)"""
    generate_synth(tmp_path / "data", 3000, 3, profile="names-dob-sex")
    for side in ("ca", "us"):
        mapping = tmp_path / "data" / f"{side}.mapping.json"
        mapping.write_text(mapping.read_text("utf-8").replace('"other"', '"traveller"'), "utf-8")
    files = {CA: [tmp_path / "data" / "ca.csv"], US: [tmp_path / "data" / "us.csv"]}
    linkage = {"weights": "estimated", "links": "auto", "match_threshold": -1000.0}
    pair = TwoAgencies(tmp_path, files, passphrase=PASSPHRASE, timeout=60.0, linkage=linkage)
    out = pair.run()
    for agency, outcome in out.items():
        assert isinstance(outcome, AgencyOutcome), (agency, outcome)
    assert out[CA].decided == out[US].decided > 300  # same pairs: the transfer checked them
    session = out[CA].session_id
    ca, us = _decision_file(pair, CA, session), _decision_file(pair, US, session)
    assert ca["links"] == us["links"] == "best-of-either"
    assert ca["link_choice"]["links"] == "best-of-either" and ca["link_choice"]["note"] is None
    # the same evidence, seen from the two sides
    assert ca["link_choice"]["shared_left"] == us["link_choice"]["shared_right"] > 0
    assert ca["estimate"] == us["estimate"]
    for agency in (CA, US):
        assert _decided(pair, agency)["links_asked"] == "auto"
        # every decided pair released: a person's events share their tokens, and the day of
        # claims, which would take the second event for another person, applies one-to-one
        assert out[agency].released_total == out[agency].decided
    # census people keep several registry events each
    rows = (pair.base / CA / "matches" / f"{session}.csv").read_text("utf-8").splitlines()[1:]
    people = Counter(row.split(",")[1] for row in rows)
    assert sum(1 for n in people.values() if n > 1) > 100


def test_too_small_a_session_decides_with_fixed_weights_and_says_why(tmp_path: Path) -> None:
    linkage = {"weights": "estimated", "match_threshold": -1000.0}
    pair = TwoAgencies(
        tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0, linkage=linkage
    )
    out = pair.run()
    assert all(isinstance(o, AgencyOutcome) for o in out.values())
    decision = _decision_file(pair, CA, out[CA].session_id)
    assert decision["weights"] == "estimated" and decision["estimate"] is None
    assert "fixed weights" in decision["estimate_note"]
    # the schema's own threshold, not the MOU's floor far below it
    assert decision["threshold"] == load_default_schema().threshold
    assert "expected" not in _decided(pair, CA) and "certain" not in _decided(pair, CA)


def test_a_fixed_weights_exchange_audits_its_decision_too(tmp_path: Path) -> None:
    pair = TwoAgencies(tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0)
    out = pair.run()
    assert all(isinstance(o, AgencyOutcome) for o in out.values())
    fields = _decided(pair, CA)
    assert fields["weights"] == "fixed" and fields["links"] == "one-to-one"
    assert "expected" not in fields
    decision = _decision_file(pair, CA, out[CA].session_id)
    assert decision["estimate"] is None and decision["decided"] == out[CA].decided


def test_the_mou_members_are_checked_and_left_out_of_the_digest_when_default(
    tmp_path: Path,
) -> None:
    pair = TwoAgencies(tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0)
    fixed = load_mou(pair.ceremony.mou).mou
    assert (fixed.weights, fixed.links) == ("fixed", "one-to-one")
    linkage = mou_to_canonical(fixed)["linkage"]
    assert isinstance(linkage, dict) and "weights" not in linkage and "links" not in linkage
    other = TwoAgencies(
        tmp_path / "other",
        small_files(tmp_path),
        passphrase=PASSPHRASE,
        timeout=10.0,
        linkage={"weights": "estimated"},
    )
    estimated = load_mou(other.ceremony.mou).mou
    linkage = mou_to_canonical(estimated)["linkage"]
    assert isinstance(linkage, dict) and linkage["weights"] == "estimated"
    with pytest.raises(SchemaError, match=r"linkage\.weights: must be one of fixed, estimated"):
        TwoAgencies(
            tmp_path / "bad",
            small_files(tmp_path),
            passphrase=PASSPHRASE,
            timeout=10.0,
            linkage={"weights": "guessed"},
        )


def test_an_mou_that_leaves_the_link_rule_to_the_pairs_audits_the_choice(tmp_path: Path) -> None:
    """``links = "auto"``: both agencies choose the rule from the session's pairs, decide by
    it, and record what was asked and the evidence; these few pairs are too few to estimate
    from, so the likely matches are counted on the schema's own weights, and too few to tell
    by: the rule is one-to-one and the decision file says why."""
    linkage = {"links": "auto"}
    pair = TwoAgencies(
        tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0, linkage=linkage
    )
    assert load_mou(pair.ceremony.mou).mou.links == "auto"
    out = pair.run()
    assert all(isinstance(o, AgencyOutcome) for o in out.values())
    for agency in (CA, US):
        fields = _decided(pair, agency)
        assert fields["links"] == "one-to-one" and fields["links_asked"] == "auto"
        assert 0 < fields["likely"] < MIN_LIKELY
        choice = _decision_file(pair, agency, out[agency].session_id)["link_choice"]
        assert choice["asked"] == "auto" and choice["links"] == "one-to-one"
        assert choice["note"].startswith("the schema's own weights")
        assert "needed to estimate" in choice["note"] and "needed to tell" in choice["note"]


def test_lists_that_share_no_one_leave_an_auto_link_rule_one_to_one(tmp_path: Path) -> None:
    """No candidate pair at all (the lists share no one, which a partner can always bring
    about): with ``links = "auto"`` both agencies take one-to-one and say why, and the exchange
    ends as one that found nothing (choosing the rule raised numpy's ValueError on both sides
    once the likely matches were counted on the schema's own weights)."""
    files = {
        US: [subset_file(DATA / "us_watchlist.csv", tmp_path / "us-data", AGENT_IDS)],
        CA: [subset_file(DATA / "ca_watchlist.csv", tmp_path / "ca-data", DISJOINT_IDS)],
    }
    pair = TwoAgencies(
        tmp_path, files, passphrase=PASSPHRASE, timeout=10.0, linkage={"links": "auto"}
    )
    out = pair.run()
    for agency in (CA, US):
        outcome = out[agency]
        assert isinstance(outcome, AgencyOutcome), outcome
        fields = _decided(pair, agency)
        assert fields["candidates"] == fields["decided"] == fields["likely"] == 0
        assert fields["links"] == "one-to-one" and fields["links_asked"] == "auto"
        choice = _decision_file(pair, agency, outcome.session_id)["link_choice"]
        assert choice["note"].startswith("no candidate pair")


def test_the_decision_is_made_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding can take a partner-shaped while (an estimate near its bounds, docs/evaluation.md
    §6); the hub agent runs other partners' jobs on the same event loop, so the exchange
    decides in a worker thread, never on the loop's."""
    import threading

    import xlink.agency._exchange as exchange

    loop_threads: set[int] = set()
    decided_on: list[int] = []
    real = exchange.decide

    def watched(*args: Any, **kwargs: Any) -> Any:
        decided_on.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(exchange, "decide", watched)
    pair = TwoAgencies(tmp_path, small_files(tmp_path), passphrase=PASSPHRASE, timeout=10.0)
    loop_threads.add(threading.get_ident())  # asyncio.run runs its loop in this thread
    out = pair.run()
    assert all(isinstance(o, AgencyOutcome) for o in out.values())
    assert len(decided_on) == 2 and not loop_threads & set(decided_on)
