"""The xlink-query-v1 vectors (protocols/xlink-query-v1.md §11): the files are what the
generator writes (its ``--check`` passes); every valid value is recomputed from the code (the
period key, the OPRF, the table entries, deltas and digests, the asker's lookups, the session
id, the handles, the labelled release); the conversation replays byte for byte, both as a pair
and one side at a time; every invalid case aborts with exactly its code, and every refused
merge leaves the copy as it was; and random bytes into either session raise only the
protocol's own errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import msgpack
import pytest
from _generators import generator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xlink.agency._query_common as query_common
from xlink.agency._query_common import DST_PERIOD_KEY
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
from xlink.linkage.tokens import token_digest
from xlink.query import messages as M
from xlink.query.session import (
    AskerSession,
    HolderSession,
    QueryConfig,
    RequestedHit,
    SessionState,
    query_handle,
    session_id_of,
)
from xlink.query.table import (
    DIGEST_DST,
    TOMBSTONE,
    AskerTable,
    HolderTable,
    entry_pad,
    label_size_for,
    table_digest,
)
from xlink.release.label import open_labelled, per_handle, seal_labelled

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocols" / "vectors" / "query-v1"


def _generator() -> ModuleType:
    return generator("generate_query_vectors")


GEN = _generator()
VALID: dict[str, Any] = json.loads((VECTORS / "valid.json").read_text())
INVALID: dict[str, Any] = json.loads((VECTORS / "invalid.json").read_text())
CASES: list[dict[str, Any]] = INVALID["cases"]
MERGES: list[dict[str, Any]] = INVALID["merges"]
ERRORS: dict[str, type[ProtocolError]] = {
    "RemoteProtocolError": RemoteProtocolError,
    "PeerAborted": PeerAborted,
    "QuotaExhausted": QuotaExhausted,
    "LocalProtocolError": LocalProtocolError,
}
OPRF, TABLE, CONV = VALID["oprf"], VALID["table"], VALID["conversation"]
X = bytes.fromhex


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _config() -> QueryConfig:
    c = CONV["config"]
    return QueryConfig(
        c["mou_id"], X(c["mou_digest"]), X(c["schema_digest"]), c["keys"], c["asker"], c["holder"]
    )


def _key() -> OprfKey:
    k = OPRF["key"]
    return OprfKey.derive(X(k["seed"]), X(k["info"]))


def _token(name: str) -> bytes:
    return X(TABLE["tokens"][name]["token"])


def _frames(who: str) -> list[bytes]:
    return [X(f["hex"]) for f in CONV["frames"] if f["from"] == who]


# -- the files ----------------------------------------------------------------------------------


def test_files_equal_regenerated_vectors() -> None:
    for name, text in GEN.build_vectors().items():
        assert (VECTORS / name).read_text() == text, f"{name} is stale: run the generator"


def test_generator_check_passes() -> None:
    assert GEN.main(["--check"]) == 0


def test_cases_are_well_formed() -> None:
    assert len(CASES) >= 30
    assert [c["tcId"] for c in CASES] == list(range(1, len(CASES) + 1))
    assert len({c["name"] for c in CASES}) == len(CASES)
    names = {c.name for c in AbortCode}
    for case in CASES:
        assert case["result"] == "invalid"
        assert case["side"] in ("holder", "asker")
        assert case["state"] in {s.value for s in SessionState}
        assert case["error"] in ERRORS
        assert (case["abort"] is None) == (case["error"] == "LocalProtocolError")
        assert case["abort"] is None or case["abort"] in names
        if case["error"] in ("PeerAborted", "QuotaExhausted"):  # a received ABORT
            assert (case["error"] == "QuotaExhausted") == (case["abort"] == "QUOTA_EXHAUSTED")
        assert case["flags"] and case["section"]
        assert set(case.get("setup", {})) <= {"quota_left"}
    assert len(INVALID["elements"]) >= 5
    assert len({m["name"] for m in MERGES}) == len(MERGES) >= 5
    for merge in MERGES:
        assert merge["abort"] == "BAD_TABLE" and merge["check"] in ("order", "total", "digest")
    assert {m["check"] for m in MERGES} == {"order", "total", "digest"}


def test_the_spec_names_every_code_and_section_the_vectors_use() -> None:
    """Each code of the spec's §8 table is an AbortCode with that number; every code the
    vectors expect is in the table; every section they cite exists."""
    import re

    spec = (ROOT / "protocols" / "xlink-query-v1.md").read_text()
    table = re.search(
        r"<!-- query-abort-codes:begin -->\n(.*?)<!-- query-abort-codes:end -->", spec, re.S
    )
    assert table is not None
    rows = [line.strip("|").split("|") for line in table.group(1).splitlines()[2:]]
    named = {row[1].strip(): int(row[0]) for row in rows}
    assert all(AbortCode[name] == code for name, code in named.items())
    assert {c["abort"] for c in CASES if c["abort"]} <= named.keys()
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", spec, re.M))
    assert {c["section"] for c in CASES} | {m["section"] for m in MERGES} <= headings
    for t in M.QueryType:
        assert f"{t.name} (type {int(t)}," in spec


# -- (a) the OPRF under the period key (§4.1, §4.2) --------------------------------------------


def test_period_key_is_derived_as_specified(monkeypatch: pytest.MonkeyPatch) -> None:
    """HKDF-SHA256(ikm = sealing key, salt = MOU digest, info = DST) is the seed; the info is
    lp(mou_id) || lp(period); skS is RFC 9497 DeriveKeyPair; and the agency's own
    ``_period_key`` gives the same key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    k = OPRF["key"]
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=X(k["mou_digest"]), info=k["hkdf_info"].encode()
    ).derive(X(k["sealing_key_secret"]))
    assert seed.hex() == k["seed"]
    assert k["hkdf_info"].encode() == DST_PERIOD_KEY
    info = _lp(k["mou_id"].encode()) + _lp(k["period"].encode())
    assert info.hex() == k["info"]
    derive_input = seed + len(info).to_bytes(2, "big") + info + b"\x00"
    sk = oprf9497.hash_to_scalar(derive_input, oprf9497.DERIVE_KEY_PAIR_DST)
    assert sk.hex() == k["skS"]  # counter 0 gives a non-zero scalar here
    monkeypatch.setattr(query_common, "mou_digest", lambda mou: X(k["mou_digest"]))
    agency = SimpleNamespace(
        mou=SimpleNamespace(id=k["mou_id"]),
        keys=SimpleNamespace(
            sealing_key=SimpleNamespace(secret=lambda: X(k["sealing_key_secret"]))
        ),
    )
    theirs = query_common._period_key(cast(Any, agency), k["period"])
    for key in (theirs, OprfKey(X(k["skS"]))):
        for case in OPRF["cases"]:
            assert key.evaluate(X(case["input"])).hex() == case["output"]


