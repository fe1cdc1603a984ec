#!/usr/bin/env python3
"""Generate the xlink-query-v1 test vectors (spec: protocols/xlink-query-v1.md §11).

Writes ``protocols/vectors/query-v1/valid.json`` and ``invalid.json``; with ``--check`` it
compares them with what it would write and writes nothing (exit status 1 if they differ).
Every input is fixed: the secrets, digests, nonces, blinds and label nonces come from labels
through :class:`~xlink.crypto.rand.DeterministicRandom`, so running this twice gives identical
files. ``tests/protocol/test_query_vectors.py`` recomputes every value from the code, replays
the conversation through fresh sessions and checks every invalid case.

The sessions are sans-I/O; what their callers do is part of some checks (the holder's OPRF
evaluation and quota, its check of the claimed handles, the asker's table and unblinding). The
drivers here (:class:`HolderDriver`, :class:`AskerDriver`) take those steps as the agency does:
the holder's evaluation and handle check run the real ``QueryService._evaluate`` and
``QueryService._releases`` (``xlink/agency/_query_holder.py``) on a stand-in agency; the
asker's mirror ``QueryClient._open`` (whether to fetch), ``_fetch_table`` (the merge, checked
against WELCOME's table digest) and ``_evaluate_all`` (``xlink/agency/_query_asker.py``).

Usage: ``python protocols/generate_query_vectors.py [--check]``
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgpack
import rbcl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.agency._query_common import DST_PERIOD_KEY
from xlink.agency._query_holder import QueryServed, QueryService
from xlink.crypto import oprf9497
from xlink.crypto.oprf9497 import OprfKey
from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import AbortCode
from xlink.errors import (
    InvalidElement,
    LocalProtocolError,
    PeerAborted,
    ProtocolError,
    QuotaExhausted,
    RemoteProtocolError,
)
from xlink.linkage.tokens import TokenSet, TokenSetBuilder, token_digest
from xlink.query import messages as M
from xlink.query.session import (
    AskerSession,
    EvaluationAnswered,
    EvaluationRequested,
    Fate,
    HolderSession,
    QueryConfig,
    ReleaseAnswer,
    ReleaseRequested,
    ReleasesReceived,
    RequestedHit,
    SessionState,
    TableChunkReceived,
    TableComplete,
    TableRequested,
    Welcomed,
    query_handle,
    session_id_of,
)
from xlink.query.table import (
    DIGEST_DST,
    ENTRY_DST,
    TOMBSTONE,
    AskerTable,
    HolderTable,
    label_size_for,
    presence_bits,
    table_digest,
)
from xlink.release.label import open_labelled, per_handle, seal_labelled

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "vectors" / "query-v1"
PREFIX = "xlink-query-v1-vector/"

# -- the fixed inputs ---------------------------------------------------------------------------

SCHEMA_ID = "query-vector-schema"
KEYS = ("name_dob", "document")
MOU_ID = "ca-us-query-vector"
ASKER = "agency-ca"
HOLDER = "agency-us"
PERIOD = "2025-06"
TABLE_CHUNK_ENTRIES = 4
"""Entries per TABLE_CHUNK in the conversation (the agency fills whole frames)."""
QUOTA_LEFT = 100
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)

# The tokens, by name: what each stands for is written in ``_TOKEN_PARTS``.
_TOKEN_PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "T1": ("name_dob", ("ada", "lovelace", "1815-12-10")),
    "T2": ("document", ("P", "CA1234567")),
    "T3": ("document", ("P", "GB7654321")),
    "T4": ("name_dob", ("charles", "babbage", "1791-12-26")),
    "T5": ("document", ("P", "US1111111")),
    "T6": ("name_dob", ("mary", "somerville", "1780-12-26")),
    "T7": ("document", ("P", "FR2222222")),
}
# The holder's list before and after its one update: H-2 is removed (its entries become
# tombstones), H-4 is added (T1's third occurrence, j = 2).
LIST_V1: list[tuple[str, list[str]]] = [
    ("H-1", ["T1", "T2"]),
    ("H-2", ["T1", "T3"]),
    ("H-3", ["T4"]),
]
LIST_V2: list[tuple[str, list[str]]] = [
    ("H-1", ["T1", "T2"]),
    ("H-3", ["T4"]),
    ("H-4", ["T1", "T5"]),
]
# The asker's travellers: X holds H-1's two tokens, Y nothing the holder has, Z H-3's one.
TRAVELLERS: list[tuple[str, list[str]]] = [
    ("X", ["T1", "T2"]),
    ("Y", ["T6", "T7"]),
    ("Z", ["T4"]),
]
# The EVALUATEs (pipelined: both are sent before the first answer) and their tokens.
EVALUATIONS: list[list[str]] = [["T1", "T2"], ["T6", "T7", "T4"]]
# The release request: X with H-1 (record 0) on T1 and T2; Z with H-3 (record 2) on T4.
REQUESTED: list[tuple[str, int, list[str]]] = [("X", 0, ["T1", "T2"]), ("Z", 2, ["T4"])]


FLAG_NOTES = {
    "after-close": "a frame after the session ended (§6)",
    "caller": "a call the session's state does not allow (the caller's bug, not the peer's)",
    "codec": "not a canonical, well-typed frame (§6.2)",
    "count": "the wrong number of elements, handles or entries",
    "duplicate": "a value repeated where each must be distinct",
    "element": "an element that is not a valid ristretto255 encoding (§4)",
    "handles": "request handles that are not the ones the holder evaluated",
    "handshake": "a HELLO or WELCOME that does not agree with the MOU or the parties",
    "non-canonical": "an encoding with another canonical form",
    "order": "a frame in a state that does not allow it",
    "peer-abort": "an ABORT from the peer",
    "presence": "a presence field that does not fit the entries",
    "quota": "more OPRF evaluations than the quota leaves (§8)",
    "replay": "a frame or request sent twice",
    "table": "a table or delta that does not check out against its digest (§5)",
}
"""What each flag of invalid.json means (Wycheproof's ``notes``)."""


def fixed(label: str, n: int) -> bytes:
    """``n`` fixed bytes named ``label``: the first ``n`` of its DeterministicRandom stream."""
    return DeterministicRandom(PREFIX + label)(n)


def token(name: str) -> bytes:
    key, parts = _TOKEN_PARTS[name]
    return token_digest(SCHEMA_ID, 1, key, 1, parts)


def key_of(name: str) -> str:
    return _TOKEN_PARTS[name][0]


def random_scalar(rng: Callable[[int], bytes]) -> bytes:
    """RFC 9497 ``RandomScalar`` as :func:`oprf9497.blind` draws it: 64 bytes reduced modulo
    the group order, drawn again if zero."""
    while True:
        scalar = bytes(rbcl.crypto_core_ristretto255_scalar_reduce(rng(64)))
        if any(scalar):
            return scalar


SEALING_SECRET = fixed("sealing-key", 32)
MOU_DIGEST = fixed("mou-digest", 32)
SCHEMA_DIGEST = fixed("schema-digest", 32)


def lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def period_seed(secret: bytes, mou_digest: bytes) -> bytes:
    """§4.2: HKDF-SHA256 of the sealing key's secret, salted with the MOU digest."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=mou_digest, info=DST_PERIOD_KEY)
    return hkdf.derive(secret)


def period_info(mou_id: str, period: str) -> bytes:
    return lp(mou_id.encode()) + lp(period.encode())


def derive_scalar(seed: bytes, info: bytes) -> bytes:
    """RFC 9497 §3.2.1 ``DeriveKeyPair`` (the private scalar ``skS``), written out."""
    derive_input = seed + len(info).to_bytes(2, "big") + info
    for counter in range(256):
        scalar = oprf9497.hash_to_scalar(
            derive_input + bytes([counter]), oprf9497.DERIVE_KEY_PAIR_DST
        )
        if any(scalar):
            return scalar
    raise AssertionError("DeriveKeyPairError")


def period_key() -> OprfKey:
    return OprfKey.derive(period_seed(SEALING_SECRET, MOU_DIGEST), period_info(MOU_ID, PERIOD))


def config() -> QueryConfig:
    return QueryConfig(MOU_ID, MOU_DIGEST, SCHEMA_DIGEST, len(KEYS), ASKER, HOLDER)


def token_set(records: list[tuple[str, list[str]]]) -> TokenSet:
    builder = TokenSetBuilder(KEYS)
    for record_id, names in records:
        builder.add_record(record_id, [(key_of(n), token(n)) for n in names])
    return builder.build()


def holder_tables(key: OprfKey) -> tuple[HolderTable, bytes]:
    """The holder's table at version 2, and the entries of its version 1."""
    table = HolderTable.build(key, token_set(LIST_V1))
    version_1 = b"".join(table.delta(0))
    table.update(token_set(LIST_V2))
    assert table.version == 2
    return table, version_1


def hexes(items: list[bytes]) -> list[str]:
    return [x.hex() for x in items]


# -- (a) the OPRF under the period key ----------------------------------------------------------


def oprf_vectors() -> dict[str, Any]:
    seed = period_seed(SEALING_SECRET, MOU_DIGEST)
    info = period_info(MOU_ID, PERIOD)
    key = OprfKey.derive(seed, info)
    sk = derive_scalar(seed, info)
    assert OprfKey(sk).evaluate(b"check") == key.evaluate(b"check")
    rng = DeterministicRandom(PREFIX + "oprf-blinds")
    cases = []
    for name in ("T1", "T2", "T4"):
        t = token(name)
        blind = random_scalar(rng)
        state, blinded = oprf9497.blind_with([t], [blind])
        evaluated = key.blind_evaluate(blinded)
        (output,) = oprf9497.finalize(state, evaluated)
        assert output == key.evaluate(t)
        cases.append(
            {
                "token": name,
                "input": t.hex(),
                "blind": blind.hex(),
                "blinded_element": blinded.hex(),
                "evaluated_element": evaluated.hex(),
                "output": output.hex(),
            }
        )
    return {
        "suite": oprf9497.SUITE,
        "mode": oprf9497.MODE_OPRF,
        "context_string": oprf9497.CONTEXT_STRING.hex(),
        "blind_seed": PREFIX + "oprf-blinds",
        "key": {
            "sealing_key_secret": SEALING_SECRET.hex(),
            "mou_digest": MOU_DIGEST.hex(),
            "hkdf_info": DST_PERIOD_KEY.decode(),
            "seed": seed.hex(),
            "mou_id": MOU_ID,
            "period": PERIOD,
            "info": info.hex(),
            "skS": sk.hex(),
        },
        "cases": cases,
    }


# -- (b) the table ------------------------------------------------------------------------------


def _entry(record: int, presence: bytes, output: bytes, j: int) -> tuple[int, bytes, bytes]:
    """§5.1 written out: (tag, plain label, encrypted label)."""
    d = hashlib.sha512(lp(ENTRY_DST) + output + j.to_bytes(4, "big")).digest()
    plain = record.to_bytes(4, "big") + presence
    label = bytes(a ^ b for a, b in zip(plain, d[8 : 8 + len(plain)], strict=True))
    return int.from_bytes(d[:8], "big"), plain, label


def _spec_entries(key: OprfKey) -> list[dict[str, Any]]:
    """Every entry of the version-2 table, derived from §5.1-§5.2 (not from HolderTable)."""
    entries: list[dict[str, Any]] = []
    occurrences: dict[str, int] = {}
    live_v2 = {rid for rid, _ in LIST_V2}
    records = [(rid, names, 1) for rid, names in LIST_V1]
    records += [(rid, names, 2) for rid, names in LIST_V2 if rid not in dict(LIST_V1)]
    for index, (rid, names, added) in enumerate(records):
        removed = rid not in live_v2
        presence = presence_bits(sorted(KEYS.index(key_of(n)) for n in names), len(KEYS))
        for name in names:
            j = occurrences.get(name, 0)
            occurrences[name] = j + 1
            output = key.evaluate(token(name))
            if removed:
                tag, plain, label = _entry(TOMBSTONE, bytes(len(presence)), output, j)
            else:
                tag, plain, label = _entry(index, presence, output, j)
            entries.append(
                {
                    "record_id": rid,
                    "record": index,
                    "key": key_of(name),
                    "token": name,
                    "output": output.hex(),
                    "j": j,
                    "tag": tag.to_bytes(8, "big").hex(),
                    "plain_label": plain.hex(),
                    "label": label.hex(),
                    "version": 2 if (removed or added == 2) else 1,
                    "tombstone": removed,
                }
            )
    entries.sort(key=lambda e: e["tag"])
    return entries


def _lookups(table: AskerTable, key: OprfKey) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [
            {"record": h.record, "presence": sorted(KEYS[k] for k in h.presence)}
            for h in table.lookup(key.evaluate(token(name)))
        ]
        for name in sorted(_TOKEN_PARTS)
    }


