"""The decision step on PSI output: scores, threshold, one-to-one, and agreement of both sides."""

from __future__ import annotations

import hashlib

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
