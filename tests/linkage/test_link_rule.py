"""Choosing the link rule from a session's pairs, with no labels (xlink.linkage.link_rule,
decide(links="auto"))."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_estimate import SCHEMA, _as_source, _observe, _weighted

import xlink.decide
from xlink.decide import ESTIMATED, FIXED, decide
from xlink.errors import EstimationError
from xlink.linkage import estimate as estimate_module
from xlink.linkage import link_rule
from xlink.linkage.link_rule import AUTO, MIN_LIKELY, SHARED_SHARE, choose_link_rule
from xlink.linkage.scoring import BEST_OF_EITHER, ONE_TO_ONE

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def households(seed: int, events: int = 1, twice: float = 0.0, homes: int = 400) -> Columns:
    """Candidate pairs of two lists of the same households of three (a family name and a
    postcode each, which household members share). The left list holds each person once; the
    right list holds each person ``events`` times (a registry of events), or, with ``events``
    1, a share ``twice`` of them twice (listed twice by mistake). Every left person meets
    every right record of their household; fields agree as for the same person or for a
    relative, and are missing 5 % of the time. Returns left, right, agree, present, true."""
    rng = np.random.default_rng(seed)
    same = np.array([0.97, 0.95, 0.97, 0.9])  # given, family, birth date, postcode
    relative = np.array([0.03, 0.95, 0.01, 0.95])
    left: list[int] = []
    right: list[int] = []
    true: list[bool] = []
    record = 0
    for home in range(homes):
        people = range(home * 3, home * 3 + 3)
        records = []
        for person in people:
            copies = events if events > 1 else 1 + int(rng.random() < twice)
            records += [(record + c, person) for c in range(copies)]
            record += copies
        for a in people:
            for r, b in records:
                left.append(a), right.append(r), true.append(a == b)
    return _observe(rng, left, right, true, same, relative)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("events", [2, 3])
def test_a_registry_of_events_is_linked_best_of_either(seed: int, events: int) -> None:
    left, right, agree, present, _ = households(seed, events=events)
    choice = choose_link_rule(SCHEMA, left, right, agree, present)
    assert choice.links == BEST_OF_EITHER and choice.note is None
    assert choice.shared_left >= SHARED_SHARE * choice.likely > 0
    assert choice.estimate is not None and choice.estimate.links == BEST_OF_EITHER


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("twice", [0.0, 0.05])
def test_lists_that_hold_each_person_once_stay_one_to_one(seed: int, twice: float) -> None:
    """Including a list with one person in twenty listed twice by mistake: the certain
    threshold handles those, not the link rule."""
    left, right, agree, present, _ = households(seed, twice=twice)
    choice = choose_link_rule(SCHEMA, left, right, agree, present)
    assert choice.links == ONE_TO_ONE and choice.likely > 500
    assert max(choice.shared_left, choice.shared_right) < SHARED_SHARE * choice.likely


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.sampled_from([1, 2]))
def test_the_choice_does_not_depend_on_pair_order_or_side(
    seed: int, mirror: bool, events: int
) -> None:
    """Both parties see the same pairs, one's left being the other's right, in any order,
    some given twice: they must choose the same rule on the same evidence (the sides
    swapped)."""
    left, right, agree, present, _ = households(seed % 7, events=events, homes=150)
    again = np.flatnonzero(np.random.default_rng(seed + 1).random(len(left)) < 0.1)
    left, right, agree, present = (
        np.concatenate([c, c[again]]) for c in (left, right, agree, present)
    )
    first = choose_link_rule(SCHEMA, left, right, agree, present)
    order = np.random.default_rng(seed).permutation(len(left))
    a, b = (right, left) if mirror else (left, right)
    second = choose_link_rule(SCHEMA, a[order], b[order], agree[order], present[order])
    assert second.links == first.links and second.likely == first.likely
    shared = (second.shared_left, second.shared_right)
    assert (shared[::-1] if mirror else shared) == (first.shared_left, first.shared_right)
    assert second.estimate == first.estimate


def test_pairs_too_few_to_estimate_from_are_told_by_the_schemas_own_weights() -> None:
    """Two short lists give fewer candidate pairs than an estimate needs. The likely matches
    are then those the schema's own weights put at or above its threshold (what decide()
    falls back to for the decision), so a short registry of events is still linked
    best-of-either (it was one-to-one, keeping one event per person) and a short list that
    holds each person once stays one-to-one."""
    left, right, agree, present, _ = households(3, events=3, homes=5)
    assert len(left) < estimate_module.MIN_PAIRS
    choice = choose_link_rule(SCHEMA, left, right, agree, present)
    assert choice.links == BEST_OF_EITHER and choice.estimate is None
    assert choice.note is not None and choice.note.startswith("the schema's own weights")
    assert "needed to estimate" in choice.note
    assert choice.shared_left >= SHARED_SHARE * choice.likely >= MIN_LIKELY * SHARED_SHARE
    assert choice.to_dict()["asked"] == AUTO and choice.to_dict()["note"] == choice.note
    left, right, agree, present, _ = households(3, homes=20)
    assert len(left) < estimate_module.MIN_PAIRS
    once = choose_link_rule(SCHEMA, left, right, agree, present)
    assert once.links == ONE_TO_ONE and once.estimate is None and once.likely >= MIN_LIKELY
    assert once.note is not None and once.note.startswith("the schema's own weights")


def registry_without_rivals(seed: int, people: int = 400, events: int = 3) -> Columns:
    """A registry of events whose candidates are nearly all its people's own events: each
    left person meets their ``events`` right records and nobody else's, but for one stranger
    pair in forty. Hardly any pair is dominated on both sides, too few to estimate from."""
    rng = np.random.default_rng(seed)
    left: list[int] = []
    right: list[int] = []
    true: list[bool] = []
    for person in range(people):
        for event in range(events):
            left.append(person), right.append(person * events + event), true.append(True)
    for _ in range(people * events // 40):
        a, b = int(rng.integers(people)), int(rng.integers(people * events))
        left.append(a), right.append(b), true.append(b // events == a)
    same = np.array([0.97, 0.95, 0.97, 0.9])
    stranger = np.array([0.05, 0.1, 0.01, 0.05])
    return _observe(rng, left, right, true, same, stranger)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_registry_whose_candidates_are_nearly_all_matches_is_linked_best_of_either(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enough pairs, too few dominated ones to estimate from (two clean lists): the schema's
    own weights tell the registry of events, and decide() links it best-of-either with them,
    keeping every event (one-to-one kept one per person). The estimates the choice tried are
    not tried again by decide() (a partner can make each one cost 64 comparisons a pair)."""
    left, right, agree, present, true = registry_without_rivals(seed)
    assert len(left) >= estimate_module.MIN_PAIRS
    with pytest.raises(EstimationError, match="dominated"):
        estimate_module.estimate(SCHEMA, left, right, agree, present, links=BEST_OF_EITHER)
    choice = choose_link_rule(SCHEMA, left, right, agree, present)
    assert choice.links == BEST_OF_EITHER and choice.estimate is None
    assert choice.note is not None and "dominated" in choice.note
    assert "; none through the right records either: " in choice.note  # strangers are rare
    source = _as_source(left, right, agree, present)
    tried: list[str | None] = []
    real = link_rule.estimate

    def counted(*args: object, **kwargs: object) -> object:
        tried.append(kwargs.get("once"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(link_rule, "estimate", counted)
    monkeypatch.setattr(xlink.decide, "estimate", counted)
    auto = decide(source, SCHEMA, weights=ESTIMATED, links=AUTO)
    assert tried == [None, "right"]  # both sides, then through the events: once each
    tried.clear()
    named = decide(source, SCHEMA, weights=ESTIMATED, links=BEST_OF_EITHER)
    assert tried == [None, "right"] and named.matches == auto.matches  # the rule named
    assert auto.links == BEST_OF_EITHER and auto.estimate is None
    assert auto.estimate_note is not None and "dominated" in auto.estimate_note
    truth = {(f"L{a}", int(b)) for a, b, t in zip(left, right, true, strict=True) if t}
    found = {(m.local_record_id, m.peer_ref) for m in auto.matches}
    one = {(m.local_record_id, m.peer_ref) for m in decide(source, SCHEMA).matches}
    assert len(found & truth) > 2 * len(one & truth)
    assert len(found - truth) <= 0.01 * len(found)


def registry_of_a_few(seed: int, people: int = 2000, events: int = 3) -> Columns:
    """A list of people (left), a fifth of whom have ``events`` records each on a registry
    (right); three events in ten also meet a namesake among the people without events (same
    family name, often the same postcode). A namesake has no other pair, so hardly a pair is
    dominated on both sides; through its event, the namesake's pair is dominated by the
    event's own person."""
    rng = np.random.default_rng(seed)
    listed = people // 5
    left: list[int] = []
    right: list[int] = []
    true: list[bool] = []
    for person in range(listed):
        for event in range(events):
            record = person * events + event
            left.append(person), right.append(record), true.append(True)
            if rng.random() < 0.3:
                namesake = listed + int(rng.integers(people - listed))
                left.append(namesake), right.append(record), true.append(False)
    same = np.array([0.97, 0.95, 0.97, 0.9])
    namesakes = np.array([0.3, 0.9, 0.02, 0.3])
    return _observe(rng, left, right, true, same, namesakes)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_registry_is_estimated_from_the_pairs_dominated_through_its_events(seed: int) -> None:
    """Too few pairs dominated on both sides to estimate from; the schema's own weights show
    a registry on the right (the people's records share their likely matches, the events do
    not). An event is one person's, so a pair its own person's pair dominates is a non-match:
    the estimate is made from those, and turns away most of the namesakes that the schema's
    own weights, under best-of-either, decide (each is its namesake's lone candidate)."""
    left, right, agree, present, true = registry_of_a_few(seed)
    with pytest.raises(EstimationError, match="dominated"):
        estimate_module.estimate(SCHEMA, left, right, agree, present, links=BEST_OF_EITHER)
    through = estimate_module.dominated_pairs(left, right, agree, BEST_OF_EITHER, once="right")
    assert through.sum() >= estimate_module.MIN_DOMINATED and true[through].mean() < 0.05
    choice = choose_link_rule(SCHEMA, left, right, agree, present)
    assert choice.links == BEST_OF_EITHER and choice.shared_right < choice.shared_left
    assert choice.note is not None and choice.note.startswith("the schema's own weights")
    assert choice.estimate is not None and choice.estimate.once == "right"
    assert choice.estimate.to_dict()["dominated_through"] == "right"
    source = _as_source(left, right, agree, present)
    truth = {(f"L{a}", int(b)) for a, b, t in zip(left, right, true, strict=True) if t}
    for links in (AUTO, BEST_OF_EITHER):  # the rule chosen, or named in the MOU
        estimated = decide(source, SCHEMA, weights=ESTIMATED, links=links)
        assert estimated.estimate == choice.estimate and estimated.estimate_note is None
        found = {(m.local_record_id, m.peer_ref) for m in estimated.matches}
        fixed = {
            (m.local_record_id, m.peer_ref) for m in decide(source, SCHEMA, links=links).matches
        }
        assert len(fixed - truth) > 100 and len(found - truth) < 0.2 * len(fixed - truth)
        assert len(found & truth) > 0.97 * len(fixed & truth)
    assert choice.note.endswith("estimated through the right records, each one event")
    # the other party sees the same pairs mirrored: the same scores, its left the side named,
    # and under a floor on the schema's own weights, the same pairs decided
    mirrored = choose_link_rule(SCHEMA, right, left, agree, present)
    assert mirrored.estimate is not None and mirrored.estimate.once == "left"
    assert dataclasses.replace(mirrored.estimate, once="right") == choice.estimate
    floor = 2.0
    ours = decide(source, SCHEMA, floor, weights=ESTIMATED, links=AUTO)
    theirs = decide(
        _as_source(right, left, agree, present), SCHEMA, floor, weights=ESTIMATED, links=AUTO
    )
    assert ours.matches and all(m.policy_score >= floor for m in ours.matches)
    assert len(ours.matches) < len(decide(source, SCHEMA, weights=ESTIMATED, links=AUTO).matches)
    pairs = {(m.local_record_id, m.peer_ref) for m in ours.matches}
    assert pairs == {(f"L{m.peer_ref}", int(m.local_record_id[1:])) for m in theirs.matches}


def test_the_side_that_matches_once_is_the_side_that_does_not_share() -> None:
    """A registry's records (events) do not share their likely matches, the other list's do
    (a person, several events): the registry is the side named. When both sides share (two
    registries) or neither does, no side's records are known to match once, and no estimate
    is made through one side's records."""
    for shared, once in (([50, 10], "right"), ([10, 50], "left"), ([50, 50], None), ([1, 2], None)):
        assert link_rule._once(shared, 100) == once
    with pytest.raises(ValueError, match="best-of-either"):
        estimate_module.dominated_pairs([0], [0], [1], ONE_TO_ONE, once="right")
    with pytest.raises(ValueError, match="once="):
        estimate_module.estimate(SCHEMA, [0], [0], [1], [1], links=BEST_OF_EITHER, once="both")


def test_too_few_likely_matches_to_tell_are_linked_one_to_one_and_say_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # enough pairs to estimate from, too few likely matches to tell by: one-to-one
    left, right, agree, present, _ = households(1, events=3, homes=10)
    enough = choose_link_rule(SCHEMA, left, right, agree, present)
    assert enough.links == BEST_OF_EITHER and enough.likely >= MIN_LIKELY
    assert enough.note is None
    monkeypatch.setattr(link_rule, "MIN_LIKELY", enough.likely + 1)
    few = choose_link_rule(SCHEMA, left, right, agree, present)
    assert few.links == ONE_TO_ONE and few.estimate is not None
    assert few.note is not None and "likely matches" in few.note
    # and with the schema's own weights, both reasons are given
    left, right, agree, present, _ = households(3, events=3, homes=5)
    fixed = choose_link_rule(SCHEMA, left, right, agree, present)
    monkeypatch.setattr(link_rule, "MIN_LIKELY", fixed.likely + 1)
    few = choose_link_rule(SCHEMA, left, right, agree, present)
    assert few.links == ONE_TO_ONE and few.note is not None
    assert few.note.startswith("the schema's own weights") and "likely matches" in few.note


def test_decide_auto_records_the_rule_it_chose_and_decides_by_it() -> None:
    left, right, agree, present, true = households(5, events=2)
    source = _as_source(left, right, agree, present)
    auto = decide(source, SCHEMA, weights=ESTIMATED, links=AUTO)
    assert auto.links == BEST_OF_EITHER and auto.link_choice is not None
    assert auto.estimate is auto.link_choice.estimate  # estimated once, under the rule chosen
    assert auto.matches == decide(source, SCHEMA, weights=ESTIMATED, links=BEST_OF_EITHER).matches
    # a person's every event is kept: far more true pairs than one-to-one keeps
    truth = {(f"L{a}", int(b)) for a, b, t in zip(left, right, true, strict=True) if t}
    one = decide(source, SCHEMA, weights=ESTIMATED, links=ONE_TO_ONE)
    found = {(m.local_record_id, m.peer_ref) for m in auto.matches} & truth
    assert len(found) > 1.5 * len({(m.local_record_id, m.peer_ref) for m in one.matches} & truth)
    # with fixed weights the rule is chosen the same way, and no estimate decides
    fixed = decide(source, SCHEMA, weights=FIXED, links=AUTO)
    assert fixed.links == BEST_OF_EITHER and fixed.estimate is None
    assert fixed.link_choice == auto.link_choice
    # asked for a rule, no choice is made or recorded
    assert decide(source, SCHEMA, weights=FIXED, links=ONE_TO_ONE).link_choice is None
    with pytest.raises(ValueError, match="unknown link rule"):
        decide(source, SCHEMA, links="many-to-many")


# -- a dishonest partner ----------------------------------------------------------------------


def test_a_partner_listing_our_people_twice_moves_the_rule_but_not_the_floor() -> None:
    """With ``auto`` the partner's list is evidence, so a partner can list every person
    twice to get best-of-either, which keeps more pairs. What it cannot move is the floor on
    the signed schema's own weights: no pair below it is decided under either rule. An MOU
    that names its rule is not moved at all."""
    left, right, agree, present, _ = households(11)
    honest = decide(_as_source(left, right, agree, present), SCHEMA, links=AUTO)
    assert honest.links == ONE_TO_ONE
    # every right record listed a second time, recorded alike
    offset = int(right.max()) + 1
    doubled = _as_source(
        np.concatenate([left, left]),
        np.concatenate([right, right + offset]),
        np.concatenate([agree, agree]),
        np.concatenate([present, present]),
    )
    schema = _weighted(certain=None)  # one bit per agreeing key
    floor = 3.0
    moved = decide(doubled, schema, floor, weights=ESTIMATED, links=AUTO)
    assert moved.links == BEST_OF_EITHER
    assert moved.matches and all(m.policy_score >= floor for m in moved.matches)
    named = decide(doubled, schema, floor, weights=ESTIMATED, links=ONE_TO_ONE)
    assert named.links == ONE_TO_ONE and named.link_choice is None
    peers = [m.local_record_id for m in named.matches]
    assert len(peers) == len(set(peers))  # one partner record per person, as named


def test_one_fabricated_record_can_win_many_of_ours_once_auto_chose_best_of_either() -> None:
    """The residual docs/security.md states: a partner adds one record carrying the agreeing
    tokens of a few hundred of our people who are not on its list. The pairs now look like a
    registry (that record shares a likely match with each of them), auto chooses
    best-of-either, and the record is decided with every one of ours whose best candidate it
    is, each pair at or above the floor. Under a named one-to-one rule it wins at most one."""
    left, right, agree, present, _ = households(12)
    # 300 of our people who are not on the partner's list, whose tokens it holds
    victims = np.arange(300) + int(left.max()) + 1
    fake = int(right.max()) + 1
    every = (1 << len(SCHEMA.keys)) - 1
    columns = [
        np.concatenate([left, victims]),
        np.concatenate([right, np.full(len(victims), fake)]),
        np.concatenate([agree, np.full(len(victims), every)]),
        np.concatenate([present, np.full(len(victims), every)]),
    ]
    schema = _weighted(certain=None)  # one bit per agreeing key
    floor = 3.0
    source = _as_source(*columns)
    steered = decide(source, schema, floor, links=AUTO)
    assert steered.links == BEST_OF_EITHER
    won = [m for m in steered.matches if m.peer_ref == fake]
    assert len(won) > 100 and all(m.policy_score >= floor for m in won)
    named = decide(source, schema, floor, links=ONE_TO_ONE)
    assert len([m for m in named.matches if m.peer_ref == fake]) <= 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 31), st.integers(0, 31)),
        max_size=500,  # none, and both sides of the fewest pairs an estimate is made from
    )
)
@example([])
@example(  # a registry of 20 people's events, and namesakes dominated through the events
    [(p, 3 * p + e, 31, 31) for p in range(20) for e in range(3)]
    + [(n, (n * 7 + j * 13) % 60, 16, 16) for n in range(20, 61) for j in range(4)]
)
def test_any_pairs_give_a_rule_and_nothing_else(rows: list[tuple[int, int, int, int]]) -> None:
    """A partner shapes half of every pair: whatever the pairs, the choice is a rule (with a
    note when there was too little to tell by, and when it was told by the schema's own
    weights), never an exception."""
    left, right, agree, present = (
        np.array([row[i] for row in rows], dtype=np.int64) for i in range(4)
    )
    choice = choose_link_rule(SCHEMA, left, right, agree, present)
    assert choice.links in (ONE_TO_ONE, BEST_OF_EITHER)
    if not rows:
        assert choice.links == ONE_TO_ONE and choice.likely == 0 and choice.estimate is None
        return
    fixed = choice.note is not None and choice.note.startswith("the schema's own weights")
    assert fixed == (choice.estimate is None or choice.estimate.once is not None)
    assert (choice.unestimated is None) == (choice.estimate is not None)
    assert choice.links == ONE_TO_ONE or "likely matches" not in (choice.note or "")
    assert 0 <= max(choice.shared_left, choice.shared_right) <= choice.likely <= len(rows)
