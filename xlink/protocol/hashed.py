"""A party's own tokens hashed to the group before the session, and kept across sessions of the
same MOU (spec: xlink-psi-v2 §4.1, §5.3; local only, nothing here reaches the wire).

The hash to group of a token depends only on the token and the MOU's hash-to-group DST, not on
the session, so an agency that exchanges on a schedule can hash its list once and, next time,
only the records that changed. :func:`hash_tokens` returns the hashes of a token set's distinct
values in ascending order (the order :func:`~xlink.protocol._sets.distinct_index` gives, which
the session uses), computing on the party's :class:`~xlink.crypto.workers.GroupWorkers` what a
cache file does not already hold, and writes the cache anew: exactly the current values, so it
never grows with records that left the list.

The cache file holds the agency's tokens, which are derived from its records: it is kept like
them, in the agency's working directory, readable by its owner only. A file that is damaged,
truncated, of another MOU or suite, or whose sampled entries do not hash as recorded is not
used (and is replaced); a wrong entry could only make one of our own tokens miss its match.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from xlink.crypto.suite import ELEMENT_SIZE, SUITES, get_suite
from xlink.crypto.workers import GroupWorkers
from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
from xlink.protocol import _keys
from xlink.protocol._sets import Rows, distinct_index, lookup_sorted, rows_of

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = ["CACHE_DIR", "CACHE_MAGIC", "HashedTokens", "cache_path", "hash_tokens"]

CACHE_DIR: Final = "cache"
"""The cache's directory in an agency's working directory."""
CACHE_MAGIC: Final = b"XLINK-H2G-CACHE1"
"""The first 16 bytes of a cache file (format version 1)."""
_HEADER: Final = len(CACHE_MAGIC) + 32 + 8 + 32  # magic, dst id, count, checksum
_SAMPLES: Final = 8
_PIECE: Final = 1 << 15  # tokens per call to the workers: progress, bounded buffers
_READ: Final = 1 << 20  # bytes per read of a cache file


def dst_id(suite_id: int, mou_digest: bytes) -> bytes:
    """What a cache file is bound to: ``SHA-256(lp("xlink-psi-v2/hash-cache") || DST)`` of the MOU's
    hash-to-group DST (spec §4.2), which names the suite and the MOU."""
    dst = _keys.hash_to_group_dst(get_suite(suite_id).name, mou_digest)
    return hashlib.sha256(_keys._lp(_keys.DST_HASH_CACHE) + dst).digest()


def cache_path(cache_dir: Path, suite_id: int, mou_digest: bytes) -> Path:
    """The cache file for one MOU and suite in ``cache_dir``."""
    return cache_dir / f"h2g-{dst_id(suite_id, mou_digest)[:12].hex()}.bin"


@dataclass(frozen=True, slots=True)
class HashedTokens:
    """The hash to group of a token set's distinct values, ascending by value: what a
    :class:`~xlink.protocol.PsiSession` given ``hashed=`` sends (blinded) instead of hashing
    its tokens itself. ``cached`` of them came from the cache file, ``computed`` were hashed
    now; ``cache_note`` says why a cache file present was not used (None when it was, or
    when there was none)."""

    dst_id: bytes
    elements: bytes
    cached: int
    computed: int
    cache_note: str | None = None

    def __len__(self) -> int:
        return len(self.elements) // ELEMENT_SIZE

    def __repr__(self) -> str:
        return f"HashedTokens({len(self)} elements, cached={self.cached})"


def hash_tokens(
    tokens: TokenSet,
    *,
    suite_id: int,
    mou_digest: bytes,
    workers: GroupWorkers | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HashedTokens:
    """Hash the distinct values of ``tokens`` to the group under the MOU's DST.

    With ``cache_dir``, reuses what its cache file holds and, unless it held exactly these
    tokens, writes the file again with exactly them (owner-only permissions, replaced
    atomically). ``progress(done, total)`` is called as tokens are
    hashed. Raises ``KeyError`` for an unknown suite, ``OSError`` if the cache cannot be
    written.
    """
    suite = get_suite(suite_id)
    dst = _keys.hash_to_group_dst(suite.name, mou_digest)
    ident = dst_id(suite_id, mou_digest)
    rows = rows_of(tokens.values)
    first, _ = distinct_index(rows)
    values = np.ascontiguousarray(rows[first])
    del first
    n = len(values)
    out = np.zeros((n, ELEMENT_SIZE), dtype=np.uint8)
    missing = np.ones(n, dtype=np.bool_)
    note = None
    kept = -1  # entries in a cache file used (-1: none used)
    path = cache_path(cache_dir, suite_id, mou_digest) if cache_dir is not None else None
    if path is not None and path.exists():
        cached, note = _read_cache(path, ident, values, out)
        if cached is True:  # the file held exactly these tokens: read straight into ``out``
            kept = n
            missing[:] = False
        elif cached is not None:
            c_tokens, c_elements = cached
            kept = len(c_tokens)
            idx = lookup_sorted(values, c_tokens)
            hit = idx >= 0
            out[hit] = c_elements[idx[hit]]
            missing = ~hit
            del c_tokens, c_elements, cached, idx
        if kept >= 0:
            note = _sample_check(suite_id, dst, values, out, ~missing)
            if note is not None:
                missing[:] = True
                kept = -1
    pool = workers if workers is not None else GroupWorkers(1)
    todo = np.nonzero(missing)[0]
    total = len(todo)
    for start in range(0, total, _PIECE):
        pick = todo[start : start + _PIECE]
        hashed = pool.hash_to_group(suite, dst, values[pick].tobytes(), TOKEN_SIZE)
        out[pick] = rows_of(hashed)
        if progress is not None:
            progress(start + len(pick), total)
    if path is not None and not (total == 0 and kept == n):
        # (a file that held exactly these tokens, every one found, is left as it is)
        _write_cache(path, ident, values, out)
    if cache_dir is not None:
        _forget_other_suites(cache_dir, suite_id, mou_digest)
    del values  # before the copy below: at most two set-sized arrays at once
    return HashedTokens(ident, out.tobytes(), n - total, total, note)


def _forget_other_suites(cache_dir: Path, suite_id: int, mou_digest: bytes) -> None:
    """Remove this MOU's cache files of every other suite: a party that moved to another
    suite never reads them again, and they hold its tokens (docs/security.md)."""
    for other in SUITES:
        if other.suite_id != suite_id:
            with contextlib.suppress(FileNotFoundError):
                cache_path(cache_dir, other.suite_id, mou_digest).unlink()


def _read_cache(
    path: Path, ident: bytes, values: Rows, out: Rows
) -> tuple[tuple[Rows, Rows] | Literal[True] | None, str | None]:
    """Read the cache file at ``path`` for ``values`` (distinct, ascending). Returns ``(True,
    None)`` when it holds exactly ``values``: their elements are then in ``out``, read from the
    file in pieces, with no copy of it in memory (the usual case: nothing changed since the
    last exchange). Otherwise ``((tokens, elements), None)`` for a file to look values up in,
    or ``(None, why)`` for a file not to use (``out`` may then hold anything)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER)
            if len(head) < _HEADER or head[: len(CACHE_MAGIC)] != CACHE_MAGIC:
                return None, "cache file not recognised"
            at = len(CACHE_MAGIC)
            if head[at : at + 32] != ident:
                return None, "cache file of another MOU or suite"
            count = int.from_bytes(head[at + 32 : at + 40], "big")
            if os.fstat(fh.fileno()).st_size != _HEADER + 2 * 32 * count:
                return None, "cache file truncated"
            summed = hashlib.sha256(head[: at + 40])
            if count == len(values) and _same_tokens(fh, summed, values):
                into = out.reshape(-1).data  # (a 1-D view: writes land in ``out``; fine when empty)
                for start in range(0, len(into), _READ):
                    piece = into[start : start + _READ]
                    if fh.readinto(piece) != len(piece):
                        return None, "cache file truncated"
                    summed.update(piece)
                if summed.digest() != head[at + 40 :]:
                    return None, "cache file damaged"
                return True, None
            fh.seek(0)
            data = fh.read()
    except OSError as exc:
        return None, f"cache not readable ({exc.strerror})"
    whole = memoryview(data)
    summed = hashlib.sha256(whole[: at + 40])
    summed.update(whole[_HEADER:])  # (no copy of the body)
    if len(data) != _HEADER + 2 * 32 * count or summed.digest() != data[at + 40 : _HEADER]:
        return None, "cache file damaged"
    body = np.frombuffer(data, dtype=np.uint8, offset=_HEADER)
    c_tokens = body[: 32 * count].reshape(count, 32)
    c_elements = body[32 * count :].reshape(count, 32)
    # Rows out of order only make lookups miss (a hit is always compared in full).
    return (c_tokens, c_elements), None