def test_oprf_values() -> None:
    assert OPRF["suite"] == oprf9497.SUITE and OPRF["mode"] == 0
    assert X(OPRF["context_string"]) == b"OPRFV1-\x00-ristretto255-SHA512"
    key = _key()
    rng = DeterministicRandom(OPRF["blind_seed"])
    for case in OPRF["cases"]:
        t = X(case["input"])
        assert t == _token(case["token"])
        state, blinded = oprf9497.blind_with([t], [X(case["blind"])])
        assert blinded.hex() == case["blinded_element"]
        # The blinds are RandomScalar draws from the seed, in order: what blind() draws.
        assert oprf9497.blind([t], rng)[1] == blinded
        evaluated = key.blind_evaluate(blinded)
        assert evaluated.hex() == case["evaluated_element"]
        assert oprf9497.finalize(state, evaluated) == [X(case["output"])]
        assert key.evaluate(t).hex() == case["output"]


def test_tokens_are_xlink_psi_v2_tokens() -> None:
    s = TABLE["token_schema"]
    for t in TABLE["tokens"].values():
        digest = token_digest(s["schema_id"], s["schema_version"], t["key"], 1, t["parts"])
        assert digest.hex() == t["token"]


# -- (b) the table (§5) -------------------------------------------------------------------------


