"""Verification of an audit log against the agency's checkpoint key (docs/audit.md,
"Verification").

One pass in ``seq`` order recomputes every entry hash and prev link, and checks each
checkpoint (signature, back-pointer, head hash) right after the entry it covers. The first
failure is reported as the earliest entry that may differ from what the writer wrote:

- an entry whose content, seq or link is wrong: that entry;
- an entry that is self-consistent but is not the entry its successor was chained to: that
  entry (it was modified and re-hashed), unless a valid checkpoint vouches for it, in which
  case the successor;
- a checkpoint that does not verify, or whose head hash is not the entry it covers: the first
  entry after the last valid checkpoint (the chain may have been rewritten anywhere since);
- a deleted checkpoint (the next one points back to it): the entry it covered;
- truncation (a valid checkpoint covers entries that are gone): the first missing entry.

With the partner's copies of our checkpoints (``partner_checkpoints``: each came to the partner
in one of our receipts, xlink-release-v1 §8), the log must also contain every one of them: an
entry whose hash is not the head a partner checkpoint states names the first entry after the
last partner checkpoint that matched (whoever holds our audit key may have re-chained and
re-signed everything since); a partner checkpoint beyond the last entry names the first missing
entry (truncation, or a log replaced by a new one). A partner checkpoint that does not verify
with the audit key is reported and not trusted.

Nothing here raises on a bad database: every problem becomes ``ok=False`` with a reason.
"""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from xlink.audit._anchors import PublishedCheckpoint
from xlink.audit._encoding import (
    GENESIS_HASH,
    HASH_SIZE,
    checkpoint_message,
    decode_fields,
    entry_hash,
)
from xlink.audit._vocab import AuditEvent, check_fields
from xlink.crypto.keys import SIGNATURE_SIZE, VerifyKey
from xlink.errors import DecryptionError

__all__ = ["VerifyReport", "verify_log"]

