"""The files of a synthetic data set: each agency's CSV and mapping, truth, split and manifest.

The Canadian file uses the bundled Canadian watchlist's columns and mapping (DD/MM/YYYY, ``DMY``),
the US file the bundled US watchlist's (MM/DD/YYYY, ``MDY``), from :mod:`xlink.synth.agencies`.
In the ``names-dob-sex`` profile both files have only an id, the names, the date of birth and
sex (:data:`NAMES_DOB_SEX_COLUMNS`): ``ca.csv`` a census (DD/MM/YYYY), ``us.csv`` a registry of
vital events (MM/DD/YYYY), each mapping with a constant category.
Files are written under temporary names and renamed into place, ``manifest.json`` last and only
after every other file is complete, so a directory with a manifest holds a whole data set.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xlink.synth.agencies import CA_WL, COLUMNS, MAPPINGS, US_WL, agency_row
from xlink.synth.corrupt import Draft

__all__ = [
    "CA_COLUMNS",
    "MANIFEST",
    "NAMES_DOB_SEX_COLUMNS",
    "NAMES_DOB_SEX_DATE_ORDER",
    "NAMES_DOB_SEX_MAPPING",
    "OUTPUT_FILES",
    "US_COLUMNS",
    "names_dob_sex_row",
    "read_split",
    "read_truth",
    "row_for",
    "write_files",
]

MANIFEST = "manifest.json"
#: Every file a data set holds, in the order they are written (the manifest last).
OUTPUT_FILES = (
    "ca.csv",
    "ca.mapping.json",
    "us.csv",
    "us.mapping.json",
    "truth.csv",
    "split.csv",
    MANIFEST,
)
CA_COLUMNS = COLUMNS[CA_WL]
US_COLUMNS = COLUMNS[US_WL]
MAPPING = {"ca": MAPPINGS[CA_WL], "us": MAPPINGS[US_WL]}


#: The ``names-dob-sex`` profile's columns: a census on the left, a vital-events registry on the
#: right, each in its own names.
NAMES_DOB_SEX_COLUMNS: dict[str, tuple[str, ...]] = {
    "ca": ("census_id", "given_name", "middle_name", "surname", "birth_date", "sex"),
    "us": ("event_id", "first_name", "middle", "last_name", "dob", "gender"),
}
NAMES_DOB_SEX_DATE_ORDER = {"ca": "DMY", "us": "MDY"}
#: The year up to which the profile's mappings read a two-digit birth year (``10/27/83``, one of
#: its garbled dates): the census year, after which no one listed is born.
NAMES_DOB_SEX_TWO_DIGIT_UNTIL = 2008
_NDS_FIELDS = ("record_id", "given_name", "middle_name", "family_name", "birth_date", "sex")
NAMES_DOB_SEX_MAPPING: dict[str, dict[str, object]] = {
    side: {
        "date_order": NAMES_DOB_SEX_DATE_ORDER[side],
        "two_digit_years_until": NAMES_DOB_SEX_TWO_DIGIT_UNTIL,
        "category": "other",
        "columns": dict(zip(columns, _NDS_FIELDS, strict=True)),
    }
    for side, columns in NAMES_DOB_SEX_COLUMNS.items()
}


def names_dob_sex_row(draft: Draft, record_id: str) -> list[str]:
    """The CSV row of a ``names-dob-sex`` draft in :data:`NAMES_DOB_SEX_COLUMNS` (the census
    writes sex ``F``/``M``, the registry ``Female``/``Male``)."""
    sex = draft.sex if draft.side == "ca" else {"F": "Female", "M": "Male"}.get(draft.sex, "")
    return [record_id, draft.given, draft.middle, draft.family, draft.dob_text or "", sex]


def row_for(rng: random.Random, draft: Draft, record_id: str) -> list[str]:
    """The CSV row of ``draft`` in its agency's columns (:data:`CA_COLUMNS` or
    :data:`US_COLUMNS`), with invented source metadata and payload."""
    return agency_row(rng, CA_WL if draft.side == "ca" else US_WL, draft, record_id)


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """UTF-8 CSV with ``\\n`` line ends (the same bytes on every platform)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_files(out_dir: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` into ``out_dir`` via temporary names, in their order, :data:`MANIFEST`
    last.

    An existing manifest is removed first, so an interrupted run never leaves a manifest beside
    files it does not describe.

    Raises:
        OSError: the directory cannot be created or written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    order = [name for name in files if name != MANIFEST]
    temps: list[Path] = []
    try:
        for name in order:
            temp = out_dir / f".{name}.tmp"
            temps.append(temp)
            temp.write_bytes(files[name])
        for name, temp in zip(order, temps, strict=True):
            os.replace(temp, out_dir / name)
        if MANIFEST in files:
            temp = out_dir / f".{MANIFEST}.tmp"
            temps.append(temp)
            temp.write_bytes(files[MANIFEST])
            os.replace(temp, out_dir / MANIFEST)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def _rows(path: Path, header: Sequence[str]) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0] != list(header):
        raise ValueError(f"{path}: the header must be {','.join(header)}")
    return rows[1:]


def read_truth(path: Path | str) -> set[tuple[str, str]]:
    """The true pairs of a ``truth.csv``: ``{(ca_record_id, us_record_id), ...}``.

    Raises:
        OSError: the file cannot be read. ValueError: wrong header or row shape.
    """
    pairs: set[tuple[str, str]] = set()
    for row in _rows(Path(path), ("ca_record_id", "us_record_id")):
        if len(row) != 2:
            raise ValueError(f"{path}: every row needs two ids")
        pairs.add((row[0], row[1]))
    return pairs


def read_split(path: Path | str) -> dict[str, str]:
    """The split of a ``split.csv``: ``{ca_record_id: "dev" | "heldout"}``.

    Raises:
        OSError: the file cannot be read. ValueError: wrong header, row shape or split name.
    """
    split: dict[str, str] = {}
    for row in _rows(Path(path), ("ca_record_id", "split")):
        if len(row) != 2 or row[1] not in ("dev", "heldout"):
            raise ValueError(f"{path}: every row needs an id and dev or heldout")
        split[row[0]] = row[1]
    return split