def test_entries_follow_the_derivation() -> None:
    key, keys = _key(), TABLE["keys"]
    size = label_size_for(len(keys))
    assert TABLE["label_size"] == size == 5
    for e in TABLE["entries"]:
        output = key.evaluate(_token(e["token"]))
        assert output.hex() == e["output"]
        tag, pad = entry_pad(output, e["j"], size)
        assert tag.to_bytes(8, "big").hex() == e["tag"]
        plain = X(e["plain_label"])
        record = int.from_bytes(plain[:4], "big")
        assert record == (TOMBSTONE if e["tombstone"] else e["record"])
        if e["tombstone"]:
            assert plain[4:] == bytes(size - 4)
        assert bytes(a ^ b for a, b in zip(plain, pad, strict=True)).hex() == e["label"]
    tags = [e["tag"] for e in TABLE["entries"]]
    assert tags == sorted(tags)
    # T1 is held by H-1 (j = 0), H-2 (j = 1, removed: a tombstone) and H-4 (j = 2).
    t1 = sorted(
        (e["j"], e["record_id"], e["tombstone"]) for e in TABLE["entries"] if e["token"] == "T1"
    )
    assert t1 == [(0, "H-1", False), (1, "H-2", True), (2, "H-4", False)]


def _holder_table() -> tuple[HolderTable, bytes]:
    table, version_1 = GEN.holder_tables(_key())
    return cast(HolderTable, table), cast(bytes, version_1)


def test_holder_table_builds_updates_and_serves_deltas() -> None:
    table, version_1 = _holder_table()
    assert version_1.hex() == TABLE["version_1_entries"]
    assert table.version == 2 and table.entries == len(TABLE["entries"]) == 7
    assert b"".join(table.delta(0)).hex() == TABLE["delta_since_0"]
    assert b"".join(table.delta(1)).hex() == TABLE["delta_since_1"]
    assert b"".join(table.delta(2)) == b""
    concatenated = b"".join(X(e["tag"] + e["label"]) for e in TABLE["entries"])
    assert concatenated.hex() == TABLE["delta_since_0"]
    newer = b"".join(X(e["tag"] + e["label"]) for e in TABLE["entries"] if e["version"] > 1)
    assert newer.hex() == TABLE["delta_since_1"]
    # Chunked deltas are the same bytes cut into whole entries.
    width = 8 + table.label_size
    assert all(len(c) == 2 * width for c in list(table.delta(0, chunk=2))[:-1])


def _lookups(copy: AskerTable) -> dict[str, list[dict[str, Any]]]:
    key, keys = _key(), TABLE["keys"]
    return {
        name: [
            {"record": h.record, "presence": sorted(keys[k] for k in h.presence)}
            for h in copy.lookup(key.evaluate(_token(name)))
        ]
        for name in sorted(TABLE["tokens"])
    }


def test_asker_copy_merges_and_looks_up() -> None:
    digests = {int(v): X(d) for v, d in TABLE["digests"].items()}
    copy = AskerTable(len(TABLE["keys"]))
    assert copy.version == 0 and copy.digest == digests[0]
    first = X(TABLE["version_1_entries"])
    copy.merge(
        *AskerTable.parse_chunk(first, copy.label_size), version=1, total=5, digest=digests[1]
    )
    assert copy.digest == digests[1]
    assert _lookups(copy) == TABLE["lookups_at_version_1"]
    delta = X(TABLE["delta_since_1"])
    copy.merge(
        *AskerTable.parse_chunk(delta, copy.label_size), version=2, total=7, digest=digests[2]
    )
    assert copy.version == 2 and copy.entries == 7 and copy.digest == digests[2]
    assert _lookups(copy) == TABLE["lookups_at_version_2"]
    # A copy fetched whole at version 2 is the same copy.
    whole = AskerTable(len(TABLE["keys"]))
    everything = X(TABLE["delta_since_0"])
    whole.merge(
        *AskerTable.parse_chunk(everything, whole.label_size), version=2, total=7, digest=digests[2]
    )
    assert (whole.tags == copy.tags).all() and (whole.labels == copy.labels).all()
    assert whole.digest == copy.digest


def _spec_digest(entries: list[bytes]) -> bytes:
    """§5.4 written out: SHA-256 of lp(DST) then every entry tag || label, ascending by tag
    (as a u64), then by label bytes."""
    ordered = sorted(entries, key=lambda e: (int.from_bytes(e[:8], "big"), e[8:]))
    return hashlib.sha256(_lp(DIGEST_DST) + b"".join(ordered)).digest()


def _entries(data: bytes, label_size: int) -> list[bytes]:
    width = 8 + label_size
    return [data[i : i + width] for i in range(0, len(data), width)]


def _code_digest(entries: list[bytes], label_size: int) -> bytes:
    return table_digest(*AskerTable.parse_chunk(b"".join(entries), label_size))


