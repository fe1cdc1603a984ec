"""A store whose rows were altered in the file, and garbled consent tokens, raise only xlink's
errors: "random bytes into any decoder raise only our own exception types"."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from _mutations import DECODER_SETTINGS, mutated_bytes, mutated_msgpack
from _officers import READER, act
from _store_support import DAY, SESSION, T0, US, make_record, open_store, read_act, seal
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.audit import AuditEvent
from xlink.errors import DamagedDatabase, PolicyDenied, ReleaseRejected, XlinkError
from xlink.officers import OfficerAct, OfficerAction
from xlink.release.codec import pack
from xlink.store.consent import ConsentToken
from xlink.store.reasons import DENY_RECORD_UNREADABLE

ONE = make_record(1).release_id
_COLUMNS = {
    "release_id": st.binary(max_size=20),
    "session_id": st.binary(max_size=20),
    "category": st.text(max_size=10) | st.sampled_from(["watchlist", "traveller"]),
    "originator": st.text(max_size=10),
    "received_us": st.integers(-(2**63), 2**63 - 1),
    "expires_us": st.integers(-(2**63), 2**63 - 1),
    "sealed": st.binary(max_size=60),
    "own_record_id": st.none() | st.text(max_size=5),
}
_CHANGES = st.lists(
    st.sampled_from(sorted(_COLUMNS)).flatmap(lambda c: st.tuples(st.just(c), _COLUMNS[c])),
    min_size=1,
    max_size=2,
)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("stored")
    with open_store(base / "store.db") as store:
        for n in (1, 2):
            store.receive(seal(make_record(n)), expected_session_id=SESSION, now=T0)
    return base


def _altered(stored: Path, into: Path, changes: list[tuple[str, object]]) -> Path:
    """A copy of ``stored`` in ``into`` with the first row's ``changes`` made in the file."""
    shutil.copytree(stored, into)
    with closing(sqlite3.connect(into / "store.db")) as db, db:
        for column, value in changes:
            with contextlib.suppress(sqlite3.IntegrityError):  # a release id both rows have
                db.execute(
                    f"UPDATE releases SET {column} = ? "
                    "WHERE rowid = (SELECT min(rowid) FROM releases)",
                    (value,),
                )
    return into / "store.db"


@pytest.mark.parametrize(
    ("column", "value"),
    [("category", "no-such-category"), ("expires_us", -(2**63) + 1), ("received_us", 2**63 - 1)],
)
def test_a_listing_of_a_row_altered_in_the_file_is_a_damaged_database(
    stored: Path, tmp_path: Path, column: str, value: object
) -> None:
    """``Category('...')`` (ValueError) and a time past any datetime (OverflowError) escaped
    :meth:`ReleaseStore.list`."""
    path = _altered(stored, tmp_path / "s", [(column, value)])
    with open_store(path) as store, pytest.raises(DamagedDatabase, match="altered in the file"):
        store.list(T0)


def _share_act(third_party: str = "GB-NCA") -> OfficerAct:
    return act(READER, OfficerAction.SHARE, agency=US, target=ONE, now=T0, detail=third_party)


def test_a_read_or_share_of_a_row_whose_session_was_altered_is_refused(
    stored: Path, tmp_path: Path
) -> None:
    """The refusal was audited with the row's session, which the audit vocabulary refuses
    unless 16 bytes: a ValueError instead of the refusal (a read; a share the officer's act
    does not allow). A share the act allows is refused as the read is, and audited."""
    path = _altered(stored, tmp_path / "s", [("session_id", b"\x01\x02\x03")])
    with open_store(path) as store:
        with pytest.raises(XlinkError):
            store.read(ONE, act=read_act(ONE, T0), now=T0)
        with pytest.raises(PolicyDenied):  # the act names another third party
            store.share_onward(
                ONE, third_party="GB-NCA", consent=None, act=_share_act("FR-DGSI"), now=T0
            )
        with pytest.raises(XlinkError):
            store.share_onward(ONE, third_party="GB-NCA", consent=None, act=_share_act(), now=T0)
        denied = [e for e in store._audit.entries() if e.kind is AuditEvent.ONWARD_DENIED]
        assert denied[-1].fields["reason"] == DENY_RECORD_UNREADABLE


@settings(DECODER_SETTINGS, max_examples=60)  # a store opened per example
@given(_CHANGES)
def test_rows_altered_in_the_file_raise_only_xlink_errors(
    stored: Path, tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, object]]
) -> None:
    path = _altered(stored, tmp_path_factory.mktemp("altered") / "s", changes)
    with open_store(path) as store:
        for use in (
            lambda: store.list(T0),
            lambda: store.read(ONE, act=read_act(ONE, T0), now=T0),
            lambda: store.share_onward(
                ONE, third_party="GB-NCA", consent=None, act=_share_act(), now=T0
            ),
            lambda: store.purge(T0 + 1000 * DAY),
        ):
            with contextlib.suppress(XlinkError):
                use()


_TOKEN = pack([pack([b"\x01" * 16, "MOU-1", "GB-NCA", "border-security", 10**12]), b"\x02" * 64])


def test_the_sample_token_parses() -> None:
    assert ConsentToken.from_bytes(_TOKEN).third_party == "GB-NCA"


@DECODER_SETTINGS
@given(mutated_bytes(_TOKEN) | mutated_msgpack(_TOKEN, 1) | st.binary(max_size=200))
def test_a_garbled_consent_token_raises_only_release_rejected(data: bytes) -> None:
    with contextlib.suppress(ReleaseRejected):
        ConsentToken.from_bytes(data)