def spec_digest(entries: bytes, label_size: int) -> bytes:
    """§5.4 written out (not from ``table_digest``): SHA-256 of ``lp(DIGEST_DST)`` and the
    entries ``tag || label`` in ascending byte order, i.e. by tag, then by label."""
    width = 8 + label_size
    items = sorted(entries[i : i + width] for i in range(0, len(entries), width))
    return hashlib.sha256(lp(DIGEST_DST) + b"".join(items)).digest()


def code_digest(entries: bytes, label_size: int) -> bytes:
    """``table_digest`` of entries given as bytes, in any order."""
    return table_digest(*AskerTable.parse_chunk(entries, label_size))


# Entries (tag, label) in no order, for the digest's ordering: equal tags (ordered by label,
# labels differing in their last byte and in a byte after a zero), tags that sort differently
# as little-endian or as signed integers.
_DIGEST_EXAMPLE: list[tuple[str, str]] = [
    ("8000000000000000", "0000000000"),
    ("0000000000000002", "0100000000"),
    ("0000000000000100", "0000000003"),
    ("0000000000000002", "00ff000000"),
    ("0100000000000000", "0000000000"),
    ("0000000000000002", "0100000001"),
    ("0000000000000001", "ffffffffff"),
]


def digest_example() -> dict[str, Any]:
    size = label_size_for(len(KEYS))
    given = [bytes.fromhex(t + label) for t, label in _DIGEST_EXAMPLE]
    digest = spec_digest(b"".join(given), size)
    assert code_digest(b"".join(given), size) == digest
    assert code_digest(b"".join(reversed(given)), size) == digest
    return {
        "entries": hexes(given),
        "ordered": hexes(sorted(given)),
        "digest": digest.hex(),
    }


def table_vectors() -> dict[str, Any]:
    key = period_key()
    table, version_1 = holder_tables(key)
    entries = _spec_entries(key)
    size = label_size_for(len(KEYS))
    width = 8 + size
    since_0 = b"".join(table.delta(0))
    since_1 = b"".join(table.delta(1))
    assert since_0 == b"".join(bytes.fromhex(e["tag"] + e["label"]) for e in entries)
    assert since_1 == b"".join(
        bytes.fromhex(e["tag"] + e["label"]) for e in entries if e["version"] > 1
    )
    assert len(version_1) == width * 5
    digests = {
        "0": spec_digest(b"", size),
        "1": spec_digest(version_1, size),
        "2": spec_digest(since_0, size),
    }
    assert table.digest() == digests["2"] == code_digest(since_0, size)
    assert HolderTable.build(key, token_set(LIST_V1)).digest() == digests["1"]
    copy = AskerTable(len(KEYS))
    assert copy.digest == digests["0"]
    copy.merge(*AskerTable.parse_chunk(version_1, size), version=1, total=5, digest=digests["1"])
    after_v1 = _lookups(copy, key)
    copy.merge(*AskerTable.parse_chunk(since_1, size), version=2, total=7, digest=digests["2"])
    assert copy.digest == digests["2"]
    after_v2 = _lookups(copy, key)
    return {
        "keys": list(KEYS),
        "label_size": label_size_for(len(KEYS)),
        "entry_dst": ENTRY_DST.decode(),
        "tokens": {
            name: {"key": k, "parts": list(parts), "token": token(name).hex()}
            for name, (k, parts) in _TOKEN_PARTS.items()
        },
        "token_schema": {"schema_id": SCHEMA_ID, "schema_version": 1, "key_version": 1},
        "list_version_1": [{"record_id": r, "tokens": t} for r, t in LIST_V1],
        "list_version_2": [{"record_id": r, "tokens": t} for r, t in LIST_V2],
        "entries": entries,
        "version_1_entries": version_1.hex(),
        "delta_since_0": since_0.hex(),
        "delta_since_1": since_1.hex(),
        "digest_dst": DIGEST_DST.decode(),
        "digests": {version: d.hex() for version, d in digests.items()},
        "digest_example": digest_example(),
        "lookups_at_version_1": after_v1,
        "lookups_at_version_2": after_v2,
    }


# -- the drivers: the sessions with their callers -----------------------------------------------


class _NullAudit:
    def append(self, *args: object, **kwargs: object) -> None:
        pass