def test_table_digests_follow_the_definition() -> None:
    """Each version's digest is §5.4 over that version's entries: the empty copy's, version
    1's (the whole table then) and version 2's; the holder's table gives the same."""
    size = TABLE["label_size"]
    assert TABLE["digest_dst"].encode() == DIGEST_DST == b"xlink-query-v1/table-digest"
    by_version = {
        "0": [],
        "1": _entries(X(TABLE["version_1_entries"]), size),
        "2": [X(e["tag"] + e["label"]) for e in TABLE["entries"]],
    }
    assert set(TABLE["digests"]) == set(by_version)
    for version, entries in by_version.items():
        assert _spec_digest(entries).hex() == TABLE["digests"][version]
        assert _code_digest(entries, size).hex() == TABLE["digests"][version]
        assert _code_digest(entries[::-1], size).hex() == TABLE["digests"][version]
    table, _ = _holder_table()
    assert table.digest().hex() == TABLE["digests"]["2"] == CONV["holder"]["table_digest"]
    key = _key()
    first = HolderTable.build(key, GEN.token_set(GEN.LIST_V1))
    assert first.version == 1 and first.digest().hex() == TABLE["digests"]["1"]


def test_the_digest_orders_by_tag_then_label() -> None:
    example, size = TABLE["digest_example"], TABLE["label_size"]
    given = [X(e) for e in example["entries"]]
    assert [X(e) for e in example["ordered"]] == sorted(
        given, key=lambda e: (int.from_bytes(e[:8], "big"), e[8:])
    )
    assert _spec_digest(given).hex() == example["digest"]
    assert _code_digest(given, size).hex() == example["digest"]
    assert _code_digest(given[::-1], size).hex() == example["digest"]
    written_out = hashlib.sha256(
        _lp(b"xlink-query-v1/table-digest") + b"".join(X(e) for e in example["ordered"])
    ).digest()
    assert written_out.hex() == example["digest"]


_ENTRY_LISTS = st.integers(1, 6).flatmap(
    lambda size: st.tuples(
        st.just(size),
        st.lists(
            st.tuples(
                st.sampled_from([0, 1, 2, 255, 256, 2**63 - 1, 2**63, 2**64 - 1])
                | st.integers(0, 2**64 - 1),
                st.binary(min_size=size, max_size=size),
            ),
            max_size=12,
        ),
        st.randoms(use_true_random=False),
    )
)


@settings(max_examples=200, deadline=None)
@given(_ENTRY_LISTS)
def test_table_digest_is_the_definition_in_any_order(
    drawn: tuple[int, list[tuple[int, bytes]], Any],
) -> None:
    """table_digest is §5.4 for any entries (many equal tags, labels with zero bytes, tags
    at the signed and byte-order edges), whatever order they come in."""
    size, pairs, rnd = drawn
    entries = [tag.to_bytes(8, "big") + label for tag, label in pairs]
    expected = _spec_digest(entries)
    assert _code_digest(entries, size) == expected
    rnd.shuffle(entries)
    assert _code_digest(entries, size) == expected


@pytest.mark.parametrize("merge", MERGES, ids=lambda m: m["name"])
def test_a_refused_merge_leaves_the_copy_as_it_was(merge: dict[str, Any]) -> None:
    size = TABLE["label_size"]
    copy = AskerTable(len(TABLE["keys"]))
    if merge["copy"]["entries"]:
        tags, labels = AskerTable.parse_chunk(X(merge["copy"]["entries"]), size)
        copy.merge(tags, labels, version=merge["copy"]["version"], total=len(tags))
    assert copy.version == merge["copy"]["version"]
    before = (copy.tags.copy(), copy.labels.copy(), copy.version, copy.digest)
    delta = AskerTable.parse_chunk(X(merge["delta"]), size)
    args = {"version": merge["version"], "total": merge["total"]}
    with pytest.raises(RemoteProtocolError) as raised:
        copy.merge(*delta, **args, digest=X(merge["digest"]))
    assert raised.value.code is AbortCode[merge["abort"]] is AbortCode.BAD_TABLE
    assert (copy.tags == before[0]).all() and (copy.labels == before[1]).all()
    assert (copy.version, copy.digest) == before[2:]
    # Without the digest, only the order and the total are checked: a "digest" case merges.
    if merge["check"] == "digest":
        copy.merge(*delta, **args)
        assert copy.entries == merge["total"] and copy.digest != X(merge["digest"])
    else:
        with pytest.raises(RemoteProtocolError):
            copy.merge(*delta, **args)


