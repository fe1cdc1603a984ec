"""Likely duplicates inside one agency's own file, to clean it before an exchange (issue 2, item 8).

Plaintext and local: nothing here leaves the agency. Records are normalised as for match keys
(:mod:`xlink.records.normalise`: transliterated MRZ names, ISO dates, document numbers), then
``recordlinkage`` does the rest:

- **Index** (candidate pairs): the union of two blockings, Soundex of the family name + birth
  year, and Soundex of the given name + full birth date (the second catches a changed or
  misspelt family name).
- **Compare**: Jaro–Winkler similarity of given and of family names, exact birth date, exact
  document number (any of the record's documents is not compared: the first one is).
- **Score**: the mean of the comparisons available on *both* records (a field missing on either
  side is left out rather than counted as a disagreement), in ``[0, 1]``; at least
  :data:`MIN_COMPARED_FIELDS` must be available. Pairs at or above
  ``threshold`` are reported, best first.

pandas and recordlinkage are imported inside :func:`find_duplicates` (they are slow to import).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jellyfish

from xlink.linkage.fields import Field, FieldGroup
from xlink.linkage.keys import record_instances
from xlink.records.model import PersonRecord

__all__ = [
    "COMPARED_FIELDS",
    "DEFAULT_DUPLICATE_THRESHOLD",
    "MIN_COMPARED_FIELDS",
    "DuplicatePair",
    "find_duplicates",
]

#: Default score from which a pair is reported.
DEFAULT_DUPLICATE_THRESHOLD = 0.85
#: A pair is scored only when at least this many fields are available on both records.
MIN_COMPARED_FIELDS = 2
#: The fields compared, in the order of :attr:`DuplicatePair.similarities`.
COMPARED_FIELDS = (Field.GIVEN, Field.FAMILY, Field.BIRTH_DATE, Field.DOCUMENT_NUMBER)


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two records of one file that probably describe the same person.

    ``left_id < right_id``; ``similarities`` maps each compared field available on both records
    to its similarity in ``[0, 1]``; ``score`` is their mean.
    """

    left_id: str
    right_id: str
    score: float
    similarities: tuple[tuple[Field, float], ...]


def _row(record: PersonRecord) -> dict[str, str]:
    inst = record_instances(record)
    out: dict[str, str] = {}
    names = inst.get(FieldGroup.NAME, ())
    primary = names[0].values if names else {}
    for field in (Field.GIVEN, Field.FAMILY):
        out[field.value] = primary.get(field, ("",))[0]
    birth = inst.get(FieldGroup.BIRTH, ())
    out[Field.BIRTH_DATE.value] = birth[0].values[Field.BIRTH_DATE][0] if birth else ""
    out["birth_year"] = out[Field.BIRTH_DATE.value][:4]
    docs = inst.get(FieldGroup.DOCUMENT, ())
    out[Field.DOCUMENT_NUMBER.value] = (
        docs[0].values.get(Field.DOCUMENT_NUMBER, ("",))[0] if docs else ""
    )
    for field in (Field.GIVEN, Field.FAMILY):
        value = out[field.value]
        out[f"{field.value}_soundex"] = str(jellyfish.soundex(value)) if value else ""
    return out


def find_duplicates(
    records: Iterable[PersonRecord], threshold: float = DEFAULT_DUPLICATE_THRESHOLD
) -> list[DuplicatePair]:
    """Likely duplicate pairs in one file, best first (module docstring for the method).

    Raises ``ValueError`` if two records share a ``record_id`` or ``threshold`` is not in
    ``[0, 1]``; ``ImportError`` without recordlinkage.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be in [0, 1]")
    import numpy as np
    import pandas as pd
    import recordlinkage

    recs: Sequence[PersonRecord] = list(records)
    ids = [r.record_id for r in recs]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique within the file")
    if len(recs) < 2:
        return []
    frame = pd.DataFrame([_row(r) for r in recs], index=pd.Index(ids, name="record_id"))
    frame = frame.mask(frame == "")  # empty string = missing (NaN)
    indexer = recordlinkage.Index()
    indexer.block(left_on=["family_soundex", "birth_year"])
    indexer.block(left_on=["given_soundex", Field.BIRTH_DATE.value])
    candidates = indexer.index(frame)
    if len(candidates) == 0:
        return []
    compare = recordlinkage.Compare()
    labels = [f.value for f in COMPARED_FIELDS]
    for label in labels[:2]:
        compare.string(label, label, method="jarowinkler", missing_value=np.nan, label=label)
    for label in labels[2:]:
        compare.exact(label, label, missing_value=np.nan, label=label)
    features = compare.compute(candidates, frame)
    out: list[DuplicatePair] = []
    for (left, right), row in zip(features.index, features.itertuples(index=False), strict=True):
        sims = tuple(
            (field, float(v))
            for field, v in zip(COMPARED_FIELDS, row, strict=True)
            if v == v  # not NaN: available on both records
        )
        if len(sims) < MIN_COMPARED_FIELDS:
            continue
        score = sum(v for _, v in sims) / len(sims)
        if score >= threshold:
            a, b = sorted((str(left), str(right)))
            out.append(DuplicatePair(a, b, round(score, 6), sims))
    out.sort(key=lambda p: (-p.score, p.left_id, p.right_id))
    return out