def stand_in_service(key: OprfKey, table: HolderTable, *, quota_left: int) -> QueryService:
    """A :class:`QueryService` without an agency: enough of one for ``_evaluate`` (the quota
    and the element checks) and for the handle check of ``_releases`` (with an infinite
    threshold, so that nothing is scored as released and no release is built)."""
    service = QueryService.__new__(QueryService)
    weights = {k: 1.0 for k in KEYS}
    agency = SimpleNamespace(
        peer_id=ASKER,
        agency_id=HOLDER,
        clock=lambda: NOW,
        audit=_NullAudit(),
        mou=SimpleNamespace(id=MOU_ID, match_threshold=math.inf, approval_required=False),
        schema=SimpleNamespace(
            key_names=KEYS, weights=lambda: weights, disagreement_weights=lambda: weights
        ),
        keys=SimpleNamespace(signing_key=None),
        _handle_key=lambda: None,
        rng=DeterministicRandom(PREFIX + "unused"),
        queue=None,
        # Nothing reaches the threshold, so the batch is empty.
        release=lambda decision, records: SimpleNamespace(sealed=(), fates=()),
    )
    service.agency = cast(Any, agency)
    service._key = key
    service.table = table
    service.quota = quota_left
    service._quota = cast(Any, _DayQuota(quota_left))
    service._records = cast(Any, {rid: None for rid in table.record_ids if rid is not None})
    service._claims = cast(Any, _NoClaims())
    service._weights = (cast(Any, weights), weights)
    return service


class _DayQuota:
    """The day's quota of a stand-in service, counted in memory."""

    def __init__(self, quota: int) -> None:
        self.quota, self.used = quota, 0

    def left(self, day: object) -> int:
        return max(self.quota - self.used, 0)

    def take(self, day: object, count: int) -> bool:
        if self.used + count > self.quota:
            return False
        self.used += count
        return True


class _NoClaims:
    """The day's claims of a stand-in service: nothing is decided, so nothing is claimed."""

    @contextlib.contextmanager
    def request(self, day: object) -> Iterator[object]:
        yield SimpleNamespace(stale=lambda record_id, tokens: frozenset(), add=lambda *a: None)


@dataclass
class HolderDriver:
    """The holder's session and what its caller does with each event."""

    session: HolderSession
    service: QueryService
    chunk_entries: int
    answers: list[ReleaseAnswer]

    def drain(self) -> list[bytes]:
        out = []
        while (frame := self.session.next_frame()) is not None:
            out.append(frame)
        return out

    def deliver(self, frame: bytes) -> None:
        session, table = self.session, self.service.table
        for event in session.receive(frame):
            if isinstance(event, TableRequested):
                session.send_table(
                    table.delta(event.since, chunk=self.chunk_entries),
                    version=table.version,
                    total=table.entries,
                )
            elif isinstance(event, EvaluationRequested):
                key = self.service._key
                asyncio.run(self.service._evaluate(session, key, event, QueryServed()))
            elif isinstance(event, ReleaseRequested):
                # The agency's handle check (CONFIRMATION_FAILED) on the real code path; its
                # answers are then this case's fixed ones.
                check = SimpleNamespace(
                    session_id=session.session_id,
                    abort=session.abort,
                    send_releases=lambda answers: None,
                )
                self.service._releases(cast(Any, check), table, event, QueryServed(), {})
                answers = self.answers
                if len(answers) != len(event.hits):
                    answers = [ReleaseAnswer(Fate.NOT_DECIDED)] * len(event.hits)
                session.send_releases(answers)