# -- (c) the conversation (§6, §7) ----------------------------------------------------------------


def test_session_id_handles_and_messages() -> None:
    config = _config()
    holder, asker = CONV["holder"], CONV["asker"]
    assert X(asker["nonce"]) == DeterministicRandom(asker["nonce_seed"])(16)
    assert X(holder["nonce"]) == DeterministicRandom(holder["nonce_seed"])(16)
    sid = session_id_of(config, X(asker["nonce"]), X(holder["nonce"]), holder["period"])
    assert sid.hex() == CONV["session_id"]
    import hashlib

    written_out = hashlib.sha256(
        _lp(b"xlink-query-v1/session-id")
        + X(asker["nonce"])
        + X(holder["nonce"])
        + config.mou_digest
        + config.schema_digest
        + _lp(holder["period"].encode())
        + _lp(config.asker.encode())
        + _lp(config.holder.encode())
    ).digest()[:16]
    assert written_out == sid
    key = _key()
    for name, output in CONV["outputs"].items():
        assert key.evaluate(_token(name)).hex() == output
        handle = hashlib.sha256(_lp(b"xlink-query-v1/handle") + sid + X(output)).digest()[:16]
        assert query_handle(sid, X(output)) == handle
        assert handle.hex() == CONV["handles"][name]
    frames = CONV["frames"]
    for f in frames:
        message = M.decode(X(f["hex"]))
        assert message.TYPE.name == f["type"] and M.encode(message).hex() == f["hex"]
    assert [f["type"] for f in frames] == [
        "HELLO",
        "WELCOME",
        "TABLE_REQUEST",
        "TABLE_CHUNK",
        "TABLE_CHUNK",
        "TABLE_END",
        "EVALUATE",
        "EVALUATE",
        "EVALUATED",
        "EVALUATED",
        "RELEASE_REQUEST",
        "RELEASES",
        "RECEIPTS",
        "BYE",
    ]
    c = CONV["config"]
    hello = M.Hello(
        X(asker["nonce"]),
        c["mou_id"],
        X(c["mou_digest"]),
        X(c["schema_digest"]),
        c["asker"],
        c["holder"],
    )
    assert M.encode(hello).hex() == frames[0]["hex"]
    welcome = M.Welcome(
        X(holder["nonce"]),
        holder["period"],
        holder["table_version"],
        holder["entries"],
        X(holder["table_digest"]),
        holder["quota_left"],
        c["keys"],
    )
    assert M.encode(welcome).hex() == frames[1]["hex"]
    assert holder["table_digest"] == TABLE["digests"][str(holder["table_version"])]
    end = cast(M.TableEnd, M.decode(X(frames[5]["hex"])))
    assert (end.chunks, end.version, end.total) == (2, holder["table_version"], holder["entries"])


def test_evaluations_and_release_request_follow_the_lookups() -> None:
    key, asker = _key(), CONV["asker"]
    sid = X(CONV["session_id"])
    evaluates = [cast(M.Evaluate, M.decode(f)) for f in _frames("asker")[2:4]]
    evaluated = [cast(M.Evaluated, M.decode(f)) for f in _frames("holder")[4:6]]
    for i, spec in enumerate(asker["evaluations"]):
        inputs = [_token(n) for n in spec["tokens"]]
        state, blinded = oprf9497.blind_with(inputs, [X(b) for b in spec["blinds"]])
        assert evaluates[i].request == evaluated[i].request == spec["request"] == i + 1
        assert evaluates[i].blinded == blinded
        assert evaluated[i].evaluated == key.blind_evaluate(blinded)
        outputs = oprf9497.finalize(state, evaluated[i].evaluated)
        assert [y.hex() for y in outputs] == [CONV["outputs"][n] for n in spec["tokens"]]
    request = cast(M.ReleaseRequest, M.decode(_frames("asker")[4]))
    for position, hit in enumerate(asker["release_request"]):
        found = CONV["lookups"][hit["tokens"][0]]
        assert hit["record"] in [h["record"] for h in found]
        handles = sorted(query_handle(sid, X(CONV["outputs"][n])).hex() for n in hit["tokens"])
        assert hit["handles"] == handles
        assert request.records[4 * position : 4 * position + 4] == hit["record"].to_bytes(4, "big")
    assert request.counts == bytes(len(h["handles"]) for h in asker["release_request"])


