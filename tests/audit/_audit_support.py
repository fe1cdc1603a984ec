"""Shared helpers for the audit tests: keys, a standard log, an attacker's SQL access, and
hypothesis strategies for valid entries drawn from the vocabulary itself."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import strategies as st

from xlink.audit import FIELDS, KINDS, AuditEvent, AuditLog, FieldType
from xlink.audit._vocab import _NAMES  # the enum-name sets, to draw valid values from
from xlink.crypto.keys import SigningKey
from xlink.identifiers import AGENCY_ID, MOU_ID, PURPOSE, REASON_CODE

KEY = SigningKey(bytes(range(32)))
OTHER_KEY = SigningKey(bytes(range(1, 33)))
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SESSION = bytes.fromhex("5e55" * 8)

ENTRY_COLUMNS = ("seq", "time_us", "kind", "fields", "prev_hash", "entry_hash")
CHECKPOINT_COLUMNS = ("seq", "head_hash", "time_us", "prev_seq", "interval", "signature")


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory, on tmpfs when available (no real fsync: fast tests)."""
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=where, prefix="xlink-audit-") as tmp:
        yield Path(tmp)


def event(i: int) -> tuple[AuditEvent, dict[str, object]]:
    """The ``i``-th event of a plausible session, cycling through a few kinds."""
    handle = i.to_bytes(16, "big")
    cycle: list[tuple[AuditEvent, dict[str, object]]] = [
        (AuditEvent.MATCHES, {"session": SESSION, "matched": i, "pairs": i // 2}),
        (AuditEvent.RELEASE_PENDING, {"session": SESSION, "handle": handle}),
        (AuditEvent.RELEASE_SENT, {"session": SESSION, "handle": handle, "digest": bytes(32)}),
        (AuditEvent.RECORD_READ, {"handle": handle, "purpose": "border-screening"}),
    ]
    return cycle[i % len(cycle)]


def build_log(
    path: Path, n: int = 10, *, every: int = 4, close: bool = True, key: SigningKey = KEY
) -> Path:
    """A log of ``n`` entries, one per minute from :data:`T0`. With ``every=4`` and ``close``,
    ``n=10`` gives checkpoints at entries 1, 5, 9 and 10."""
    log = AuditLog.open(path, signing_key=key, checkpoint_every=every)
    for i in range(1, n + 1):
        kind, fields = event(i)
        log.append(kind, fields, now=T0 + timedelta(minutes=i))
    if close:
        log.close()
    else:
        log._conn.close()  # as if the process died: no closing checkpoint
    return path


@contextmanager
def attacker(path: Path) -> Iterator[sqlite3.Connection]:
    """Raw write access to the file, append-only triggers dropped, every statement committed."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f'DROP TRIGGER "{name}"')
        yield conn


def rows(conn: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    return list(conn.execute(f"SELECT * FROM {table} ORDER BY seq"))


def replace_entries(conn: sqlite3.Connection, new_rows: Sequence[Sequence[object]]) -> None:
    conn.execute("DELETE FROM audit_entries")
    conn.executemany("INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?)", new_rows)


# -- hypothesis strategies ---------------------------------------------------------------------

# Identifier fields: drawn from the shared rules (xlink.identifiers), as the vocabulary uses them.
_VALUES: Mapping[FieldType, st.SearchStrategy[object]] = {
    FieldType.COUNT: st.integers(0, 2**63 - 1),
    FieldType.ID16: st.binary(min_size=16, max_size=16),
    FieldType.DIGEST: st.binary(min_size=32, max_size=32).map(bytes.hex),
    FieldType.SIGNATURE: st.binary(min_size=64, max_size=64).map(bytes.hex),
    FieldType.IDENT: st.from_regex(AGENCY_ID, fullmatch=True),
    FieldType.MOU_ID: st.from_regex(MOU_ID, fullmatch=True),
    FieldType.PURPOSE: st.from_regex(PURPOSE, fullmatch=True),
    FieldType.REASON: st.from_regex(REASON_CODE, fullmatch=True),
    FieldType.DECIMAL: st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,9})?", fullmatch=True),
    **{t: st.sampled_from(sorted(names)) for t, names in _NAMES.items()},
}


@st.composite
def events(draw: st.DrawFn) -> tuple[AuditEvent, dict[str, object]]:
    """Any kind with its required fields and a random subset of its optional ones."""
    kind = draw(st.sampled_from(list(AuditEvent)))
    required, optional = KINDS[kind]
    extra = draw(st.lists(st.sampled_from(sorted(optional)), unique=True)) if optional else []
    names = sorted(required) + extra
    return kind, {name: draw(_VALUES[FIELDS[name]]) for name in names}
