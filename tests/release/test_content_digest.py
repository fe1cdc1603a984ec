"""The content digest (xlink-release-v1 §10.4): what a release says about its record, the same
for every release of one record version, different as soon as anything released differs."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from _release_support import T0, release_record

from xlink.release.record import content_digest

BASE = release_record()


@pytest.mark.parametrize(
    "change",
    [
        {"release_id": b"\x09" * 16},
        {"session_id": b"\x08" * 16},
        {"match_handles": (b"\x07" * 16,)},
        {"created_at": T0 + timedelta(days=3)},
        {"source_handle": b"\x06" * 32},
    ],
    ids=lambda c: next(iter(c)),
)
def test_what_differs_between_releases_of_one_record_is_left_out(
    change: dict[str, object],
) -> None:
    assert content_digest(dataclasses.replace(BASE, **change)) == content_digest(BASE)  # type: ignore[arg-type]


def test_anything_released_changes_it() -> None:
    first = next(iter(BASE.fields))
    changed_fields = {**BASE.fields, first: ("SOMEONE ELSE",)}
    caveats = dataclasses.replace(BASE.caveats, retention_days=BASE.caveats.retention_days + 1)
    for other in (
        dataclasses.replace(BASE, fields=changed_fields),
        dataclasses.replace(BASE, caveats=caveats),
        dataclasses.replace(BASE, mou_id=BASE.mou_id + "-2"),
        dataclasses.replace(BASE, mou_digest=bytes(32)),
        dataclasses.replace(BASE, recipient=BASE.originator, originator=BASE.recipient),
    ):
        assert content_digest(other) != content_digest(BASE)