def test_the_labelled_release_opens_with_the_askers_outputs() -> None:
    sid = X(CONV["session_id"])
    releases = cast(M.ReleasesMessage, M.decode(_frames("holder")[6]))
    sent = CONV["holder"]["release_answers"][0]
    assert releases.fates == b"\x01\x06" and releases.frames == (X(sent["frame"]),)
    assert releases.release_ids == X(sent["release_id"]) + bytes(16)
    outputs = {query_handle(sid, X(y)): X(y) for y in CONV["outputs"].values()}
    handles = [X(h) for h in sent["handles"]]
    frame = seal_labelled(
        X(sent["sealed"]),
        handles,
        session_id=sid,
        outputs_of=per_handle(outputs.__getitem__),
        rng=DeterministicRandom(sent["nonce_seed"]),
    )
    assert frame.hex() == sent["frame"]
    named, sealed = open_labelled(frame, session_id=sid, outputs_of=per_handle(outputs.__getitem__))
    assert list(named) == handles and sealed.hex() == sent["sealed"]


def test_pair_replays_the_conversation() -> None:
    holder, asker = GEN.build_parties()
    transcript = GEN.run_conversation(holder, asker)
    assert [(who, f.hex()) for who, f in transcript] == [
        (f["from"], f["hex"]) for f in CONV["frames"]
    ]


def test_holder_fed_the_askers_frames_sends_its_own() -> None:
    holder, _ = GEN.build_parties()
    sent: list[bytes] = []
    for frame in _frames("asker"):
        holder.deliver(frame)
        sent += holder.drain()
    assert sent == _frames("holder")
    assert holder.session.state is SessionState.CLOSED
    assert holder.session.session_id.hex() == CONV["session_id"]


def test_asker_fed_the_holders_frames_sends_its_own() -> None:
    _, asker = GEN.build_parties()
    sent: list[bytes] = []
    for frame in _frames("holder"):
        sent += asker.step()
        asker.deliver(frame)
    sent += asker.step()
    assert sent == _frames("asker")
    assert asker.session.state is SessionState.CLOSED
    assert [y.hex() for y in asker.outputs] == [
        CONV["outputs"][n] for e in CONV["asker"]["evaluations"] for n in e["tokens"]
    ]


def _copy(version: int) -> AskerTable:
    """An honest copy of the holder's table at ``version`` (0: empty)."""
    copy = AskerTable(len(TABLE["keys"]))
    if version:
        data = X(TABLE["version_1_entries"] if version == 1 else TABLE["delta_since_0"])
        tags, labels = AskerTable.parse_chunk(data, copy.label_size)
        copy.merge(tags, labels, version=version, total=len(tags))
    return copy


def _rebuilt_copy() -> AskerTable:
    """A version-2 copy of another table: the holder's list of version 1 built in another
    order (other indexes, so other labels under the same tags) and updated to version 2."""
    lists = [GEN.LIST_V1[1], GEN.LIST_V1[0], GEN.LIST_V1[2]]
    table = HolderTable.build(_key(), GEN.token_set(lists))
    table.update(GEN.token_set(GEN.LIST_V2))
    copy = AskerTable(len(TABLE["keys"]))
    tags, labels = AskerTable.parse_chunk(b"".join(table.delta(0)), copy.label_size)
    copy.merge(tags, labels, version=table.version, total=len(tags))
    assert copy.version == 2 and copy.entries == 7 and copy.digest.hex() != TABLE["digests"]["2"]
    return copy