_I64: Final = 2**63


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify_log`.

    ``entries`` and ``checkpoints`` count the rows in the two tables; ``first_bad_seq`` is
    the earliest entry that may have been tampered with (``None`` when ``ok``, or when the
    database itself is unusable); ``reason`` starts with ``"entry N: "`` when there is such
    an entry. ``covered`` is the seq of the last valid checkpoint: entries after it are not
    signed yet, and could be truncated or rewritten without detection (docs/audit.md).
    ``anchored`` is the seq of the last partner checkpoint the log matched (0 when none was
    given): entries up to it are as the partner was told, even by the holder of the audit key.
    """

    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None
    reason: str | None
    covered: int = 0
    anchored: int = 0


class _Bad(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq = seq
        self.reason = reason if seq is None else f"entry {seq}: {reason}"


_Row = tuple[object, ...]


class _Malformed(Exception):
    pass


def _int(value: object, low: int, high: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value < high:
        return value
    raise _Malformed


def _bytes(value: object, size: int) -> bytes:
    if isinstance(value, bytes) and len(value) == size:
        return value
    raise _Malformed


class _Walker:
    """The verification state: the chain so far and the checkpoints still ahead."""

    def __init__(
        self, checkpoints: list[_Row], key: VerifyKey, anchors: dict[int, list[bytes]]
    ) -> None:
        self.key = key
        self.anchors = anchors  # seq -> the head hashes trusted partner checkpoints state
        self.anchored = 0  # seq of the last partner checkpoint the log matched
        self.expected = 1
        self.prev_hash = GENESIS_HASH
        self.prev_prev_hash = GENESIS_HASH
        self.covered = 0  # seq of the last checkpoint that verified
        self.interval = 0  # the interval that checkpoint states
        self.pending: dict[int, _Row] = {}
        for row in checkpoints:
            try:
                seq = _int(row[0], 1, _I64)
            except _Malformed:
                raise _Bad(None, "a checkpoint row has an invalid seq") from None
            if seq in self.pending:
                raise _Bad(None, f"two checkpoints claim entry {seq}")
            self.pending[seq] = row

    def _fail_since_covered(self, reason: str) -> _Bad:
        return _Bad(self.covered + 1, reason)

    def _signed(self, seq: int, row: _Row) -> tuple[bytes, int, int]:
        """Check a checkpoint's signature; return its head hash, prev seq and interval."""
        where = f"the checkpoint at entry {seq}"
        try:
            head = _bytes(row[1], HASH_SIZE)
            time_us = _int(row[2], -_I64, _I64)
            prev_seq = _int(row[3], 0, _I64)
            interval = _int(row[4], 1, 2**32)
            signature = _bytes(row[5], SIGNATURE_SIZE)
        except _Malformed:
            raise self._fail_since_covered(f"not signed: {where} is malformed") from None
        try:
            self.key.verify(signature, checkpoint_message(seq, head, time_us, prev_seq, interval))
        except DecryptionError:
            raise self._fail_since_covered(
                f"not signed: {where} does not verify with this key (forged or wrong key)"
            ) from None
        return head, prev_seq, interval

    def entry(self, row: _Row) -> None:
        try:
            seq = _int(row[0], -_I64, _I64)
        except _Malformed:
            raise _Bad(self.expected, "has an invalid seq") from None
        if seq > self.expected:
            missing = f"{self.expected}" + (f"..{seq - 1}" if seq - 1 > self.expected else "")
            raise _Bad(self.expected, f"is missing (entries {missing} were deleted)")
        if seq < self.expected:
            raise _Bad(seq, f"out of sequence (expected entry {self.expected})")
        try:
            time_us = _int(row[1], -_I64, _I64)
            prev = _bytes(row[4], HASH_SIZE)
            stored = _bytes(row[5], HASH_SIZE)
        except _Malformed:
            raise _Bad(seq, "malformed row (time or hashes of the wrong type)") from None
        kind = row[2]
        if not isinstance(kind, str) or kind not in AuditEvent.__members__:
            raise _Bad(seq, "unknown kind")
        try:
            if not isinstance(row[3], str):
                raise ValueError("fields are not text")
            checked = check_fields(AuditEvent[kind], decode_fields(row[3]), stored=True)
        except (ValueError, RecursionError):
            raise _Bad(seq, "fields are malformed or outside the audit vocabulary") from None
        if entry_hash(prev, seq, time_us, kind, checked) != stored:
            if (
                seq - 1 > self.covered
                and prev == self.prev_prev_hash
                and entry_hash(prev, seq - 1, time_us, kind, checked) == stored
            ):
                raise _Bad(
                    seq - 1, f"was inserted (entry {seq} is the former entry {seq - 1}, renumbered)"
                )
            raise _Bad(seq, "hash does not match its content")
        if prev != self.prev_hash:
            if seq == 1:
                raise _Bad(1, "does not start the chain (prev hash is not zero)")
            if seq - 1 == self.covered:  # the predecessor is vouched for: this one is wrong
                raise _Bad(seq, f"prev hash does not link to entry {seq - 1}")
            raise _Bad(
                seq - 1,
                f"is not the entry that entry {seq} was chained to (modified and re-hashed)",
            )
        self.prev_prev_hash, self.prev_hash = self.prev_hash, stored
        self.expected += 1
        checkpoint = self.pending.pop(seq, None)
        if checkpoint is not None:
            self._checkpoint(seq, stored, checkpoint)
        heads = self.anchors.pop(seq, None)
        if heads is not None:
            self._anchor(seq, stored, heads)

    def _anchor(self, seq: int, entry_hash: bytes, heads: list[bytes]) -> None:
        """Entry ``seq`` against the heads partner checkpoints state for it: they vouch for
        entries ``1..seq`` even against the holder of our audit key."""
        if not all(hmac.compare_digest(head, entry_hash) for head in heads):
            raise _Bad(
                self.anchored + 1,
                f"entries {self.anchored + 1}..{seq} do not match the partner's checkpoint at "
                f"entry {seq} (the log was rewritten and re-signed)",
            )
        self.anchored = seq

    def _checkpoint(self, seq: int, head_hash: bytes, row: _Row) -> None:
        head, prev_seq, interval = self._signed(seq, row)
        if prev_seq > self.covered:
            raise _Bad(
                prev_seq,
                f"its checkpoint was deleted (the checkpoint at entry {seq} points back to it)",
            )
        if prev_seq < self.covered:
            raise self._fail_since_covered(
                f"not signed: the checkpoint at entry {seq} skips the one at {self.covered}"
            )
        if head != head_hash:
            raise self._fail_since_covered(
                f"entries {self.covered + 1}..{seq} do not match the signed checkpoint "
                f"at entry {seq} (the chain was rewritten)"
            )
        self.covered = seq
        self.interval = interval

    def finish(self) -> None:
        last = self.expected - 1
        if self.pending:
            seq = min(self.pending)
            self._signed(seq, self.pending[seq])
            raise _Bad(
                last + 1,
                f"is missing (the log was truncated: the checkpoint at entry {seq} covers "
                f"entries {last + 1}..{seq})",
            )
        if last > 0 and self.covered == 0:
            raise _Bad(1, "not signed: the log has entries but no checkpoint (deleted)")
        if last - self.covered >= self.interval > 0:
            raise _Bad(
                self.covered + 1,
                f"not signed: {last - self.covered} entries follow the last checkpoint, which "
                f"says one is written every {self.interval} (a checkpoint was deleted)",
            )
        if self.anchors:
            seq = max(self.anchors)
            raise _Bad(
                last + 1,
                f"is missing (the log was truncated or replaced: the partner holds a "
                f"checkpoint of entry {seq})",
            )


def _trusted_anchors(
    partner_checkpoints: Iterable[PublishedCheckpoint], key: VerifyKey
) -> tuple[dict[int, list[bytes]], str | None]:
    """The head hashes by seq of the partner checkpoints that verify with ``key``, and the
    reason the first one that does not is not trusted (None when all are)."""
    anchors: dict[int, list[bytes]] = {}
    untrusted: list[str] = []
    given = list(partner_checkpoints)
    for index, published in enumerate(given, 1):
        cp = published.checkpoint
        where = f"partner checkpoint {index} of {len(given)} (entry {cp.seq})"
        if published.audit_key != key:
            untrusted.append(
                f"{where} is signed by another audit key "
                f"({published.audit_key.fingerprint()}): not trusted"
            )
            continue
        try:
            published.verify()
        except DecryptionError:
            untrusted.append(f"{where} does not verify with the audit key (forged): not trusted")
            continue
        anchors.setdefault(cp.seq, []).append(cp.head_hash)
    reason = None
    if untrusted:
        more = f" (and {len(untrusted) - 1} more)" if len(untrusted) > 1 else ""
        reason = untrusted[0] + more
    return anchors, reason


def verify_rows(
    entries: Iterable[_Row],
    checkpoints: Iterable[_Row],
    verify_key: VerifyKey,
    partner_checkpoints: Iterable[PublishedCheckpoint] = (),
) -> VerifyReport:
    """Verify rows as read from the two tables (``entries`` in seq order); see the module."""
    checkpoint_rows = list(checkpoints)
    anchors, untrusted = _trusted_anchors(partner_checkpoints, verify_key)
    rows = iter(entries)
    count = 0
    walker: _Walker | None = None
    try:
        walker = _Walker(checkpoint_rows, verify_key, anchors)
        for row in rows:
            count += 1
            walker.entry(row)
        walker.finish()
    except _Bad as bad:
        count += sum(1 for _ in rows)
        covered = 0 if walker is None else walker.covered
        anchored = 0 if walker is None else walker.anchored
        return VerifyReport(
            False, count, len(checkpoint_rows), bad.seq, bad.reason, covered, anchored
        )
    # The log itself is intact; a partner checkpoint that is not ours is still a failure
    # (the evidence was tampered with, or is for another key), never silently dropped.
    return VerifyReport(
        untrusted is None,
        count,
        len(checkpoint_rows),
        None,
        untrusted,
        walker.covered,
        walker.anchored,
    )


def verify_log(
    path: str | Path,
    verify_key: VerifyKey,
    *,
    partner_checkpoints: Iterable[PublishedCheckpoint] = (),
) -> VerifyReport:
    """Verify the audit log at ``path`` with the agency's audit (checkpoint) ``verify_key``
    and, when given, against ``partner_checkpoints``: the checkpoints of this log that the
    partner kept from our receipts (:func:`~xlink.audit.load_checkpoints` of what it
    exported; docs/audit.md, "Partner checkpoints").

    Returns ``ok=True`` only if every entry hash, prev link and checkpoint verifies, nothing
    a checkpoint covers is missing, and every partner checkpoint verifies with ``verify_key``
    and names an entry of the log with exactly its head hash. A partner checkpoint that does
    not verify (forged, or another key) gives ``ok=False`` with ``first_bad_seq=None`` and is
    not used. A file that is not SQLite, lacks the tables or holds values of the wrong types
    gives ``ok=False`` with a reason. Raises ``FileNotFoundError`` if ``path`` does not exist
    (a missing log is not a verdict on a log: give an empty one to check it against partner
    checkpoints).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return VerifyReport(False, 0, 0, None, f"cannot open the database: {exc}")
    try:
        checkpoints = conn.execute(
            "SELECT seq, head_hash, time_us, prev_seq, interval, signature"
            " FROM audit_checkpoints ORDER BY seq"
        ).fetchall()
        cursor = conn.execute(
            "SELECT seq, time_us, kind, fields, prev_hash, entry_hash FROM audit_entries"
            " ORDER BY seq"
        )
        return verify_rows(cursor, checkpoints, verify_key, partner_checkpoints)
    except sqlite3.Error as exc:
        return VerifyReport(False, 0, 0, None, f"not a readable audit log: {exc}")
    finally:
        conn.close()