def _same_tokens(fh: io.BufferedReader, summed: HASH, values: Rows) -> bool:
    """Read the file's token section in pieces, adding it to ``summed``, and say whether it is
    exactly ``values``. Stops at the first difference (the caller then reads the file whole)."""
    expected = np.ascontiguousarray(values).reshape(-1).data
    buffer = bytearray(_READ)
    for start in range(0, len(expected), _READ):
        want = expected[start : start + _READ]
        piece = memoryview(buffer)[: len(want)]
        if fh.readinto(piece) != len(want):
            return False
        summed.update(piece)
        if piece != want:
            return False
    return True


def _sample_check(
    suite_id: int, dst: bytes, values: Rows, out: Rows, hit: np.ndarray
) -> str | None:
    """Hash a few cached entries again (evenly spaced): a file whose entries were not made
    under this DST is not used."""
    hits = np.nonzero(hit)[0]
    if len(hits) == 0:
        return None
    picks = hits[np.linspace(0, len(hits) - 1, min(_SAMPLES, len(hits))).astype(np.int64)]
    again = get_suite(suite_id).hash_to_group(dst, values[picks].tobytes(), TOKEN_SIZE)
    if again != out[picks].tobytes():
        return "cache entries do not match their tokens"
    return None


def _write_cache(path: Path, ident: bytes, values: Rows, elements: Rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = CACHE_MAGIC + ident + len(values).to_bytes(8, "big")
    h = hashlib.sha256(head)
    h.update(values.data)
    h.update(elements.data)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
            fh.write(h.digest())
            fh.write(values.data)
            fh.write(elements.data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