@pytest.mark.parametrize(
    ("name", "since"),
    [("current", None), ("version_1", 1), ("version_3", 0), ("rebuilt", 0)],
)
def test_the_asker_fetches_unless_its_copy_has_the_announced_digest(
    name: str, since: int | None
) -> None:
    """The asker's copy is current iff its digest is WELCOME's: a current copy fetches
    nothing; an older one what changed since its version; one at a version above WELCOME's
    the whole table; one at WELCOME's version but with another digest (a table the holder
    has since rebuilt) the whole table. Every fetch ends with the holder's version-2 copy."""
    copy = {
        "current": lambda: _copy(2),
        "version_1": lambda: _copy(1),
        "version_3": lambda: AskerTable(len(TABLE["keys"]), version=3),
        "rebuilt": _rebuilt_copy,
    }[name]()
    holder, asker = GEN.build_parties()
    asker.table = copy
    transcript = GEN.run_conversation(holder, asker)
    requests = [cast(M.TableRequest, M.decode(f)) for _, f in transcript if f[2] == 3]
    assert [r.since for r in requests] == ([] if since is None else [since])
    assert asker.table.version == 2 and asker.table.digest.hex() == TABLE["digests"]["2"]
    assert [y.hex() for y in asker.outputs] == [
        CONV["outputs"][n] for e in CONV["asker"]["evaluations"] for n in e["tokens"]
    ]
    # The handshake, and everything from the first EVALUATE on, are the reference's.
    frames = [f.hex() for _, f in transcript]
    reference = [f["hex"] for f in CONV["frames"]]
    assert frames[:2] == reference[:2] and frames[-8:] == reference[-8:]


# -- invalid cases (§11.2) ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['tcId']}-{c['name']}")
def test_invalid_case_aborts_with_its_code(case: dict[str, Any]) -> None:
    holder, asker = GEN.build_parties(**case.get("setup", {}))
    party = holder if case["side"] == "holder" else asker

    def take() -> None:
        if party is asker:
            asker.step()
        else:
            holder.drain()

    for frame in case["prefix"]:
        take()
        party.deliver(X(frame))  # every frame of the prefix is accepted
    take()
    session = party.session
    assert session.state.value == case["state"]
    frame = X(case["frame"])
    if case["error"] == "LocalProtocolError":
        with pytest.raises(LocalProtocolError):
            party.deliver(frame)
        assert session.state is SessionState.CLOSED and session.next_frame() is None
        return
    expected = ERRORS[case["error"]]
    with pytest.raises(RemoteProtocolError) as raised:
        party.deliver(frame)
    assert isinstance(raised.value, expected)
    # A received ABORT is a PeerAborted (QuotaExhausted, a PeerAborted, for QUOTA_EXHAUSTED);
    # any other refusal is a RemoteProtocolError that is not one.
    received = expected is not RemoteProtocolError
    assert isinstance(raised.value, PeerAborted) is received
    assert isinstance(raised.value, QuotaExhausted) is (expected is QuotaExhausted)
    assert raised.value.code is AbortCode[case["abort"]]
    assert session.state is SessionState.ABORTED
    queued = session.next_frame()
    if received:
        assert queued is None  # no ABORT answers an ABORT
    else:
        assert queued is not None
        abort = M.decode(queued)
        assert isinstance(abort, M.Abort) and abort.code == int(AbortCode[case["abort"]])
        assert session.next_frame() is None
    with pytest.raises(LocalProtocolError):
        session.receive(frame)


@pytest.mark.parametrize("element", INVALID["elements"], ids=lambda e: e["name"])
def test_invalid_elements_are_refused_by_both_sides(element: dict[str, Any]) -> None:
    bad = X(element["element"])
    code = AbortCode.IDENTITY_ELEMENT if element["identity"] else AbortCode.INVALID_ELEMENT
    assert code.name == element["abort"]
    with pytest.raises(InvalidElement) as raised:
        _key().blind_evaluate(bad)
    assert raised.value.identity is element["identity"] and raised.value.index == 0
    state, _ = oprf9497.blind_with([b"traveller"], [(7).to_bytes(32, "little")])
    with pytest.raises(InvalidElement) as raised:
        oprf9497.finalize(state, bad)
    assert raised.value.identity is element["identity"]
    names = {c["name"] for c in CASES}
    assert {f"evaluate_{element['name']}", f"evaluated_{element['name']}"} <= names


# -- fuzzing: nothing but the protocol's errors --------------------------------------------------


def _holder_in(state: str) -> HolderSession:
    holder, _ = GEN.build_parties()
    session = cast(HolderSession, holder.session)
    frames = _frames("asker")
    if state != "waiting":
        session.receive(frames[0])  # HELLO: READY
    if state == "table":
        session.receive(frames[1])  # TABLE_REQUEST, not answered
    if state == "receipts":
        for frame in frames[1:5]:
            holder.deliver(frame)  # through RELEASE_REQUEST: receipts awaited
    return session