@dataclass
class AskerDriver:
    """The asker's session, its script of requests and what it does with each event. Its copy
    of the table (``table``) starts empty, version 0, unless the caller sets another before
    the WELCOME."""

    session: AskerSession
    evaluations: list[tuple[list[bytes], list[bytes]]]  # (inputs, blinds) per EVALUATE
    hits: list[RequestedHit]
    receipts: list[tuple[bool, bytes]]
    actions: deque[str] = field(default_factory=deque)
    blinded: deque[oprf9497.BlindState] = field(default_factory=deque)
    outputs: list[bytes] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    table: AskerTable = field(init=False)
    welcome: Welcomed | None = None
    releases: list[ReleaseAnswer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.table = AskerTable(self.session.config.keys)
        evaluations = (f"evaluate {i}" for i in range(len(self.evaluations)))
        self.actions = deque(["start", "table", *evaluations, "releases", "receipts", "close"])

    def _can(self, action: str) -> bool:
        state = self.session.state
        if action == "start":
            return True
        if action.startswith("evaluate"):
            return state in (SessionState.READY, SessionState.EVALUATING) and (
                state is SessionState.READY or action != "evaluate 0"
            )
        if action == "receipts":
            return state is SessionState.RECEIPTS
        return state is SessionState.READY

    def step(self) -> list[bytes]:
        """Take every request that is due, then every frame queued."""
        s = self.session
        while self.actions and not s.done and self._can(self.actions[0]):
            action = self.actions.popleft()
            if action == "start":
                s.start()
            elif action == "table":
                self._fetch_if_stale()
            elif action.startswith("evaluate"):
                inputs, blinds = self.evaluations[int(action.split()[1])]
                state, blinded = oprf9497.blind_with(inputs, blinds)
                self.blinded.append(state)
                s.evaluate(blinded)
            elif action == "releases":
                s.request_releases(self.hits)
            elif action == "receipts":
                s.send_receipts(self.receipts)
            else:
                s.close()
        out = []
        while (frame := s.next_frame()) is not None:
            out.append(frame)
        return out

    def _fetch_if_stale(self) -> None:
        """As ``QueryClient._open``: the copy is current iff its digest is WELCOME's; else
        fetch what changed since its version (all of it, from an empty copy, when its version
        is not older than WELCOME's)."""
        welcome, keys = self.welcome, self.session.config.keys
        assert welcome is not None
        if self.table.version > welcome.table_version:
            self.table = AskerTable(keys)
        if self.table.digest != welcome.table_digest:
            if self.table.version == welcome.table_version:
                self.table = AskerTable(keys)
            self.session.request_table(self.table.version)

    def deliver(self, frame: bytes) -> None:
        s = self.session
        for event in s.receive(frame):
            try:
                if isinstance(event, Welcomed):
                    self.welcome = event
                elif isinstance(event, TableChunkReceived):
                    AskerTable.parse_chunk(event.entries, s.config.presence_size + 4)
                    self.chunks.append(event.entries)
                elif isinstance(event, TableComplete):
                    assert self.welcome is not None
                    entries, self.chunks = b"".join(self.chunks), []
                    self.table.merge(
                        *AskerTable.parse_chunk(entries, self.table.label_size),
                        version=event.version,
                        total=event.total,
                        digest=self.welcome.table_digest,
                    )
                elif isinstance(event, EvaluationAnswered):
                    try:
                        self.outputs += oprf9497.finalize(self.blinded.popleft(), event.evaluated)
                    except InvalidElement as exc:
                        code = (
                            AbortCode.IDENTITY_ELEMENT
                            if exc.identity
                            else AbortCode.INVALID_ELEMENT
                        )
                        raise RemoteProtocolError(code, f"element {exc.index}") from None
                elif isinstance(event, ReleasesReceived):
                    self.releases = list(event.answers)
            except RemoteProtocolError as exc:
                s.abort(exc.code, exc.detail)
                raise


# -- (c) the conversation -----------------------------------------------------------------------


def _release_answers(session_id: bytes, key: OprfKey) -> tuple[list[ReleaseAnswer], list[Any]]:
    """The holder's answers to the release request: H-1's release SENT (a stand-in sealed
    release in a labelled frame, xlink-release-v1 §10.2), H-3 NOT_DECIDED."""
    names = REQUESTED[0][2]
    outputs = {query_handle(session_id, y): y for y in (key.evaluate(token(n)) for n in names)}
    sealed = b"stand-in sealed release: H-1"
    frame = seal_labelled(
        sealed,
        list(outputs),
        session_id=session_id,
        outputs_of=per_handle(outputs.__getitem__),
        rng=DeterministicRandom(PREFIX + "label-nonce"),
    )
    release_id = fixed("release-id", 16)
    answers = [ReleaseAnswer(Fate.SENT, release_id, frame), ReleaseAnswer(Fate.NOT_DECIDED)]
    described = [
        {
            "fate": "SENT",
            "release_id": release_id.hex(),
            "sealed": sealed.hex(),
            "handles": sorted(h.hex() for h in outputs),
            "nonce_seed": PREFIX + "label-nonce",
            "frame": frame.hex(),
        },
        {"fate": "NOT_DECIDED", "release_id": bytes(16).hex(), "frame": ""},
    ]
    return answers, described


def _session_id() -> bytes:
    return session_id_of(config(), fixed("asker-nonce", 16), fixed("holder-nonce", 16), PERIOD)


def _blinds() -> list[list[bytes]]:
    rng = DeterministicRandom(PREFIX + "asker-blinds")
    return [[random_scalar(rng) for _ in names] for names in EVALUATIONS]


def build_parties(*, quota_left: int = QUOTA_LEFT) -> tuple[HolderDriver, AskerDriver]:
    """The holder and the asker of the conversation (§11), fresh; ``quota_left`` as an
    invalid case may set it."""
    key = period_key()
    table, _ = holder_tables(key)
    holder_session = HolderSession(
        config(),
        period=PERIOD,
        table_version=table.version,
        entries=table.entries,
        table_digest=table.digest(),
        quota_left=quota_left,
        rng=DeterministicRandom(PREFIX + "holder-nonce"),
    )
    sid = _session_id()
    answers, _ = _release_answers(sid, key)
    holder = HolderDriver(
        holder_session,
        stand_in_service(key, table, quota_left=quota_left),
        TABLE_CHUNK_ENTRIES,
        answers,
    )
    asker_session = AskerSession(config(), rng=DeterministicRandom(PREFIX + "asker-nonce"))
    traveller_keys = {t: sorted(KEYS.index(key_of(n)) for n in names) for t, names in TRAVELLERS}
    hits = [
        RequestedHit(
            record,
            presence_bits(traveller_keys[traveller], len(KEYS)),
            tuple(sorted(query_handle(sid, key.evaluate(token(n))) for n in names)),
        )
        for traveller, record, names in REQUESTED
    ]
    evaluations = [
        ([token(n) for n in names], blinds)
        for names, blinds in zip(EVALUATIONS, _blinds(), strict=True)
    ]
    receipts = [(True, b"stand-in receipt: agency-ca for H-1")]
    asker = AskerDriver(asker_session, evaluations, hits, receipts)
    return holder, asker


def run_conversation(holder: HolderDriver, asker: AskerDriver) -> list[tuple[str, bytes]]:
    """The reference pair driver: in rounds, the asker takes the requests due and sends its
    frames; the holder receives each (answering each event at once) and sends what is due;
    then the asker receives the holder's. Returns ``(sender, frame)`` in the order sent."""
    transcript: list[tuple[str, bytes]] = []
    to_asker: deque[bytes] = deque()
    while True:
        sent = asker.step()
        transcript += [("asker", f) for f in sent]
        for frame in sent:
            holder.deliver(frame)
            answer = holder.drain()
            transcript += [("holder", f) for f in answer]
            to_asker.extend(answer)
        if not sent and not to_asker:
            break
        while to_asker:
            asker.deliver(to_asker.popleft())
    assert holder.session.state is SessionState.CLOSED
    assert asker.session.state is SessionState.CLOSED
    return transcript


def _type_name(frame: bytes) -> str:
    return M.decode(frame).TYPE.name


def conversation_vectors() -> dict[str, Any]:
    key = period_key()
    holder, asker = build_parties()
    transcript = run_conversation(holder, asker)
    sid = _session_id()
    assert holder.session.session_id == asker.session.session_id == sid
    _, described = _release_answers(sid, key)
    names = sorted({n for names in EVALUATIONS for n in names})
    outputs = {n: key.evaluate(token(n)) for n in names}
    assert asker.outputs == [outputs[n] for names in EVALUATIONS for n in names]
    assert asker.table.version == 2 and asker.table.digest == holder.service.table.digest()
    lookups = {
        n: [
            {"record": h.record, "presence": sorted(KEYS[k] for k in h.presence)}
            for h in asker.table.lookup(outputs[n])
        ]
        for n in names
    }
    # The released frame opens with the asker's outputs (xlink-release-v1 §10.2).
    own = {query_handle(sid, y): y for y in asker.outputs}
    _, sealed = open_labelled(
        asker.releases[0].frame, session_id=sid, outputs_of=per_handle(own.__getitem__)
    )
    assert sealed == bytes.fromhex(described[0]["sealed"])
    blinds = _blinds()
    return {
        "config": {
            "mou_id": MOU_ID,
            "mou_digest": MOU_DIGEST.hex(),
            "schema_digest": SCHEMA_DIGEST.hex(),
            "keys": len(KEYS),
            "asker": ASKER,
            "holder": HOLDER,
        },
        "holder": {
            "nonce_seed": PREFIX + "holder-nonce",
            "nonce": fixed("holder-nonce", 16).hex(),
            "period": PERIOD,
            "table": "the version-2 table of `table` under the key of `oprf`",
            "table_version": 2,
            "entries": 7,
            "table_digest": holder.service.table.digest().hex(),
            "quota_left": QUOTA_LEFT,
            "table_chunk_entries": TABLE_CHUNK_ENTRIES,
            "release_answers": described,
        },
        "asker": {
            "nonce_seed": PREFIX + "asker-nonce",
            "nonce": fixed("asker-nonce", 16).hex(),
            "copy": "none: an empty copy (version 0), so the whole table is fetched",
            "since": 0,
            "travellers": [{"record_id": t, "tokens": n} for t, n in TRAVELLERS],
            "blind_seed": PREFIX + "asker-blinds",
            "evaluations": [
                {
                    "request": i + 1,
                    "tokens": names,
                    "blinds": hexes(bs),
                }
                for i, (names, bs) in enumerate(zip(EVALUATIONS, blinds, strict=True))
            ],
            "release_request": [
                {
                    "traveller": traveller,
                    "record": record,
                    "tokens": names,
                    "presence": hit.presence.hex(),
                    "handles": hexes(list(hit.handles)),
                }
                for (traveller, record, names), hit in zip(REQUESTED, asker.hits, strict=True)
            ],
            "receipts": [{"ok": ok, "body": body.hex()} for ok, body in asker.receipts],
        },
        "session_id": sid.hex(),
        "outputs": {n: y.hex() for n, y in outputs.items()},
        "handles": {n: query_handle(sid, y).hex() for n, y in outputs.items()},
        "lookups": lookups,
        "frames": [{"from": who, "type": _type_name(f), "hex": f.hex()} for who, f in transcript],
    }


# -- invalid vectors ----------------------------------------------------------------------------


def raw(*body: object) -> bytes:
    """A message of any body (``0x51`` then msgpack), canonical or not."""
    return bytes([M.QUERY_VERSION]) + _packb(list(body))


def _packb(obj: object) -> bytes:
    return cast(bytes, msgpack.packb(obj, use_bin_type=True))


def enc(message: M.QueryMessage) -> bytes:
    return M.encode(message)


@dataclass
class Outcome:
    error: str  # RemoteProtocolError, PeerAborted, QuotaExhausted or LocalProtocolError
    code: AbortCode | None
    state: str  # the session's state before the frame
    abort_frame: bytes | None


def replay_case(side: str, setup: dict[str, Any], prefix: list[bytes], frame: bytes) -> Outcome:
    """§11.2's procedure: build the side, feed the prefix (the side's own output and requests
    taken before each frame; every prefix frame must be accepted), then the frame, which must
    raise. Returns what it raised and the ABORT it queued."""
    holder, asker = build_parties(**setup)
    party: HolderDriver | AskerDriver = holder if side == "holder" else asker

    def take() -> None:
        if isinstance(party, AskerDriver):
            party.step()
        else:
            party.drain()

    for i, f in enumerate(prefix):
        take()
        try:
            party.deliver(f)
        except ProtocolError as exc:
            raise AssertionError(f"prefix frame {i} rejected: {exc}") from None
    take()
    state = party.session.state.value
    try:
        party.deliver(frame)
    except QuotaExhausted as exc:
        return Outcome("QuotaExhausted", exc.code, state, party.session.next_frame())
    except PeerAborted as exc:
        return Outcome("PeerAborted", exc.code, state, party.session.next_frame())
    except RemoteProtocolError as exc:
        return Outcome("RemoteProtocolError", exc.code, state, party.session.next_frame())
    except LocalProtocolError:
        return Outcome("LocalProtocolError", None, state, party.session.next_frame())
    raise AssertionError("the frame was accepted")


def _find_invalid_encoding() -> bytes:
    """The first even, canonical 32-byte string (little-endian 2, 4, 6, ...) that is not a
    ristretto255 encoding (no square root)."""
    for n in range(2, 1000, 2):
        candidate = n.to_bytes(32, "little")
        if not rbcl.crypto_core_ristretto255_is_valid_point(candidate):
            return candidate
    raise AssertionError("none found")


def bad_elements(valid: bytes) -> list[tuple[str, str, bytes, bool, AbortCode]]:
    """(name, description, element, identity flag, abort code) of invalid elements."""
    top = bytearray(valid)
    top[31] |= 0x80
    p_value = ((1 << 255) - 19).to_bytes(32, "little")
    return [
        ("identity", "the identity (32 zero bytes)", bytes(32), True, AbortCode.IDENTITY_ELEMENT),
        (
            "identity_top_bit",
            "the identity with bit 255 set (libsodium 1.0.18 would read it as the identity)",
            bytes(31) + b"\x80",
            False,
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "top_bit_set",
            "a valid element with bit 255 set (an alias libsodium 1.0.18 would accept)",
            bytes(top),
            False,
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "not_canonical_p",
            "the field value p = 2^255 - 19 (not reduced)",
            p_value,
            False,
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "negative_s",
            "s = 1: odd, i.e. negative (RFC 9496 §4.3.1)",
            (1).to_bytes(32, "little"),
            False,
            AbortCode.INVALID_ELEMENT,
        ),
        (
            "no_square_root",
            "the first even s with no valid decoding",
            _find_invalid_encoding(),
            False,
            AbortCode.INVALID_ELEMENT,
        ),
    ]


def _frames_of(conv: dict[str, Any], who: str) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for f in conv["frames"]:
        if f["from"] == who:
            out.setdefault(f["type"], []).append(bytes.fromhex(f["hex"]))
    return out


_Case = tuple[str, str, str, dict[str, Any], list[bytes], bytes, AbortCode | None, str, str]
"""name, section, side, setup, prefix, frame, abort code (None: LocalProtocolError), flags
(space-separated), requirement"""


def invalid_cases(conv: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every invalid case (§11.2), checked against the code, and the invalid elements."""
    a = _frames_of(conv, "asker")
    h = _frames_of(conv, "holder")
    (hello,), (table_request,), (e1, e2) = a["HELLO"], a["TABLE_REQUEST"], a["EVALUATE"]
    (release_request,), (receipts,), (bye,) = a["RELEASE_REQUEST"], a["RECEIPTS"], a["BYE"]
    (welcome,), (c1, c2), (table_end,) = h["WELCOME"], h["TABLE_CHUNK"], h["TABLE_END"]
    (v1, v2), (releases,) = h["EVALUATED"], h["RELEASES"]
    hl = cast(M.Hello, M.decode(hello))
    wl = cast(M.Welcome, M.decode(welcome))
    ev = cast(M.Evaluate, M.decode(e1))
    rr = cast(M.ReleaseRequest, M.decode(release_request))
    rs = cast(M.ReleasesMessage, M.decode(releases))
    rc = cast(M.ReceiptsMessage, M.decode(receipts))
    ch1 = cast(M.TableChunk, M.decode(c1)).entries
    ch2 = cast(M.TableChunk, M.decode(c2)).entries
    vd = cast(M.Evaluated, M.decode(v1))
    hello_with = functools.partial(dataclasses.replace, hl)
    rr_with = functools.partial(dataclasses.replace, rr)
    releases_with = functools.partial(dataclasses.replace, rs)

    def hello_raw(*fields: object) -> bytes:
        return raw(1, *fields)

    # The prefixes: each side's peer frames of the conversation up to a point.
    h_ready = [hello]
    h_tabled = [hello, table_request]
    h_evaluated = [*h_tabled, e1, e2]
    h_released = [*h_evaluated, release_request]
    h_all = [*h_released, receipts, bye]
    a_tabling = [welcome]
    a_ready = [welcome, c1, c2, table_end]
    a_evaluated = [*a_ready, v1, v2]
    a_releases = [*a_evaluated, releases]
    t1, t2, t4 = rr.handles[:16], rr.handles[16:32], rr.handles[32:48]
    fields = (hl.nonce, hl.mou_id, hl.mou_digest, hl.schema_digest, hl.asker, hl.holder)
    unexpected = AbortCode.UNEXPECTED_MESSAGE
    malformed = AbortCode.MALFORMED_MESSAGE
    A = AbortCode
    # fmt: off
    cases: list[_Case] = [
        # -- encoding (§6.2), to the holder waiting for a HELLO
        ("empty_message", "6.2", "holder", {}, [], b"", malformed, "codec",
         "an empty message is MALFORMED_MESSAGE"),
        ("psi_version_byte", "6.2", "holder", {}, [], b"\x02" + hello[1:],
         A.UNSUPPORTED_VERSION, "codec",
         "a first byte other than 0x51 (here 0x02, an xlink-psi-v2 message) is "
         "UNSUPPORTED_VERSION"),
        ("transfer_frame", "6.2", "holder", {}, [], b"\xf0XR\x01\x07" + bytes(32),
         A.UNSUPPORTED_VERSION, "codec",
         "a release-transfer frame (f0 58 52 01) is UNSUPPORTED_VERSION"),
        ("truncated_body", "6.2", "holder", {}, [], hello[:-1], A.TRUNCATED, "codec",
         "a body that ends before its last item is TRUNCATED"),
        ("truncated_bin", "6.2", "holder", {}, [], hello[:4], A.TRUNCATED, "codec",
         "a bin header announcing more bytes than follow is TRUNCATED"),
        ("trailing_byte", "6.2", "holder", {}, [], hello + b"\x00", malformed, "codec",
         "a byte after the array is MALFORMED_MESSAGE"),
        ("non_canonical_integer", "6.2", "holder", {}, [], table_request[:-1] + b"\xcc\x00",
         malformed, "codec non-canonical",
         "TABLE_REQUEST's since 0 as a uint8 (cc 00) instead of a positive fixint is "
         "MALFORMED_MESSAGE"),
        ("non_canonical_bin", "6.2", "holder", {}, [], hello[:3] + b"\xc5\x00\x10" + hello[5:],
         malformed, "codec non-canonical",
         "the nonce as a bin16 instead of a bin8 is MALFORMED_MESSAGE"),
        ("map_body", "6.2", "holder", {}, [], b"\x51" + _packb({1: 2}), malformed, "codec",
         "a map instead of an array is MALFORMED_MESSAGE"),
        ("integer_body", "6.2", "holder", {}, [], b"\x51\x01", malformed, "codec",
         "a body that is not an array is MALFORMED_MESSAGE"),
        ("empty_array", "6.2", "holder", {}, [], raw(), malformed, "codec",
         "an empty array is MALFORMED_MESSAGE"),
        ("negative_type", "6.2", "holder", {}, [], raw(-1), malformed, "codec",
         "a negative type is MALFORMED_MESSAGE"),
        ("unknown_type_13", "6.2", "holder", {}, [], raw(13), A.UNKNOWN_MESSAGE, "codec",
         "type 13 is UNKNOWN_MESSAGE"),
        ("unknown_type_0", "6.2", "holder", {}, [], raw(0), A.UNKNOWN_MESSAGE, "codec",
         "type 0 is UNKNOWN_MESSAGE"),
        ("hello_five_fields", "6.2", "holder", {}, [], hello_raw(*fields[:-1]), malformed,
         "codec", "a HELLO without its last field (a wrong field count) is MALFORMED_MESSAGE"),
        ("hello_seven_fields", "6.2", "holder", {}, [], hello_raw(*fields, 0), malformed,
         "codec",
         "a HELLO with a seventh field (an earlier draft's have_version 0) is MALFORMED_MESSAGE"),
        ("hello_nonce_str", "6.2", "holder", {}, [], hello_raw("x" * 16, *fields[1:]),
         malformed, "codec", "a str where a bin is expected is MALFORMED_MESSAGE"),
        ("hello_nonce_15", "6.4", "holder", {}, [], hello_raw(hl.nonce[:15], *fields[1:]),
         malformed, "codec", "a HELLO nonce of 15 bytes is MALFORMED_MESSAGE"),
        ("table_request_since_bool", "6.2", "holder", {}, [], raw(3, True), malformed,
         "codec",
         "a boolean where an integer is expected (TABLE_REQUEST's since) is MALFORMED_MESSAGE"),
        ("ext_type", "6.2", "holder", {}, [], b"\x51" + _packb([1, msgpack.ExtType(1, b"x")]),
         malformed, "codec", "an ext type is MALFORMED_MESSAGE"),
        ("reserved_byte", "6.2", "holder", {}, [], b"\x51\xc1", malformed, "codec",
         "the reserved byte 0xc1 is MALFORMED_MESSAGE"),
        ("array_header_beyond_limit", "6.2", "holder", {}, [], b"\x51\xdd\xff\xff\xff\xff",
         malformed, "codec",
         "an array32 header of 2^32-1 items is MALFORMED_MESSAGE although the body ends there"),
        ("bin_header_beyond_limit", "6.2", "holder", {}, [], bytes.fromhex("51930601c67fffffff"),
         A.TRUNCATED, "codec",
         "a bin32 header of 2^31-1 bytes with the body ending there is TRUNCATED (the str and "
         "bin limits are checked once the content is there)"),
        # -- the handshake (§6.4, §7.2)
        ("hello_other_mou_id", "6.4", "holder", {}, [], enc(hello_with(mou_id="another-mou")),
         A.MOU_MISMATCH, "handshake", "a HELLO naming another MOU is MOU_MISMATCH"),
        ("hello_other_mou_digest", "6.4", "holder", {}, [],
         enc(hello_with(mou_digest=bytes(32))), A.MOU_MISMATCH, "handshake",
         "a HELLO with another MOU digest is MOU_MISMATCH"),
        ("hello_other_schema", "6.4", "holder", {}, [],
         enc(hello_with(schema_digest=bytes(32))), A.SCHEMA_MISMATCH, "handshake",
         "a HELLO with another linkage-schema digest is SCHEMA_MISMATCH"),
        ("hello_other_asker", "6.4", "holder", {}, [], enc(hello_with(asker="agency-xx")),
         A.PARTY_MISMATCH, "handshake", "a HELLO from another asker is PARTY_MISMATCH"),
        ("hello_parties_swapped", "6.4", "holder", {}, [],
         enc(hello_with(asker=HOLDER, holder=ASKER)), A.PARTY_MISMATCH, "handshake",
         "a HELLO with the asker and the holder swapped is PARTY_MISMATCH"),
        ("evaluate_before_hello", "7.2", "holder", {}, [], e1, unexpected, "order",
         "an EVALUATE before the HELLO is UNEXPECTED_MESSAGE"),
        ("bye_before_hello", "7.2", "holder", {}, [], bye, unexpected, "order",
         "a BYE before the HELLO is UNEXPECTED_MESSAGE"),
        ("hello_twice", "7.2", "holder", {}, h_ready, hello, unexpected, "order",
         "a second HELLO is UNEXPECTED_MESSAGE"),
        ("welcome_to_the_holder", "7.2", "holder", {}, h_ready, welcome, unexpected, "order",
         "a WELCOME sent to the holder is UNEXPECTED_MESSAGE"),
        # -- the table (§6.6)
        ("table_request_not_served", "6.6", "holder", {}, h_ready, enc(M.TableRequest(3)),
         A.BAD_TABLE, "table",
         "a TABLE_REQUEST since version 3 when the holder serves version 2 is BAD_TABLE"),
        # -- EVALUATE (§6.9, §8)
        ("evaluate_replayed", "6.9", "holder", {}, [*h_tabled, e1], e1, A.CHUNK_REPLAYED,
         "order replay", "an EVALUATE with the number of the previous request is "
         "CHUNK_REPLAYED"),
        ("evaluate_skipped", "6.9", "holder", {}, h_tabled, enc(M.Evaluate(2, ev.blinded)),
         A.CHUNK_OUT_OF_ORDER, "order",
         "an EVALUATE numbered 2 as the first request is CHUNK_OUT_OF_ORDER"),
        ("evaluate_request_zero", "6.9", "holder", {}, h_tabled,
         enc(M.Evaluate(0, ev.blinded)), A.CHUNK_REPLAYED, "order",
         "an EVALUATE numbered 0 is CHUNK_REPLAYED (requests are numbered from 1)"),
        ("evaluate_33_bytes", "6.9", "holder", {}, h_tabled, raw(6, 1, ev.blinded[:33]),
         malformed, "codec count",
         "an EVALUATE of 33 bytes (not whole elements) is MALFORMED_MESSAGE"),
        ("evaluate_empty", "6.9", "holder", {}, h_tabled, raw(6, 1, b""), malformed,
         "codec count", "an EVALUATE of no element is MALFORMED_MESSAGE"),
        ("evaluate_over_quota", "8", "holder", {"quota_left": 4}, h_tabled,
         enc(M.Evaluate(1, ev.blinded * 2 + ev.blinded[:32])), A.QUOTA_EXHAUSTED,
         "quota caller",
         "an EVALUATE of 5 elements with 4 evaluations left today is QUOTA_EXHAUSTED"),
        # -- RELEASE_REQUEST (§6.11, §7.5)
        ("release_request_presence_short", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(presence=rr.presence[:1])), malformed, "count",
         "a RELEASE_REQUEST whose presence is not P bytes per record is MALFORMED_MESSAGE"),
        ("release_request_counts_disagree", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(counts=rr.counts + b"\x01")), malformed, "count",
         "a RELEASE_REQUEST with more counts than records is MALFORMED_MESSAGE"),
        ("release_request_zero_count", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(counts=b"\x03\x00")), malformed, "count",
         "a RELEASE_REQUEST with a record of 0 handles is MALFORMED_MESSAGE"),
        ("release_request_handles_disagree", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(handles=rr.handles + t4)), malformed, "count",
         "a RELEASE_REQUEST whose handles are not 16 bytes times the sum of the counts is "
         "MALFORMED_MESSAGE"),
        ("release_request_presence_bit_k", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(presence=bytes([rr.presence[0] | 1 << len(KEYS)]) + rr.presence[1:])),
         malformed, "presence",
         "a RELEASE_REQUEST whose first presence sets bit K = 2 (a key the schema does not "
         "name) is MALFORMED_MESSAGE"),
        ("release_request_presence_bit_7", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(presence=rr.presence[:1] + bytes([rr.presence[1] | 0x80]))),
         malformed, "presence",
         "a RELEASE_REQUEST whose second presence sets bit 7 (the last bit of its byte, above "
         "K) is MALFORMED_MESSAGE"),
        ("release_request_duplicate_record", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(records=rr.records[:4] * 2)), malformed, "duplicate",
         "a RELEASE_REQUEST naming one record twice is MALFORMED_MESSAGE"),
        ("release_request_duplicate_handle", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(handles=t1 + t1 + t4)), malformed, "duplicate",
         "a RELEASE_REQUEST repeating a handle within a record is MALFORMED_MESSAGE"),
        ("release_request_handles_descending", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(handles=t2 + t1 + t4)), malformed, "order",
         "a RELEASE_REQUEST whose handles of one record are not ascending is "
         "MALFORMED_MESSAGE"),
        ("release_request_replayed_number", "6.11", "holder", {}, h_evaluated,
         enc(rr_with(request=2)), A.CHUNK_REPLAYED, "order replay",
         "a RELEASE_REQUEST with the number of the last EVALUATE is CHUNK_REPLAYED"),
        ("release_request_foreign_handle", "7.5", "holder", {}, h_evaluated,
         enc(rr_with(handles=t1 + t2 + t1)), A.CONFIRMATION_FAILED, "caller handles",
         "a RELEASE_REQUEST claiming for H-3 the handle of a token H-3 does not hold is "
         "CONFIRMATION_FAILED"),
        ("release_request_made_up_handle", "7.5", "holder", {}, h_evaluated,
         enc(rr_with(handles=t1 + t2 + bytes(16))), A.CONFIRMATION_FAILED, "caller handles",
         "a RELEASE_REQUEST with a handle that is no output's is CONFIRMATION_FAILED"),
        # -- RECEIPTS (§6.13)
        ("receipts_before_releases", "7.2", "holder", {}, h_evaluated, receipts, unexpected,
         "order", "RECEIPTS with no release outstanding is UNEXPECTED_MESSAGE"),
        ("receipts_wrong_count", "6.13", "holder", {}, h_released,
         enc(M.ReceiptsMessage(rc.request, rc.oks * 2, rc.answers * 2)), A.WRONG_COUNT,
         "count", "RECEIPTS with two answers for one SENT release is WRONG_COUNT"),
        ("receipts_flag_2", "6.13", "holder", {}, h_released,
         enc(M.ReceiptsMessage(rc.request, b"\x02", rc.answers)), malformed, "codec",
         "an answer flag other than 0 or 1 is MALFORMED_MESSAGE"),
        ("receipts_other_request", "6.13", "holder", {}, h_released,
         enc(M.ReceiptsMessage(rc.request + 1, rc.oks, rc.answers)), unexpected, "order",
         "RECEIPTS for another request number is UNEXPECTED_MESSAGE"),
        # -- ABORT and the end (§6.14, §6.15)
        ("abort_from_the_asker", "6.15", "holder", {}, h_tabled,
         enc(M.Abort(int(A.WRONG_COUNT), "answers disagree")), A.WRONG_COUNT, "peer-abort",
         "an ABORT ends the session: PeerAborted with its code, and no ABORT is sent back"),
        ("abort_unknown_code", "6.15", "holder", {}, h_ready, enc(M.Abort(200, "")),
         A.PEER_ABORTED, "peer-abort",
         "an ABORT with a code this version does not define is reported as PEER_ABORTED"),
        ("message_after_bye", "7.2", "holder", {}, h_all, e1, None, "after-close",
         "after BYE the holder is CLOSED: a frame is a local error (LocalProtocolError) and "
         "nothing is sent"),
        # -- the asker: WELCOME (§6.5, §7.3)
        ("welcome_bad_period", "6.5", "asker", {}, [],
         enc(dataclasses.replace(wl, period="2025-13")), malformed, "handshake",
         "a WELCOME period that is not YYYY-MM (month 13) is MALFORMED_MESSAGE"),
        ("welcome_short_period", "6.5", "asker", {}, [],
         raw(2, wl.nonce, "2025-6", 2, 7, wl.table_digest, 100, 2), malformed, "codec",
         "a WELCOME period of 6 bytes is MALFORMED_MESSAGE"),
        ("welcome_six_fields", "6.5", "asker", {}, [], raw(2, wl.nonce, wl.period, 2, 7, 100, 2),
         malformed, "codec",
         "a WELCOME without table_digest (an earlier draft's six fields) is MALFORMED_MESSAGE"),
        ("welcome_digest_31", "6.5", "asker", {}, [],
         raw(2, wl.nonce, wl.period, 2, 7, wl.table_digest[:31], 100, 2), malformed, "codec",
         "a WELCOME table_digest of 31 bytes is MALFORMED_MESSAGE"),
        ("welcome_other_keys", "6.5", "asker", {}, [], enc(dataclasses.replace(wl, keys=3)),
         A.SCHEMA_MISMATCH, "handshake",
         "a WELCOME with another number of keys is SCHEMA_MISMATCH"),
        ("welcome_twice", "7.3", "asker", {}, a_ready, welcome, unexpected, "order",
         "a second WELCOME is UNEXPECTED_MESSAGE"),
        ("hello_to_the_asker", "7.3", "asker", {}, [], hello, unexpected, "order",
         "a HELLO sent to the asker is UNEXPECTED_MESSAGE"),
        # -- the table (§6.7, §6.8, §5.3)
        ("table_chunk_unrequested", "7.3", "asker", {}, [], c1, unexpected, "order",
         "a TABLE_CHUNK before any TABLE_REQUEST is UNEXPECTED_MESSAGE"),
        ("table_chunk_out_of_order", "6.7", "asker", {}, a_tabling, c2, A.CHUNK_OUT_OF_ORDER,
         "order", "TABLE_CHUNK 2 first is CHUNK_OUT_OF_ORDER"),
        ("table_chunk_replayed", "6.7", "asker", {}, [*a_tabling, c1], c1, A.CHUNK_REPLAYED,
         "order replay", "TABLE_CHUNK 1 twice is CHUNK_REPLAYED"),
        ("table_chunk_seq_0", "6.7", "asker", {}, a_tabling, enc(M.TableChunk(0, ch1)),
         A.CHUNK_REPLAYED, "order", "TABLE_CHUNK 0 is CHUNK_REPLAYED (chunks count from 1)"),
        ("table_chunk_partial_entry", "5.3", "asker", {}, a_tabling,
         enc(M.TableChunk(1, ch1[:-1])), A.BAD_TABLE, "table caller",
         "a TABLE_CHUNK that is not whole entries of 8 + label_size bytes is BAD_TABLE"),
        ("table_end_other_chunk_count", "6.8", "asker", {}, [*a_tabling, c1, c2],
         enc(M.TableEnd(3, 2, 7)), A.WRONG_COUNT, "count",
         "TABLE_END announcing 3 chunks after 2 is WRONG_COUNT"),
        ("table_end_other_version", "6.8", "asker", {}, [*a_tabling, c1, c2],
         enc(M.TableEnd(2, 3, 7)), A.BAD_TABLE, "table",
         "TABLE_END announcing version 3 when WELCOME named version 2 is BAD_TABLE"),
        ("table_end_other_total", "6.8", "asker", {}, [*a_tabling, c1, c2],
         enc(M.TableEnd(2, 2, 8)), A.BAD_TABLE, "table",
         "TABLE_END announcing 8 entries when WELCOME named 7 is BAD_TABLE (before any merge)"),
        ("table_merged_total_other", "5.3", "asker", {}, [*a_tabling, c1],
         enc(M.TableEnd(1, 2, 7)), A.BAD_TABLE, "table caller",
         "a delta that merges into 4 entries (the second TABLE_CHUNK withheld, TABLE_END "
         "counting one) when TABLE_END and WELCOME say 7 is BAD_TABLE"),
        ("table_digest_other", "5.4", "asker", {},
         [*a_tabling, c1, enc(M.TableChunk(2, ch2[:-1] + bytes([ch2[-1] ^ 1])))], table_end,
         A.BAD_TABLE, "table caller",
         "a delta with one label bit flipped (whole entries, ascending, 7 of them) merges into "
         "a table whose digest is not WELCOME's: BAD_TABLE"),
        ("table_entries_not_ascending", "5.3", "asker", {},
         [*a_tabling, enc(M.TableChunk(1, ch2)), enc(M.TableChunk(2, ch1))], table_end,
         A.BAD_TABLE, "table caller",
         "table entries not ascending by tag (the two chunks' entries swapped; each chunk is "
         "accepted, the merge at TABLE_END is not) are BAD_TABLE"),
        # -- EVALUATED (§6.10, §7.3)
        ("evaluated_unrequested", "7.3", "asker", {}, a_tabling, v1, unexpected, "order",
         "an EVALUATED with no EVALUATE outstanding is UNEXPECTED_MESSAGE"),
        ("evaluated_other_request", "6.10", "asker", {}, a_ready, v2, unexpected, "order",
         "an EVALUATED answering request 2 before request 1 is UNEXPECTED_MESSAGE"),
        ("evaluated_wrong_length", "6.10", "asker", {}, a_ready,
         enc(M.Evaluated(1, vd.evaluated[:32])), A.WRONG_COUNT, "count",
         "an EVALUATED with one element fewer than its EVALUATE is WRONG_COUNT"),
        ("evaluated_replayed", "6.10", "asker", {}, [*a_ready, v1], v1, unexpected,
         "order replay", "EVALUATED 1 twice is UNEXPECTED_MESSAGE"),
        # -- RELEASES (§6.12, §7.3)
        ("releases_unrequested", "7.3", "asker", {}, a_ready, releases, unexpected, "order",
         "RELEASES with no RELEASE_REQUEST outstanding is UNEXPECTED_MESSAGE"),
        ("releases_unknown_fate", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(fates=b"\x01\x07")), malformed, "codec",
         "a fate of 7 is MALFORMED_MESSAGE"),
        ("releases_fate_0", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(fates=b"\x01\x00")), malformed, "codec",
         "a fate of 0 is MALFORMED_MESSAGE"),
        ("releases_frames_disagree", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(frames=())), A.WRONG_COUNT, "count",
         "one SENT fate and no frame is WRONG_COUNT"),
        ("releases_extra_frame", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(frames=rs.frames * 2)), A.WRONG_COUNT, "count",
         "one SENT fate and two frames is WRONG_COUNT"),
        ("releases_fate_count", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(fates=rs.fates + b"\x06", release_ids=rs.release_ids + bytes(16))),
         A.WRONG_COUNT, "count", "three fates for two requested records is WRONG_COUNT"),
        ("releases_release_ids_count", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(release_ids=rs.release_ids[:16])), A.WRONG_COUNT, "count",
         "one release id for two records is WRONG_COUNT"),
        ("releases_other_request", "6.12", "asker", {}, a_evaluated,
         enc(releases_with(request=2)), unexpected, "order",
         "RELEASES for another request number is UNEXPECTED_MESSAGE"),
        # -- ABORT and the end
        ("abort_from_the_holder", "6.15", "asker", {}, a_tabling,
         enc(M.Abort(int(A.BAD_TABLE), "a table version not served")), A.BAD_TABLE,
         "peer-abort",
         "an ABORT (BAD_TABLE, answering the TABLE_REQUEST) ends the session: PeerAborted with "
         "its code"),
        ("abort_quota_exhausted", "8", "asker", {}, a_ready,
         enc(M.Abort(int(A.QUOTA_EXHAUSTED), "the MOU's daily query quota is used up")),
         A.QUOTA_EXHAUSTED, "peer-abort quota",
         "an ABORT with QUOTA_EXHAUSTED (the holder refusing an EVALUATE) raises "
         "QuotaExhausted, the PeerAborted of that code"),
        ("asker_message_after_bye", "7.3", "asker", {}, a_releases, v1, None, "after-close",
         "after its BYE the asker is CLOSED: a frame is a local error (LocalProtocolError) "
         "and nothing is sent"),
    ]
    # fmt: on
    # Invalid elements: to the holder in an EVALUATE, to the asker in an EVALUATED (§4.1).
    elements = []
    for name, description, bad, identity, refusal in bad_elements(ev.blinded[:32]):
        evaluate = enc(M.Evaluate(1, ev.blinded[:32] + bad))
        evaluated = enc(M.Evaluated(1, vd.evaluated[:32] + bad))
        requirement = f"element 1 {description} is {refusal.name}"
        cases.append((f"evaluate_{name}", "4.1", "holder", {}, h_tabled, evaluate, refusal,
                      "element caller", f"EVALUATE {requirement}"))  # fmt: skip
        cases.append((f"evaluated_{name}", "4.1", "asker", {}, a_ready, evaluated, refusal,
                      "element caller", f"EVALUATED {requirement}"))  # fmt: skip
        elements.append(_element_case(name, description, bad, identity, refusal))
    out = []
    for tc_id, (name, section, side, setup, prefix, frame, code, flags, requirement) in enumerate(
        cases, start=1
    ):
        outcome = replay_case(side, setup, prefix, frame)
        if outcome.code is not code:
            raise AssertionError(f"{name}: expected {code}, got {outcome}")
        if outcome.error in ("PeerAborted", "QuotaExhausted", "LocalProtocolError"):
            assert outcome.abort_frame is None, name
        else:
            assert outcome.abort_frame is not None, name
            sent = cast(M.Abort, M.decode(outcome.abort_frame))
            assert code is not None and sent.code == int(code), name
        case: dict[str, Any] = {
            "tcId": tc_id,
            "name": name,
            "section": section,
            "requirement": requirement,
            "side": side,
        }
        if setup:
            case["setup"] = setup
        case |= {
            "state": outcome.state,
            "prefix": hexes(prefix),
            "frame": frame.hex(),
            "result": "invalid",
            "error": outcome.error,
            "abort": None if code is None else code.name,
            "flags": flags.split(),
        }
        out.append(case)
    return out, elements


def _element_case(
    name: str, description: str, bad: bytes, identity: bool, code: AbortCode
) -> dict[str, Any]:
    """One invalid element, checked directly: ``OprfKey.blind_evaluate`` (the holder) and
    ``finalize`` (the asker) raise InvalidElement with its ``identity`` flag."""
    key = period_key()
    for call in (
        lambda: key.blind_evaluate(bad),
        lambda: oprf9497.finalize(
            oprf9497.blind_with([b"x"], [(1).to_bytes(32, "little")])[0], bad
        ),
    ):
        try:
            call()
        except InvalidElement as exc:
            assert exc.identity is identity and exc.index == 0, name
        else:
            raise AssertionError(f"{name}: accepted")
    return {
        "name": name,
        "description": description,
        "element": bad.hex(),
        "identity": identity,
        "abort": code.name,
    }


def _copy_of(entries: bytes, version: int) -> AskerTable:
    """An asker's copy holding ``entries`` at ``version`` (merged into an empty copy)."""
    copy = AskerTable(len(KEYS))
    if entries:
        tags, labels = AskerTable.parse_chunk(entries, copy.label_size)
        copy.merge(tags, labels, version=version, total=len(tags))
    return copy


def merge_cases() -> list[dict[str, Any]]:
    """Deltas the asker's copy refuses at the merge (§5.3, §5.4), checked directly on
    ``AskerTable.merge``: each raises BAD_TABLE and leaves the copy as it was. ``check`` is
    the first check that fails: ``order``, ``total`` or ``digest`` (a ``digest`` case merges
    without error when no digest is given: only the digest tells)."""
    key = period_key()
    table, version_1 = holder_tables(key)
    size = label_size_for(len(KEYS))
    width = 8 + size
    since_0, since_1 = b"".join(table.delta(0)), b"".join(table.delta(1))
    digest_1, digest_2 = code_digest(version_1, size), table.digest()
    tombstone = next(
        bytes.fromhex(e["tag"] + e["label"]) for e in _spec_entries(key) if e["tombstone"]
    )
    assert since_1.count(tombstone) == 1
    # The asker's copy is of the table the holder had before it lost its saved table: version
    # 1 of the same list in another order (other table indexes, so other labels under the
    # same tags). The holder rebuilt it (the vectors' version 1) and updated it to version 2.
    reordered = [LIST_V1[1], LIST_V1[0], LIST_V1[2]]
    rebuilt = b"".join(HolderTable.build(key, token_set(reordered)).delta(0))
    assert rebuilt != version_1 and len(rebuilt) == len(version_1)
    swapped = since_0[width : 2 * width] + since_0[:width] + since_0[2 * width :]
    flipped = since_0[:-1] + bytes([since_0[-1] ^ 1])
    cases: list[tuple[str, str, bytes, int, bytes, int, bytes, str]] = [
        ("tombstone_withheld", "the delta since version 1 without one of H-2's two "
         "tombstones: still 7 entries (a tombstone replaces an entry), but H-2's live entry "
         "is kept", version_1, 1, since_1.replace(tombstone, b""), 7, digest_2, "digest"),
        ("label_changed", "the whole table with one bit of its last label flipped",
         b"", 0, flipped, 7, digest_2, "digest"),
        ("copy_of_a_rebuilt_table", "a version-1 copy of the table the holder had before it "
         "lost it and rebuilt it (its list in another order, so other indexes), brought to "
         "version 2 by the current table's honest delta since 1: 7 entries, not the table "
         "announced", rebuilt, 1, since_1, 7, digest_2, "digest"),
        ("announced_other_digest", "the whole version-2 table checked against the digest of "
         "version 1", b"", 0, since_0, 7, digest_1, "digest"),
        ("total_other", "the whole version-2 table announced with 8 entries", b"", 0,
         since_0, 8, digest_2, "total"),
        ("entries_not_ascending", "the whole version-2 table with its first two entries "
         "swapped", b"", 0, swapped, 7, digest_2, "order"),
    ]  # fmt: skip
    out = []
    for name, requirement, copy_entries, copy_version, delta, total, digest, check in cases:
        copy = _copy_of(copy_entries, copy_version)
        before = (copy.tags.copy(), copy.labels.copy(), copy.version, copy.digest)
        tags, labels = AskerTable.parse_chunk(delta, size)
        try:
            copy.merge(tags, labels, version=2, total=total, digest=digest)
        except RemoteProtocolError as exc:
            assert exc.code is AbortCode.BAD_TABLE, name
        else:
            raise AssertionError(f"{name}: merged")
        assert (copy.tags == before[0]).all() and (copy.labels == before[1]).all(), name
        assert (copy.version, copy.digest) == before[2:], name
        lenient = _copy_of(copy_entries, copy_version)
        try:
            lenient.merge(tags, labels, version=2, total=total)
        except RemoteProtocolError:
            assert check != "digest", name
        else:
            assert check == "digest" and lenient.digest != digest, name
        out.append(
            {
                "name": name,
                "section": "5.4" if check == "digest" else "5.3",
                "requirement": f"{requirement}: BAD_TABLE",
                "copy": {"version": copy_version, "entries": copy_entries.hex()},
                "delta": delta.hex(),
                "version": 2,
                "total": total,
                "digest": digest.hex(),
                "check": check,
                "abort": AbortCode.BAD_TABLE.name,
            }
        )
    return out


# -- output -------------------------------------------------------------------------------------


def build_vectors() -> dict[str, str]:
    """The file name -> JSON text of every vector file."""
    conversation = conversation_vectors()
    cases, elements = invalid_cases(conversation)
    header = {
        "protocol": "xlink-query-v1",
        "spec": "protocols/xlink-query-v1.md",
        "generator": "protocols/generate_query_vectors.py",
    }
    valid = {
        **header,
        "section": "11.1",
        "oprf": oprf_vectors(),
        "table": table_vectors(),
        "conversation": conversation,
    }
    invalid = {
        **header,
        "section": "11.2",
        "schema": "protocols/schemas/invalid-vectors-v1.json",
        "notes": FLAG_NOTES,
        "elements": elements,
        "merges": merge_cases(),
        "cases": cases,
    }
    return {
        "valid.json": json.dumps(valid, indent=1) + "\n",
        "invalid.json": json.dumps(invalid, indent=1) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    return vector_files.main(build_vectors, OUT_DIR, description, argv)


if __name__ == "__main__":
    raise SystemExit(main())
