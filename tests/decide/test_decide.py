"""The decision step on PSI output: scores, threshold, one-to-one, and agreement of both sides."""

from __future__ import annotations

import hashlib

import pytest

from xlink.crypto.rand import DeterministicRandom
from xlink.decide import decide
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import validate_schema
from xlink.linkage.tokens import TokenSetBuilder, token_digest
from xlink.protocol.events import CandidatePair, PsiResult

SCHEMA = validate_schema(
    {
        "id": "test",
        "version": 1,
        "threshold": 5.0,
        "keys": [
            {"name": "strong", "version": 1, "fields": ["document_number"], "m": 0.9, "u": 0.001},
            {"name": "weak", "version": 1, "fields": ["family"], "m": 0.9, "u": 0.1},
        ],
    }
)
MOU = hashlib.sha256(b"test mou").digest()


def _tokens(records: dict[str, dict[str, str]], prefix: str) -> TokenSetBuilder:
    b = TokenSetBuilder(SCHEMA.key_names)
    for rid, keys in records.items():
        b.add_record(
            prefix + rid, [(k, token_digest("test", 1, k, 1, [v])) for k, v in keys.items()]
        )
    return b


def _pair(local: str, ref: int, keys: set[str]) -> CandidatePair:
    return CandidatePair(local, ref, frozenset(keys), (bytes([ref]) * 16,))


def test_threshold_keeps_strong_evidence_only() -> None:
    result = PsiResult(b"s" * 32, 3, (_pair("a", 0, {"strong"}), _pair("b", 1, {"weak"})))
    decision = decide(result, SCHEMA)
    assert [m.local_record_id for m in decision.matches] == ["a"]
    assert decision.candidates == 2
    assert decision.threshold == 5.0


def test_ties_are_refused_and_best_for_both_wins() -> None:
    result = PsiResult(
        b"s" * 32,
        4,
        (
            # Two peer records tie for "a": neither is decided.
            _pair("a", 0, {"strong"}),
            _pair("a", 1, {"strong"}),
            # "b" has a clear best.
            _pair("b", 2, {"strong", "weak"}),
            _pair("b", 3, {"strong"}),
        ),
    )
    decision = decide(result, SCHEMA)
    assert [(m.local_record_id, m.peer_ref) for m in decision.matches] == [("b", 2)]


def test_both_sides_decide_the_same_pairs_through_a_real_session() -> None:
    left = _tokens(
        {
            "1": {"strong": "P123", "weak": "SMITH"},
            "2": {"weak": "JONES"},
            "3": {"strong": "P999", "weak": "LEE"},
        },
        "ca-",
    ).build()
    right = _tokens(
        {
            "x": {"strong": "P123", "weak": "SMITH"},
            "y": {"weak": "JONES"},
            "z": {"strong": "P777", "weak": "LEE"},
        },
        "us-",
    ).build()
    ra, rb = exchange_in_memory(
        Party("CA", left, DeterministicRandom(1)),
        Party("US", right, DeterministicRandom(2)),
        schema=SCHEMA,
        mou_id="MOU-1",
        mou_digest=MOU,
        padding_bucket=16,
    )
    assert isinstance(ra, PsiResult) and isinstance(rb, PsiResult)
    da, db = decide(ra, SCHEMA), decide(rb, SCHEMA)
    # Only ca-1/us-x share the strong key; the weak-only pairs stay below the threshold.
    assert [m.local_record_id for m in da.matches] == ["ca-1"]
    assert [m.local_record_id for m in db.matches] == ["us-x"]
    assert da.matches[0].handles == db.matches[0].handles
    assert da.matches[0].agreeing_keys == frozenset({"strong", "weak"})
    assert da.candidates == db.candidates == 3
    assert "handles" not in repr(da.matches[0])