def _asker_in(state: str) -> AskerSession:
    _, asker = GEN.build_parties()
    session = cast(AskerSession, asker.session)
    session.start()
    h = _frames("holder")
    if state == "waiting":
        return session
    session.receive(h[0])  # WELCOME: READY
    if state == "table":
        session.request_table(0)
    elif state == "evaluating":
        session.evaluate(bytes(32) * 2)
        session.evaluate(bytes(32))
    elif state in ("releasing", "receipts"):
        a = _frames("asker")
        for evaluate in a[2:4]:
            session.evaluate(cast(M.Evaluate, M.decode(evaluate)).blinded)
        session.receive(h[4])
        session.receive(h[5])  # both EVALUATED: READY
        request = cast(M.ReleaseRequest, M.decode(a[4]))
        handles = request.handles
        session.request_releases(
            [
                RequestedHit(0, request.presence[:1], (handles[:16], handles[16:32])),
                RequestedHit(2, request.presence[1:], (handles[32:],)),
            ]
        )
        if state == "receipts":
            session.receive(h[6])  # RELEASES: one receipt due
    return session


_HOLDER_STATES = ("waiting", "ready", "table", "receipts")
_ASKER_STATES = ("waiting", "ready", "table", "evaluating", "releasing", "receipts")
_VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.binary(max_size=70),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.binary(max_size=40), max_size=3),
)
_BODIES = st.builds(
    lambda t, rest: b"\x51" + cast(bytes, msgpack.packb([t, *rest], use_bin_type=True)),
    st.integers(min_value=0, max_value=13),
    st.lists(_VALUES, max_size=8),
)
_FRAMES = st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(b"\x51".__add__), _BODIES)


def _only_protocol_errors(session: HolderSession | AskerSession, data: bytes) -> None:
    try:
        session.receive(data)
    except RemoteProtocolError:
        assert session.state is SessionState.ABORTED
    except ProtocolError as exc:  # only a session already done may refuse locally
        raise AssertionError(f"{type(exc).__name__}: {exc}") from None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_HOLDER_STATES), _FRAMES)
def test_random_frames_to_the_holder_raise_only_protocol_errors(state: str, data: bytes) -> None:
    _only_protocol_errors(_holder_in(state), data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_ASKER_STATES), _FRAMES)
def test_random_frames_to_the_asker_raise_only_protocol_errors(state: str, data: bytes) -> None:
    _only_protocol_errors(_asker_in(state), data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_conversation_frames_raise_only_protocol_errors(data: st.DataObject) -> None:
    """One byte of a frame of the conversation changed, given to the side in the state where
    the frame belongs: accepted, or refused with a RemoteProtocolError."""
    frames = CONV["frames"]
    index = data.draw(st.integers(0, len(frames) - 1))
    holder, asker = GEN.build_parties()
    target = holder if frames[index]["from"] == "asker" else asker
    for f in frames[:index]:
        if f["from"] == "asker":
            holder.deliver(X(f["hex"]))
            holder.drain()
        else:
            asker.step()
            asker.deliver(X(f["hex"]))
    if target is asker:
        asker.step()
    frame = bytearray(X(frames[index]["hex"]))
    position = data.draw(st.integers(0, len(frame) - 1))
    frame[position] ^= data.draw(st.integers(1, 255))
    try:
        target.deliver(bytes(frame))
    except RemoteProtocolError:
        assert target.session.state is SessionState.ABORTED


def test_after_the_end_a_session_refuses_locally() -> None:
    session = _holder_in("ready")
    session.receive(_frames("asker")[-1])  # BYE
    assert session.state is SessionState.CLOSED
    with pytest.raises(LocalProtocolError):
        session.receive(b"\x00")
    aborted = _asker_in("ready")
    with pytest.raises(RemoteProtocolError):
        aborted.receive(b"")
    with pytest.raises(LocalProtocolError):
        aborted.receive(b"")


def test_the_conversation_is_the_reference_decision() -> None:
    """The requested records are what the asker's lookups give (X with H-1 on both keys, Z
    with H-3 on one), and the holder's claimed-handle check accepts them."""
    by_traveller = {h["traveller"]: h for h in CONV["asker"]["release_request"]}
    assert by_traveller["X"]["record"] == 0 and by_traveller["Z"]["record"] == 2
    records_of_t1 = [h["record"] for h in CONV["lookups"]["T1"]]
    assert records_of_t1 == [0, 3]  # H-2's occurrence is a tombstone
    assert CONV["lookups"]["T6"] == CONV["lookups"]["T7"] == []