DISAGREE = validate_schema(
    {
        "id": "test-disagree",
        "version": 1,
        "threshold": 5.0,
        "keys": [
            {"name": "strong", "version": 1, "fields": ["document_number"], "weight": 10,
             "disagreement_weight": -8},
            {"name": "weak", "version": 1, "fields": ["family"], "weight": 6},
            {"name": "dob", "version": 1, "fields": ["birth_date"], "weight": 3,
             "disagreement_weight": -1.5},
        ],
    }
)  # fmt: skip


def _present(
    local: str, ref: int, agree: set[str], local_keys: set[str], peer_keys: set[str]
) -> CandidatePair:
    return CandidatePair(
        local,
        ref,
        frozenset(agree),
        (bytes([ref]) * 16,),
        local_keys=frozenset(agree | local_keys),
        peer_keys=frozenset(agree | peer_keys),
    )


def test_disagreeing_keys_are_scored() -> None:
    all_keys = {"strong", "weak", "dob"}
    result = PsiResult(
        b"s" * 32,
        3,
        (
            # Both have a document number and it differs: 6 - 8, below the threshold.
            _present("a", 0, {"weak"}, all_keys, all_keys),
            # The peer record has only a family name: nothing disagrees, 6 stays.
            _present("b", 1, {"weak"}, all_keys, {"weak"}),
            # Birth dates differ, no document number on our side: 6 + 10 - 1.5.
            _present("c", 2, {"weak", "strong"}, {"weak", "dob"}, all_keys),
        ),
    )
    decision = decide(result, DISAGREE)
    assert [(m.local_record_id, m.score) for m in decision.matches] == [("c", 14.5), ("b", 6.0)]
    # Without key presence (as before the protocol revealed it) "a" would have been decided.
    blind = PsiResult(b"s" * 32, 3, (_pair("a", 0, {"weak"}),))
    assert [m.local_record_id for m in decide(blind, DISAGREE).matches] == ["a"]


def test_a_disagreement_breaks_a_tie() -> None:
    keys = {"weak", "dob"}
    result = PsiResult(
        b"s" * 32,
        2,
        (_present("a", 0, {"weak"}, keys, keys), _present("a", 1, {"weak"}, keys, {"weak"})),
    )
    assert [(m.peer_ref, m.score) for m in decide(result, DISAGREE).matches] == [(1, 6.0)]


def test_a_disagreeing_key_the_schema_does_not_name_is_an_error() -> None:
    result = PsiResult(b"s" * 32, 1, (_present("a", 0, {"weak"}, {"other"}, {"other"}),))
    with pytest.raises(KeyError):
        decide(result, DISAGREE)


def test_decided_matches_name_their_disagreeing_and_missing_keys_and_make_a_frame() -> None:
    all_keys = {"strong", "weak", "dob"}
    result = PsiResult(
        b"s" * 32,
        2,
        (
            _present("b", 1, {"weak"}, all_keys, {"weak"}),
            _present("c", 2, {"weak", "strong"}, {"weak", "dob"}, all_keys),
        ),
    )
    decision = decide(result, DISAGREE)
    by_id = {m.local_record_id: m for m in decision.matches}
    assert by_id["c"].disagreeing_keys == {"dob"} and by_id["c"].missing_keys == frozenset()
    assert by_id["b"].disagreeing_keys == frozenset()
    assert by_id["b"].missing_keys == {"strong", "dob"}
    frame = decision.to_frame()
    assert list(frame.columns) == [
        "local_record_id",
        "peer_ref",
        "score",
        "agreeing_keys",
        "disagreeing_keys",
        "missing_keys",
    ]
    assert frame.to_dict("records") == [
        {
            "local_record_id": m.local_record_id,
            "peer_ref": m.peer_ref,
            "score": m.score,
            "agreeing_keys": tuple(sorted(m.agreeing_keys)),
            "disagreeing_keys": tuple(sorted(m.disagreeing_keys)),
            "missing_keys": tuple(sorted(m.missing_keys)),
        }
        for m in decision.matches
    ]
