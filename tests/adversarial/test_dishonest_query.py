"""A dishonest asker against the query holder, over real mutual TLS on 127.0.0.1 where the
network matters (`Agency.serve_queries`, what `xlink query serve` runs), and over a memory
pair for the message-level attacks: a guessed traveller learns no-match and opens nothing; a
claimed match on handles it cannot compute releases nothing; a replayed or malformed request
aborts with a code; the quota holds under a burst; the holder's transcript holds no query
content."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from _query_agencies import (
    CA,
    DATA,
    PASSPHRASE,
    US,
    QueryPair,
    query_pair,
    traveller_file,
    truth_pairs,
)

import xlink.agency._query_answers as qa
import xlink.store.store as store_module
from xlink.agency import QueryService, exchange_in_process
from xlink.agency._claims import Claims
from xlink.agency._query import QueryClient, ask
from xlink.agency._query_common import _config, _flush, _only, _receive
from xlink.audit import AuditEvent, AuditLog
from xlink.cli._query_output import answer_line, outcome_json
from xlink.crypto import oprf9497
from xlink.decide import DecidedMatch, decide
from xlink.error_codes import LOCAL_FAILURE, AbortCode
from xlink.errors import (
    BadRelease,
    DecryptionError,
    InternalProtocolError,
    PeerAborted,
    QuotaExhausted,
    RemoteProtocolError,
)
from xlink.linkage.scoring import BEST_OF_EITHER, fellegi_sunter_score
from xlink.linkage.tokens import TokenSetBuilder
from xlink.query import RequestedHit
from xlink.query import messages as M
from xlink.query.asker_session import AskerSession
from xlink.query.entries import presence_bits
from xlink.query.events import Fate
from xlink.query.session import ReleasesReceived
from xlink.release.label import LabelNotMatched, labelled_handles, open_labelled, per_handle
from xlink.transport import PeerRefused, connect, memory_pair
from xlink.transport.connect import DEFAULT_MAX_HANDSHAKES

PAIRS = truth_pairs()
FOUND = ["USTR-00022", "USTR-00039", "USTR-00057"]  # decided by the schema (test_query_mode)
STRANGER = ["USTR-00002"]


class Recording:
    """A connection end that keeps every frame it receives (the holder's transcript), and
    sends each frame as ``rewrite`` makes it (the holder's lies, told on the wire)."""

    def __init__(self, inner: Any, rewrite: Callable[[bytes], bytes] | None = None) -> None:
        self.inner = inner
        self.received: list[bytes] = []
        self._rewrite = rewrite

    async def send(self, message: bytes) -> None:
        await self.inner.send(self._rewrite(message) if self._rewrite else message)

    async def receive(self) -> bytes | None:
        frame = await self.inner.receive()
        if frame is not None:
            self.received.append(frame)
        return frame

    async def close(self, timeout: float | None = None) -> None:
        await self.inner.close(timeout)


@dataclasses.dataclass(frozen=True)
class _Listed:
    """Candidate pairs a dishonest asker chose, as :func:`decide` reads them."""

    session_id: bytes
    pairs: tuple[Any, ...]

    def iter_pairs(self) -> Iterator[Any]:
        return iter(self.pairs)


def _holder_entries(pair: QueryPair) -> list[tuple[AuditEvent, dict[str, Any]]]:
    with AuditLog.open(pair.holder.workdir / "audit.db", signing_key=None) as log:
        return [(e.kind, dict(e.fields)) for e in log.entries()]


def _serve_and(
    pair: QueryPair,
    service: QueryService,
    asker: Callable[[Any], Any],
    rewrite: Callable[[bytes], bytes] | None = None,
) -> Any:
    """Run the holder on one end of a memory pair and ``asker(conn)`` on the other, the
    holder's frames sent as ``rewrite`` makes them; returns (holder's result or exception,
    asker's result or exception, the holder's transcript)."""

    async def both() -> Any:
        a, b = memory_pair()
        recording = Recording(b, rewrite)
        results = await asyncio.gather(
            service.handle(recording, idle_timeout=5), asker(a), return_exceptions=True
        )
        return (*results, recording.received)

    return asyncio.run(both())


@pytest.fixture()
def pair(tmp_path: Path) -> Any:
    with query_pair(tmp_path) as p:
        yield p


def test_a_guessed_traveller_learns_no_match_and_nothing_is_released(pair: QueryPair) -> None:
    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(STRANGER)
    served, outcome, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
    assert not isinstance(outcome, BaseException), outcome
    assert [a.matched for a in outcome.answers] == [False]
    assert outcome.received == 0 and served.released == 0
    assert pair.asker.store.list(now=pair.asker.clock()) == ()


def test_the_holder_transcript_holds_no_query_content(pair: QueryPair) -> None:
    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(FOUND)
    _, outcome, transcript = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
    assert outcome.matched == len(FOUND)
    wire = b"".join(transcript)
    tokens = side.tokens
    secrets = [tokens.value(i) for i in range(len(tokens))]
    secrets += [oprf9497.hash_to_group(t) for t in secrets]  # unblinded group elements
    for record in side.records:
        words = [record.record_id, record.name.family, record.name.given]
        words += [d.number for d in record.documents]
        if record.birth_date is not None:
            words.append(str(record.birth_date.year))
        secrets += [w.encode() for w in words if len(w) >= 4]
    for secret in secrets:
        assert secret not in wire


def test_a_claimed_match_on_handles_it_cannot_compute_releases_nothing(pair: QueryPair) -> None:
    """The asker names a real registry record (index 0) with made-up handles, as a guesser
    or a partner replaying another session's handles would: the holder aborts with
    CONFIRMATION_FAILED before building any release, and audits it."""
    service = pair.holder.query_service(pair.registry)

    async def liar(conn: Any) -> Any:
        client = QueryClient(pair.asker, conn)
        await client.open()
        session = client.session
        session.request_releases([RequestedHit(0, b"\xff\x3f", (bytes(16), b"\x01" * 16))])
        for frame in iter(session.next_frame, None):
            await conn.send(frame)
        frame = await conn.receive()
        try:
            session.receive(frame)
        finally:
            await conn.close(0)

    served, asked, _ = _serve_and(pair, service, liar)
    assert isinstance(served, RemoteProtocolError)
    assert served.code is AbortCode.CONFIRMATION_FAILED
    assert isinstance(asked, PeerAborted) and asked.code is AbortCode.CONFIRMATION_FAILED
    kinds = [k for k, _ in _holder_entries(pair)]
    assert AuditEvent.RELEASE_SENT not in kinds
    ended = [f for k, f in _holder_entries(pair) if k is AuditEvent.QUERY_ENDED]
    assert ended[-1]["code"] == "CONFIRMATION_FAILED"


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda frame: frame[:-1], AbortCode.TRUNCATED),
        (lambda frame: b"\x02" + frame[1:], AbortCode.UNSUPPORTED_VERSION),
        ("replay", AbortCode.CHUNK_REPLAYED),
        ("skip", AbortCode.CHUNK_OUT_OF_ORDER),
    ],
    ids=["truncated", "psi-version", "replayed", "skipped"],
)
def test_a_malformed_or_replayed_evaluate_aborts_with_a_code(
    pair: QueryPair, tamper: Any, code: AbortCode
) -> None:
    service = pair.holder.query_service(pair.registry)

    async def asker(conn: Any) -> Any:
        client = QueryClient(pair.asker, conn)
        await client.open()
        _, blinded = oprf9497.blind([b"\x00" * 32], pair.asker.rng)
        first = M.encode(M.Evaluate(1, blinded))
        if tamper == "replay":
            await conn.send(first)
            await conn.receive()
            frame = first
        elif tamper == "skip":
            frame = M.encode(M.Evaluate(2, blinded))
        else:
            frame = tamper(first)
        await conn.send(frame)
        answer = await conn.receive()
        await conn.close(0)
        return M.decode(answer) if answer else None

    served, answer, _ = _serve_and(pair, service, asker)
    assert isinstance(served, RemoteProtocolError) and served.code is code
    assert isinstance(answer, M.Abort) and answer.code == int(code)
    ended = [f for k, f in _holder_entries(pair) if k is AuditEvent.QUERY_ENDED]
    assert ended[-1]["code"] == code.name


def test_the_quota_holds_under_a_burst(tmp_path: Path) -> None:
    """Five askers at once over mutual TLS against a holder whose MOU allows 100 evaluations
    a day: the evaluations answered never pass 100, the rest are refused with
    QUOTA_EXHAUSTED, and each refusal is audited."""
    with query_pair(tmp_path, quota=100) as pair:
        # about 25 tokens and no match (a match's release request costs its handles too,
        # test_repeated_release_requests_cost_quota_and_release_nothing_twice): four askers
        # fit, not five
        side = pair.travellers(STRANGER)
        per_ask = len(side.tokens)
        assert 100 // per_ask < 5

        async def burst() -> list[Any]:
            loop = asyncio.get_running_loop()
            port: asyncio.Future[int] = loop.create_future()
            server = asyncio.create_task(
                pair.holder.serve_queries(
                    pair.registry, "127.0.0.1", 0, max_connections=5, on_listening=port.set_result
                )
            )
            bound = await asyncio.wait_for(port, 30)
            results = await asyncio.gather(
                *(pair.asker.ask(side, "127.0.0.1", bound, timeout=30) for _ in range(5)),
                return_exceptions=True,
            )
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(server, 30)
            return results

        results = asyncio.run(burst())
        ok = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, PeerAborted)]
        assert len(ok) == 100 // per_ask
        assert len(refused) == 5 - len(ok)
        assert all(r.code is AbortCode.QUOTA_EXHAUSTED for r in refused)
        entries = _holder_entries(pair)
        answered = sum(f["evaluations"] for k, f in entries if k is AuditEvent.QUERY_EVALUATED)
        assert answered <= 100
        # Refused by the holder, or by the asker itself when the WELCOME already showed too
        # little quota left: each refusal audited on the side that made it.
        with AuditLog.open(pair.asker.workdir / "audit.db", signing_key=None) as log:
            by_asker = sum(e.kind is AuditEvent.QUERY_REFUSED for e in log.entries())
        by_holder = sum(k is AuditEvent.QUERY_REFUSED for k, _ in entries)
        assert by_holder + by_asker == len(refused)


def test_two_query_services_of_one_agency_share_the_days_quota(tmp_path: Path) -> None:
    """Two query services live on one workdir at once (an ``xlink query serve`` and the hub
    agent's service for a job, or two ``query serve``): each counted the day's evaluations
    once, when it was built, so an asker that spent the quota on one was answered a second
    quota by the other. They take from one count: 100 evaluations a day in all."""
    with query_pair(tmp_path, quota=100) as pair:
        side = pair.travellers(STRANGER)  # about 25 tokens, no match
        per_ask = len(side.tokens)
        first = pair.holder.query_service(pair.registry)
        second = pair.holder.query_service(pair.registry)
        answered = []
        for service in (second, first, second):
            for _ in range(100 // per_ask + 1):
                _, outcome, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
                answered.append(not isinstance(outcome, BaseException))
        assert sum(answered) == 100 // per_ask
        assert first.quota_left() == second.quota_left() == 100 - per_ask * sum(answered)
        entries = _holder_entries(pair)
        spent = sum(f["evaluations"] for k, f in entries if k is AuditEvent.QUERY_EVALUATED)
        assert spent == per_ask * sum(answered) <= 100
        # a service built now starts from what the others spent (its log, and the count)
        assert pair.holder.query_service(pair.registry).quota_left() == 100 - spent


def test_a_quota_store_that_fails_answers_nothing_and_is_audited(tmp_path: Path) -> None:
    """The day's count cannot be read (its file damaged under a running service): the
    session is not answered, the connection is closed at once and the refusal is audited
    (``SESSION_ABORTED``, ``INTERNAL_ERROR``), as any session that fails before it opens."""
    with query_pair(tmp_path, quota=100) as pair:
        service = pair.holder.query_service(pair.registry)
        side = pair.travellers(STRANGER)
        (pair.holder.workdir / "query" / "quota.db").write_bytes(b"not a database, " * 64)
        started = time.monotonic()
        served, outcome, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
        assert isinstance(served, InternalProtocolError)
        assert isinstance(outcome, BaseException) and time.monotonic() - started < 4
        aborted = [f for k, f in _holder_entries(pair) if k is AuditEvent.SESSION_ABORTED]
        assert [f["code"] for f in aborted] == ["INTERNAL_ERROR"]
        assert not [k for k, _ in _holder_entries(pair) if k is AuditEvent.QUERY_EVALUATED]


def test_a_store_failing_inside_a_session_tells_the_asker_nothing_of_its_cause(
    tmp_path: Path,
) -> None:
    """The quota store fails while a session is open: the asker is told INTERNAL_ERROR with
    the detail ``local failure``, not what failed here (it was sent the store's error, a
    ``DatabaseError``); the holder audits the cause."""
    with query_pair(tmp_path, quota=1000) as pair:
        service = pair.holder.query_service(pair.registry)
        side = pair.travellers(STRANGER)
        quota = pair.holder.workdir / "query" / "quota.db"

        async def ask_after_the_store_fails(conn: Any) -> Any:
            async with QueryClient(pair.asker, conn) as client:
                quota.write_bytes(b"not a database, " * 64)
                return await client.ask(side)

        served, outcome, _ = _serve_and(pair, service, ask_after_the_store_fails)
        assert isinstance(served, InternalProtocolError)
        assert isinstance(outcome, PeerAborted), outcome
        assert outcome.code is AbortCode.INTERNAL_ERROR
        assert outcome.detail == LOCAL_FAILURE


def test_a_query_beyond_the_quota_left_is_refused_before_anything_is_spent(
    tmp_path: Path,
) -> None:
    # one ask: its tokens, and the handles of its one match's release request (§8)
    with query_pair(tmp_path, quota=60) as pair:
        service = pair.holder.query_service(pair.registry)
        one = pair.travellers(FOUND[:1], "one.csv")
        assert 20 <= len(one.tokens) <= 40

        async def twice(conn: Any) -> Any:
            async with QueryClient(pair.asker, conn) as client:
                first = await client.ask(one)
                with pytest.raises(QuotaExhausted):
                    await client.ask(one)
                return first

        served, first, _ = _serve_and(pair, service, twice)
        assert not isinstance(first, BaseException), first
        assert first.matched == 1 and first.evaluations > len(one.tokens)  # its handles too
        assert served.evaluations == first.evaluations  # the second ask reached nothing


def test_a_release_frame_opens_only_with_the_outputs_of_the_matched_tokens(
    pair: QueryPair,
) -> None:
    """A labelled release taken off the wire (or obtained by a partner that guessed a record
    index and handles) does not open without the OPRF outputs of the tokens that decided it:
    a guesser who names the right handles but holds other outputs gets a DecryptionError."""
    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(FOUND[:1])
    frames: list[bytes] = []

    async def asker(conn: Any) -> Any:
        recording = Recording(conn)
        outcome = await ask(pair.asker, recording, side)
        frames.extend(recording.received)
        return outcome

    _, outcome, _ = _serve_and(pair, service, asker)
    assert outcome.received == 1
    sent = [M.decode(f) for f in frames]
    releases = [m for m in sent if isinstance(m, M.ReleasesMessage)]
    (frame,) = releases[0].frames
    session_id = bytes.fromhex(outcome.session_id)
    named = labelled_handles(frame)
    wrong = {h: oprf9497.OprfKey.derive(b"\x07" * 32, b"guess").evaluate(h) for h in named}
    with pytest.raises(DecryptionError):
        open_labelled(frame, session_id=session_id, outputs_of=per_handle(wrong.__getitem__))
    with pytest.raises(LabelNotMatched):
        open_labelled(frame, session_id=session_id, outputs_of=per_handle({}.__getitem__))


_HOUSEHOLD = (("CASO-90001", "Maria", "02/03/1970", "F", ""),
              ("CASO-90002", "Juan", "11/07/1995", "M", ""),
              ("CASO-90003", "Ana", "23/09/1998", "F", ""))  # fmt: skip


def _registry_with_a_household(
    pair: QueryPair, members: tuple[tuple[str, ...], ...] = _HOUSEHOLD, family: str = "Lopez"
) -> Any:
    """The bundled registry and a household (``family``, one street and postcode; Lopez,
    three): id, given name, date of birth, sex and passport number of each."""
    source = DATA / "ca_sex_offenders.csv"
    with source.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    for record_id, given, dob, sex, passport in members:
        values = {"Passport No": passport, "Passport Country": "CAN" if passport else "",
                  "Registry No": record_id, "Family Name": family, "Given Name": given,
                  "Date of Birth": dob, "Sex": sex, "Citizenship": "CAN",
                  "Street Address": "4 Oak Avenue", "City": "Ottawa", "Province": "ON",
                  "Postal Code": "K2B 7C3", "Country": "CAN", "Source Ref": "RCMP-SRC-9001",
                  "Grading": "2B", "Handling Code": "P", "Offence": "Sexual assault",
                  "Risk Level": "High"}  # fmt: skip
        rows.append([values.get(column, "") for column in head])
    target = pair.base / "registry" / "registry.csv"
    target.parent.mkdir()
    with target.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    shutil.copy(DATA / "ca_sex_offenders.mapping.json", target.with_name("registry.mapping.json"))
    return pair.holder.prepare([target])


def test_an_asker_naming_one_person_of_a_household_gets_one_release_not_three(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One traveller: Maria Lopez, her street and postcode. The honest asker decides Maria
    (one-to-one), as a batch exchange would. An asker that decides best-of-either asks for the
    whole household: Juan and Ana agree with that traveller on the family name, street and
    postcode as well as Maria does on those keys, so the holder, which sees only what the
    asker claims, must not release them (it did: three releases, each above the threshold)."""
    registry = _registry_with_a_household(pair)
    manifest = traveller_file(pair.base / "asker-files", ["USTR-00022"])
    with manifest.open(encoding="utf-8", newline="") as f:
        head = next(csv.reader(f))
    values = {"pax_id": "USTR-77777", "surname": "Lopez", "given_names": "Maria",
              "us_address": "4 Oak Avenue", "us_zip": "K2B 7C3", "source": "APIS"}  # fmt: skip
    with manifest.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([head, [values.get(column, "") for column in head]])
    side = pair.asker.prepare([manifest])
    service = pair.holder.query_service(registry)

    def run() -> Any:
        served, outcome, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, side))
        return served, outcome

    served, honest = run()
    assert honest.matched == 1 and served.requested == served.released == 1
    # the rival check alone: no memory of the tokens that decided Maria
    (pair.holder.workdir / "query" / "claims.db").unlink()
    service = pair.holder.query_service(registry)
    monkeypatch.setattr(
        "xlink.agency._query_answers.decide",
        lambda source, schema, threshold: decide(source, schema, threshold, links=BEST_OF_EITHER),
    )
    served, liar = run()
    assert served.requested == 3 and served.released == 0  # Maria's went before: no copy
    assert liar.received == 0
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1  # Maria's, the first time


def _one_household_row(pair: QueryPair, **extra: str) -> Any:
    """The asker's one traveller: the Lopez family name, street and postcode (and ``extra``)."""
    manifest = traveller_file(pair.base / "asker-files", ["USTR-00022"])
    with manifest.open(encoding="utf-8", newline="") as f:
        head = next(csv.reader(f))
    values = {"pax_id": "USTR-77777", "surname": "Lopez", "us_address": "4 Oak Avenue",
              "us_zip": "K2B 7C3", "source": "APIS", **extra}  # fmt: skip
    with manifest.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([head, [values.get(column, "") for column in head]])
    return pair.asker.prepare([manifest])


def test_key_presence_chosen_per_request_wins_at_most_one_of_a_household(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The members differ in what they hold (Juan a passport, Ana no date of birth). An asker
    that knows only the family name and the address, decides best-of-either and, for each
    record it asks for, declares the key presence that scores that record above the others
    (a key a rival has and the record lacks whose disagreement costs, a key the record has and
    a rival lacks whose disagreement pays) beats the rival check on each; the holder still
    releases one record for those tokens, as one fabricated record wins one of ours in a batch
    exchange (it released two)."""
    registry = _registry_with_a_household(pair, _MIXED)
    side = _one_household_row(pair)
    service = pair.holder.query_service(registry)
    _lie_about_presence(pair, monkeypatch)
    served, liar, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, side))
    assert liar.matched == 1 and served.requested == 3 and served.released == 1
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1


def test_claims_grown_one_token_at_a_time_win_one_record_of_a_household(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same asker asks twice: first with the family name and postcode (one token,
    ``family_postcode``, a name and an address), then with the street as well. The second
    claim holds one more token than the first, so it is not the tokens of the first pair; but
    what it adds (``street_postcode``, an address alone) decides nothing on its own, so the
    holder refuses it (a check on whole claims released a second member)."""
    registry = _registry_with_a_household(pair, _MIXED)
    service = pair.holder.query_service(registry)
    target = ["CASO-90001"]  # first Maria, then Ana
    _lie_about_presence(pair, monkeypatch, lambda index: service.table.record_id(index) in target)
    released = 0
    for extra, member in (({"us_address": ""}, "CASO-90001"), ({}, "CASO-90003")):
        target[:] = [member]
        side = _one_household_row(pair, **extra)
        served, _, _ = _serve_and(pair, service, lambda conn, s=side: ask(pair.asker, conn, s))
        assert served.requested == 1
        released += served.released
    assert released == 1
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1


def test_each_member_claimed_on_another_token_of_the_household_wins_one_of_it(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asker that knows only the family name and the address holds several tokens of it:
    ``family_postcode``, ``street_postcode`` and a MinHash band of the family name with the
    postcode, each held by every member. It asks for Maria on the first alone, then for Ana on
    the band alone, then for Juan on the street (each session declaring the presence that beats
    the rival check). No token is claimed twice, but every one of them is held by Maria, won
    first, and what a record won today holds is spent: one member in all (two before)."""
    registry = _registry_with_a_household(pair, _MIXED)
    service = pair.holder.query_service(registry)
    schema = pair.asker.schema
    names, disagreement = schema.key_names, schema.disagreement_weights()
    member = {service.table.record_id(i): i for i in range(len(service.table.record_ids))}
    wanted: dict[str, Any] = {}
    seen: list[Any] = []

    def deciding(source: Any, schema: Any, threshold: float) -> Any:
        seen[:] = list(source.iter_pairs())
        return decide(_Listed(source.session_id, ()), schema, threshold)

    def claimed(agency: Any, session_id: bytes, travellers: Any, table: Any, outputs: Any) -> Any:
        decision, met = original(agency, session_id, travellers, table, outputs)
        tokens = travellers.tokens
        handles = {
            qa.query_handle(session_id, y)
            for i, (y, hits) in enumerate(zip(outputs, table.lookup_many(outputs), strict=True))
            if tokens.key_names[tokens.key_index[i]] == wanted["key"]
            and any(h.record == wanted["record"] for h in hits)
        }
        match = DecidedMatch(
            tokens.record_ids[0], wanted["record"], frozenset({wanted["key"]}), 1.0,
            tuple(sorted(handles)),
        )  # fmt: skip
        return dataclasses.replace(decision, matches=(match,)), met

    def tailored(record: int, presence: bytes, handles: Any) -> RequestedHit:
        me = next(p for p in seen if p.peer_ref == record)
        keys = {wanted["key"]}
        for rival in seen:
            if rival.peer_ref != record:
                keys |= {k for k in rival.peer_keys - me.peer_keys if disagreement[k] < 0}
                keys |= {k for k in me.peer_keys - rival.peer_keys if disagreement[k] > 0}
        return RequestedHit(
            record, presence_bits(sorted(names.index(k) for k in keys), len(names)), handles
        )

    original = qa._decide
    monkeypatch.setattr("xlink.agency._query_answers.decide", deciding)
    monkeypatch.setattr("xlink.agency._query_answers._decide", claimed)
    monkeypatch.setattr("xlink.agency._query_asker._decide", claimed)
    monkeypatch.setattr("xlink.agency._query_answers.RequestedHit", tailored)
    side = _one_household_row(pair)
    released = 0
    for record_id, key in (
        ("CASO-90001", "family_postcode"),
        ("CASO-90003", "minhash_name_postcode"),
        ("CASO-90002", "street_postcode"),
    ):
        wanted.update(record=member[record_id], key=key)
        served, _, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, side))
        assert served.requested == 1
        released += served.released
    assert released == 1
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1


_MIXED = (("CASO-90001", "Maria", "02/03/1970", "F", ""),
          ("CASO-90002", "Juan", "11/07/1995", "M", "AB123456"),
          ("CASO-90003", "Ana", "", "F", ""))  # fmt: skip


def test_keys_declared_to_disagree_lift_no_claim_over_the_holders_floor(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asker knows one person's family name, street and postcode, a claim below the MOU's
    floor under the schema the holder scores with here (one that weighs those keys low and
    fits ``dob_postcode``'s disagreement a positive weight, as fitted weights can be). It
    decides the pair anyway and declares ``dob_postcode``, which it does not hold: the holder
    scored the claim with that disagreement and released the record. The floor counts a
    disagreement only where it lowers the score (xlink-query-v1 §7.5 item 3): refused."""
    registry = _registry_with_a_household(pair, _MIXED[:1])
    service = pair.holder.query_service(registry)
    weights, disagreement = service._weights
    low = {k: -1.0 for k in ("family_postcode", "street_postcode", "minhash_name_postcode")}
    weights = {**weights, **low}
    service._weights = (weights, {**disagreement, "dob_postcode": 5.0})
    names = pair.asker.schema.key_names
    seen: list[Any] = []

    def deciding(source: Any, schema: Any, threshold: float) -> Any:
        seen[:] = list(source.iter_pairs())
        return decide(_Listed(source.session_id, tuple(seen)), schema, -100.0)

    def declaring(record: int, presence: bytes, handles: Any) -> RequestedHit:
        (me,) = [p for p in seen if p.peer_ref == record]
        keys = set(me.agreeing_keys) | {"dob_postcode"}  # held by the record, not by the asker
        return RequestedHit(
            record, presence_bits(sorted(names.index(k) for k in keys), len(names)), handles
        )

    monkeypatch.setattr("xlink.agency._query_answers.decide", deciding)
    monkeypatch.setattr("xlink.agency._query_answers.RequestedHit", declaring)
    served, outcome, _ = _serve_and(
        pair, service, lambda conn: ask(pair.asker, conn, _one_household_row(pair))
    )
    assert not isinstance(outcome, BaseException), outcome
    (me,) = seen
    assert fellegi_sunter_score(me.agreeing_keys, weights) < pair.holder.mou.match_threshold
    assert served.requested == 1 and served.released == 0
    denied = [f["reason"] for k, f in _holder_entries(pair) if k is AuditEvent.RELEASE_DENIED]
    assert denied == ["below-mou-threshold"]


def test_keys_declared_to_disagree_lift_no_claim_to_the_certain_threshold(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair at the schema's certain threshold passes the holder's one-to-one checks (one
    person recorded twice). The asker wins Ana of a household on its family name and address,
    then asks for Maria on the same tokens declaring ``dob_postcode``, which it does not hold
    and whose disagreement the holder's schema here weighs high: the holder took the lifted
    score as certain and released a second member on tokens already spent today. The certain
    threshold is taken on the floor score too (xlink-query-v1 §7.5 items 4, 5)."""
    registry = _registry_with_a_household(pair, _MIXED[::2])  # Maria (a birth date), Ana
    service = pair.holder.query_service(registry)
    weights, disagreement = service._weights
    shared = ("family_postcode", "street_postcode", "minhash_name_postcode")
    certain = pair.holder.schema.certain_threshold
    assert certain is not None
    weights = {**weights, **{k: (certain - 0.1) / len(shared) for k in shared}}
    service._weights = (weights, {**disagreement, "dob_postcode": 5.0})
    names = pair.asker.schema.key_names
    member = {service.table.record_id(i): i for i in range(len(service.table.record_ids))}
    wanted: dict[str, Any] = {}
    seen: list[Any] = []

    def deciding(source: Any, schema: Any, threshold: float) -> Any:
        seen[:] = [p for p in source.iter_pairs() if p.peer_ref == member[wanted["id"]]]
        return decide(_Listed(source.session_id, tuple(seen)), schema, -100.0)

    def declaring(record: int, presence: bytes, handles: Any) -> RequestedHit:
        (me,) = seen
        keys = set(me.agreeing_keys) | wanted["declared"]
        return RequestedHit(
            record, presence_bits(sorted(names.index(k) for k in keys), len(names)), handles
        )

    monkeypatch.setattr("xlink.agency._query_answers.decide", deciding)
    monkeypatch.setattr("xlink.agency._query_answers.RequestedHit", declaring)
    released = []
    # Ana first, beating Maria as a rival by declaring a key Maria has whose disagreement costs
    for who, declared in (("CASO-90003", {"initial_family_dob"}), ("CASO-90001", {"dob_postcode"})):
        wanted.update(id=who, declared=declared)
        served, outcome, _ = _serve_and(
            pair, service, lambda conn: ask(pair.asker, conn, _one_household_row(pair))
        )
        assert not isinstance(outcome, BaseException), outcome
        released.append(served.released)
    assert released == [1, 0]
    denied = [f["reason"] for k, f in _holder_entries(pair) if k is AuditEvent.RELEASE_DENIED]
    assert denied == ["claimed-today"]


def _lie_about_presence(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch, only: Callable[[int], bool] | None = None
) -> None:
    """The asker decides best-of-either (only the holder records ``only`` picks, by their
    table index) and, for each record it asks for, declares the key presence that scores that
    record above the others it met on the same tokens."""
    schema = pair.asker.schema
    names, disagreement = schema.key_names, schema.disagreement_weights()
    seen: list[Any] = []

    def deciding(source: Any, schema: Any, threshold: float) -> Any:
        seen[:] = list(source.iter_pairs())
        wanted = [p for p in seen if only is None or only(p.peer_ref)]
        return decide(
            _Listed(source.session_id, tuple(wanted)), schema, threshold, links=BEST_OF_EITHER
        )

    def tailored(record: int, presence: bytes, handles: Any) -> RequestedHit:
        me = next(p for p in seen if p.peer_ref == record)
        extra: set[str] = set()
        for rival in seen:
            if rival.peer_ref != record and set(rival.handles) & set(me.handles):
                extra |= {k for k in rival.peer_keys - me.peer_keys if disagreement[k] < 0}
                extra |= {k for k in me.peer_keys - rival.peer_keys if disagreement[k] > 0}
        keys = sorted(names.index(k) for k in set(me.agreeing_keys) | extra)
        return RequestedHit(record, presence_bits(keys, len(names)), handles)

    monkeypatch.setattr("xlink.agency._query_answers.decide", deciding)
    monkeypatch.setattr("xlink.agency._query_answers.RequestedHit", tailored)


@pytest.mark.slow
def test_a_restarted_holder_still_lets_one_set_of_tokens_win_one_record_a_day(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder is `xlink query serve`, over mutual TLS, started twice on one workdir the same
    day (a restart, as when its list changes). The asker knows one household's family name,
    street and postcode, decides best-of-either and declares the key presence that favours the
    member it wants. Before the restart it wins one member; after it, none: the day's claims
    are in the workdir, not in the process (they were, and it won a second)."""
    registry = _registry_with_a_household(pair, _MIXED)
    registry_csv = pair.base / "registry" / "registry.csv"
    table = pair.holder.query_service(registry).table  # the CLI builds the same table
    index = {table.record_id(i): i for i in range(len(table.record_ids))}
    target: list[int] = []
    _lie_about_presence(pair, monkeypatch, lambda i: i in target)
    side = _one_household_row(pair)
    c, workdir, port_file = pair.ceremony, pair.base / "CA-cli", pair.base / "port"
    env = {**os.environ, "XLINK_TEST_PASSPHRASE": PASSPHRASE.decode()}
    released = 0
    for members in (["CASO-90001", "CASO-90002", "CASO-90003"], ["CASO-90002", "CASO-90003"]):
        port_file.unlink(missing_ok=True)
        serve = [
            sys.executable, "-m", "xlink.cli.main", "query", "serve",
            "--agency", CA, "--keys", str(c.keys[CA]), "--mou", str(c.mou),
            "--peer-bundle", str(c.bundles[US]), "--workdir", str(workdir),
            "--passphrase-env", "XLINK_TEST_PASSPHRASE", "--port", "0",
            "--port-file", str(port_file), "--max-connections", str(len(members)),
            str(registry_csv),
        ]  # fmt: skip
        holder = subprocess.Popen(serve, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text().strip()):
                assert holder.poll() is None, holder.communicate()
                assert time.monotonic() < deadline, "query serve never listened"
                time.sleep(0.05)
            port = int(port_file.read_text())
            for member in members:
                target[:] = [index[member]]
                outcome = asyncio.run(pair.asker.ask(side, "127.0.0.1", port, timeout=30))
                released += outcome.received
            assert holder.wait(timeout=60) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.communicate()
    assert released == 1
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1


def test_repeated_release_requests_cost_quota_and_release_nothing_twice(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asker with one decided match sends the same RELEASE_REQUEST again and again in one
    session, refusing every receipt. Each repeat had the holder seal, sign and audit a new
    release at no cost to the quota (20 repeats: 21 releases, 42 more audit entries). Now a
    record answered in the session is answered again with its fate, a release as DELIVERED,
    and every request's handles count against the day's quota."""
    side = pair.travellers(FOUND[:1])
    service = pair.holder.query_service(pair.registry)
    requested: list[RequestedHit] = []
    real = qa.RequestedHit
    monkeypatch.setattr(qa, "RequestedHit", lambda *a: requested.append(real(*a)) or requested[-1])
    refuse = AskerSession.send_receipts
    monkeypatch.setattr(
        AskerSession, "send_receipts", lambda s, answers: refuse(s, [(False, b"no")] * len(answers))
    )
    repeats: list[Any] = []

    async def asker(conn: Any) -> Any:
        async with QueryClient(pair.asker, conn, idle_timeout=10) as client:
            first = await client.ask(side)
            assert first.answers[0].fate == "sent" and len(requested) == 1
            session = client.session
            for _ in range(20):
                session.request_releases(requested)
                await _flush(conn, session)
                got = _only(session.receive(await _receive(conn, 10)), ReleasesReceived)
                repeats.extend(got.answers)
                if any(a.frame for a in got.answers):
                    session.send_receipts(
                        [(False, b"no")] * sum(bool(a.frame) for a in got.answers)
                    )
                    await _flush(conn, session)
            return first

    left = service.quota_left()
    served, first, _ = _serve_and(pair, service, asker)
    assert not isinstance(first, BaseException), first
    assert served.released == 1
    assert [a.fate for a in repeats] == [Fate.DELIVERED] * 20
    assert all(a.frame == b"" and a.release_id == repeats[0].release_id for a in repeats)
    kinds = [k for k, _ in _holder_entries(pair)]
    assert kinds.count(AuditEvent.RELEASE_SENT) == 1
    handles = len(requested[0].handles)
    assert left - service.quota_left() == first.evaluations + 20 * handles


def test_a_session_refused_at_its_first_message_is_audited(pair: QueryPair) -> None:
    """A HELLO for other terms, or anything but a HELLO first: the holder aborts with a code
    and, as the batch path does, audits SESSION_ABORTED (it wrote nothing: no session id)."""
    service = pair.holder.query_service(pair.registry)
    c = _config(pair.asker, asker=pair.asker.agency_id, holder=pair.asker.peer_id)
    firsts = {
        AbortCode.MOU_MISMATCH: M.Hello(
            bytes(16), c.mou_id, bytes(32), c.schema_digest, c.asker, c.holder
        ),
        AbortCode.SCHEMA_MISMATCH: M.Hello(
            bytes(16), c.mou_id, c.mou_digest, bytes(32), c.asker, c.holder
        ),
        AbortCode.UNEXPECTED_MESSAGE: M.Evaluate(1, bytes(32)),
    }
    for code, first in firsts.items():
        before = len(_holder_entries(pair))

        async def run(frame: bytes = M.encode(first)) -> Any:
            a, b = memory_pair()
            await a.send(frame)
            (failed,) = await asyncio.gather(
                service.handle(b, idle_timeout=2), return_exceptions=True
            )
            return failed

        failed = asyncio.run(run())
        assert isinstance(failed, RemoteProtocolError) and failed.code is code
        new = _holder_entries(pair)[before:]
        assert new == [
            (AuditEvent.SESSION_ABORTED, {"code": code.name, "side": "LOCAL", "peer": US})
        ]


def test_stalled_sessions_are_bounded_by_the_servers_connections(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner opens many sessions over mutual TLS, asks each for the table and reads
    nothing: each session the holder answers may hold an encoded copy of the table, so the
    number at once must be bounded. The server answers at most DEFAULT_MAX_HANDSHAKES
    connections at once and refuses (and audits) the next."""
    service = pair.holder.query_service(pair.registry)
    active = [0, 0]  # now, most at once
    handle = QueryService.handle

    async def counted(self: QueryService, conn: Any, **kw: Any) -> Any:
        active[0] += 1
        active[1] = max(active[1], active[0])
        try:
            return await handle(self, conn, **kw)
        finally:
            active[0] -= 1

    monkeypatch.setattr(QueryService, "handle", counted)

    async def flood() -> None:
        loop = asyncio.get_running_loop()
        port: asyncio.Future[int] = loop.create_future()
        server = asyncio.create_task(
            pair.holder.serve_queries(
                service, "127.0.0.1", 0, idle_timeout=5, on_listening=port.set_result
            )
        )
        bound = await asyncio.wait_for(port, 30)
        config = _config(pair.asker, asker=pair.asker.agency_id, holder=pair.asker.peer_id)
        conns = []
        for _ in range(DEFAULT_MAX_HANDSHAKES):
            conn = await connect("127.0.0.1", bound, **pair.asker.tls_options(), timeout=10)
            session = AskerSession(config, rng=pair.asker.rng)
            session.start()
            await _flush(conn, session)
            conns.append(conn)
        await asyncio.sleep(0.5)
        with pytest.raises(PeerRefused):
            await connect("127.0.0.1", bound, **pair.asker.tls_options(), timeout=10)
        assert active[1] == DEFAULT_MAX_HANDSHAKES
        for conn in conns:
            await conn.close(timeout=1.0)
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server

    asyncio.run(flood())
    refused = [f for k, f in _holder_entries(pair) if k is AuditEvent.PEER_REFUSED]
    assert [f["reason"] for f in refused] == ["too-many-handshakes"]


def test_an_ask_that_fits_the_quota_asks_only_for_the_releases_that_fit_too(
    tmp_path: Path,
) -> None:
    """The holder counts a release request's handles against its quota, so an ask whose
    evaluations fit what is left but whose match's handles do not must not send the request
    (it was aborted with QUOTA_EXHAUSTED after spending the evaluations): the match is
    reported not asked, and the session ends normally."""
    with query_pair(tmp_path / "probe") as probe:
        tokens = len(probe.travellers(FOUND[:1], "one.csv").tokens)
    with query_pair(tmp_path / "tight", quota=tokens + 2) as pair:
        service = pair.holder.query_service(pair.registry)
        one = pair.travellers(FOUND[:1], "one.csv")
        assert len(one.tokens) == tokens
        served, outcome, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, one))
        assert not isinstance(outcome, BaseException), outcome
        assert not isinstance(served, BaseException), served
        (answer,) = outcome.answers
        assert answer.matched and answer.fate == "not-asked"
        assert served.requested == 0 and served.evaluations == tokens == outcome.evaluations
        assert service.quota_left() == 2


def _maria_won_in_a_query(
    pair: QueryPair, service: QueryService, monkeypatch: pytest.MonkeyPatch
) -> int:
    """A query session in which the asker, with the Lopez family name and address only,
    declares the key presence that picks Maria; returns how many releases the holder sent."""
    with monkeypatch.context() as patched:
        target = ["CASO-90001"]
        _lie_about_presence(pair, patched, lambda i: service.table.record_id(i) in target)
        side = _one_household_row(pair)
        served, _, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, side))
    assert served.requested == 1
    return int(served.released)


@pytest.mark.parametrize("order", ["query, then exchange", "exchange, then query"])
def test_one_set_of_tokens_wins_one_record_of_a_household_a_day_across_both_modes(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """The day's claims held in the query mode only: a partner that won Maria in a query
    with the family name and address (its key presence chosen for her) won Ana the same day
    in a batch exchange, with a traveller row of those tokens and a made-up date of birth (and
    the other way round). The claims are the agency's now, one store for both modes: the
    second mode's pair, resting on tokens that decided a household member today and nothing
    more, is refused (``claimed-today`` in the exchange, not decided in the query)."""
    registry = _registry_with_a_household(pair, _MIXED)
    service = pair.holder.query_service(registry)

    def query() -> int:
        return _maria_won_in_a_query(pair, service, monkeypatch)

    def exchange() -> int:
        side = _one_household_row(pair, dob="01/01/1950")
        holder, _ = asyncio.run(exchange_in_process((pair.holder, registry), (pair.asker, side)))
        assert holder.decided == 1  # both sides decided the pair: the holder refuses to send it
        return int(holder.released_total)

    steps = [query, exchange] if order.startswith("query") else [exchange, query]
    released = [step() for step in steps]
    assert released == [1, 0]
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1
    denied = [
        e.fields["reason"] for e in pair.holder.audit.entries(kinds={AuditEvent.RELEASE_DENIED})
    ]
    assert denied == ["claimed-today"]  # in the exchange, or in the query (§7.5)


_ANA_ON_THE_HOUSEHOLD = {"dob": "01/01/1950"}  # the household's tokens and a made-up date
_JUAN_ON_HIS_OWN_FACTS = {"given_names": "Juan", "dob": "07/11/1995", "sex": "M"}


def test_each_release_request_the_holder_refuses_is_audited_with_its_reason(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asker that won Maria on the household's tokens asks, session after session, for
    the other members on the same tokens: each is refused, and each refusal was invisible in
    the holder's log (the batch path audits what it does not release). Now each is audited
    ``RELEASE_DENIED`` with its reason, under the request's first handle, so a partner probing
    the day of claims is seen."""
    registry = _registry_with_a_household(pair, _MIXED)
    service = pair.holder.query_service(registry)
    target = ["CASO-90001"]
    _lie_about_presence(pair, monkeypatch, lambda i: service.table.record_id(i) in target)
    side = _one_household_row(pair)
    served_all = []
    for member in ("CASO-90001", "CASO-90003", "CASO-90002", "CASO-90003"):
        target[:] = [member]
        served, _, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, side))
        served_all.append((served.requested, served.released))
    assert served_all == [(1, 1), (1, 0), (1, 0), (1, 0)]
    denied = [
        (e.fields["reason"], e.fields["handle"])
        for e in pair.holder.audit.entries(kinds={AuditEvent.RELEASE_DENIED})
    ]
    # Ana on tokens Maria spent; Juan beaten on them by a member as good (one-to-one); Ana
    assert [reason for reason, _ in denied] == ["claimed-today", "rival-record", "claimed-today"]
    assert all(len(handle) == 32 for _, handle in denied)  # a handle, hex: no value of ours


@pytest.mark.parametrize(
    ("rows", "sent", "withdrawn"),
    [([_ANA_ON_THE_HOUSEHOLD], [], ["CASO-90003"]),
     ([_JUAN_ON_HIS_OWN_FACTS], ["CASO-90002"], []),
     # beside a traveller the registry holds, sent in the same exchange
     ([_ANA_ON_THE_HOUSEHOLD, "USTR-00022"], [PAIRS["USTR-00022"]], ["CASO-90003"])],
    ids=["on-the-household-alone", "on-his-own-facts", "beside-another-person"],
)  # fmt: skip
def test_a_query_session_while_an_exchange_builds_its_releases_is_applied_before_they_leave(
    pair: QueryPair,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[dict[str, str] | str],
    sent: list[str],
    withdrawn: list[str],
) -> None:
    """An exchange reads the day's claims, builds its releases with no lock held, then
    writes what they claim. A query session in that window won Maria on the family name and
    address; the exchange, reading the day as it was before (here: a snapshot taken before the
    query, handed to it), built a release of another member on the same tokens, and it was
    sent (two members in a day). The claims are written as the day stands when they are, with
    the rule applied again: the release on the household alone is withdrawn before it leaves
    (``claimed-today``, audited, claiming nothing, its ledger item unsent); a member known by
    his own facts still goes, alone or beside the withdrawn one."""
    registry = _registry_with_a_household(pair, _MIXED)
    service = pair.holder.query_service(registry)
    claims = pair.holder.day_claims()
    before = claims.snapshot(pair.holder.clock().astimezone(UTC).date())
    assert _maria_won_in_a_query(pair, service, monkeypatch) == 1
    read, ours = Claims.snapshot, claims._path

    def snapshot(self: Claims, day: Any) -> Any:  # the holder's read comes before the query
        return before if self._path == ours else read(self, day)

    monkeypatch.setattr(Claims, "snapshot", snapshot)
    with traveller_file(pair.base / "bundled", FOUND).open(encoding="utf-8", newline="") as f:
        bundled = {r["pax_id"]: r for r in csv.DictReader(f)}
    side = _travellers(
        pair,
        [
            bundled[r] if isinstance(r, str) else {**_household_only(f"USTR-7777{i}", "Lopez"), **r}
            for i, r in enumerate(rows)
        ],
    )
    holder, asker = asyncio.run(exchange_in_process((pair.holder, registry), (pair.asker, side)))
    assert holder.decided == len(rows) and holder.released_total == len(sent)
    assert asker.received_total == len(sent)
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1 + len(sent)
    denied = [
        e.fields["reason"] for e in pair.holder.audit.entries(kinds={AuditEvent.RELEASE_DENIED})
    ]
    assert denied == ["claimed-today"] * len(withdrawn)
    audited = list(pair.holder.audit.entries(kinds={AuditEvent.RELEASE_SENT}))
    assert len(audited) == 1 + len(sent)  # Maria's in the query, and what the exchange sent
    with contextlib.closing(sqlite3.connect(pair.holder.workdir / "query" / "claims.db")) as db:
        claimed = {rid for (rid,) in db.execute("SELECT DISTINCT record_id FROM claims")}
    assert claimed == {"CASO-90001", *sent}
    states = {i.record_id: i.state.value for i in pair.holder.queue.items(pair.holder.clock())}
    assert states == {"CASO-90001": "SENT"} | dict.fromkeys(sent, "SENT") | dict.fromkeys(
        withdrawn, "TAKEN"
    )
    with Path(holder.matches_file).open(encoding="utf-8", newline="") as f:
        outbound = {
            r["own_record_id"]: (r["outbound"], r["outbound_reasons"]) for r in csv.DictReader(f)
        }
    assert outbound == dict.fromkeys(sent, ("sent", "")) | dict.fromkeys(
        withdrawn, ("denied", "claimed-today")
    )


def test_fabricated_records_each_on_another_token_of_the_household_win_one_of_it(
    pair: QueryPair,
) -> None:
    """The batch exchange of the query test above: a partner that knows only the family name
    and the address lists two fabricated records, one holding the family name with the postcode
    (``family_postcode``), the other a MinHash band of the family name with the postcode, each
    with random tokens for keys that make its declared presence favour one member (Maria, then
    Ana). The two records hold no token in common, so one-to-one lets each win a member; but
    both tokens are Maria's too, spent when she is released: the second is ``claimed-today``."""
    registry = _registry_with_a_household(pair, _MIXED)
    side = _travellers(
        pair, [_household_only(record_id, "Lopez") for record_id in ("USTR-F1", "USTR-F2")]
    )
    tokens = side.tokens
    held: dict[str, list[bytes]] = {}
    for i in range(len(tokens)):
        held.setdefault(tokens.key_of(i), []).append(tokens.value(i))
    fabricated = TokenSetBuilder(tokens.key_names)
    for record_id, key, favour in (
        ("USTR-F1", "family_postcode", ("dob_postcode", "dob_street", "document")),
        ("USTR-F2", "minhash_name_postcode", ("initial_family_dob", "given_dob_swapped",
                                              "soundex_family_dob", "metaphone_names_year",
                                              "names_dob_swapped", "names_year_month",
                                              "dob_locality", "document")),
    ):  # fmt: skip
        fake = [(k, os.urandom(32)) for k in favour]
        fabricated.add_record(record_id, [*((key, token) for token in held[key]), *fake])
    _one_released_the_other_claimed_today(pair, registry, side, fabricated)


def test_members_holding_different_bands_of_the_family_name_win_one_of_the_household(
    pair: QueryPair,
) -> None:
    """A MinHash band of the family name alone is held by a member only if the member's given
    name leaves it unchanged: Maria and Juan Garcia each hold a band of "Garcia" the other does
    not. Two fabricated records, each holding one of those bands alone (the family name and the
    postcode are all a partner needs to compute them), held no token of the other member, so
    spending the won member's own tokens let each win one (two released); the household's
    tokens are spent with either member: one released, the other ``claimed-today``."""
    members = (("CASO-90001", "Maria", "02/03/1970", "F", ""),
               ("CASO-90002", "Juan", "11/07/1995", "M", ""))  # fmt: skip
    registry = _registry_with_a_household(pair, members, family="Garcia")
    side = _travellers(
        pair, [_household_only(record_id, "Garcia") for record_id in ("USTR-F1", "USTR-F2")]
    )
    tokens = side.tokens
    bands = {
        tokens.value(i) for i in range(len(tokens)) if tokens.key_of(i) == "minhash_name_postcode"
    }
    held = registry.tokens.tokens_of({"CASO-90001", "CASO-90002"})
    maria, juan = set(held["CASO-90001"]), set(held["CASO-90002"])
    only_maria, only_juan = (bands & maria) - juan, (bands & juan) - maria
    assert only_maria and only_juan  # what makes the case: neither holds the other's band
    fabricated = TokenSetBuilder(tokens.key_names)
    fabricated.add_record("USTR-F1", [("minhash_name_postcode", b) for b in sorted(only_maria)])
    fabricated.add_record("USTR-F2", [("minhash_name_postcode", b) for b in sorted(only_juan)])
    _one_released_the_other_claimed_today(pair, registry, side, fabricated)


def _one_released_the_other_claimed_today(
    pair: QueryPair, registry: Any, side: Any, fabricated: TokenSetBuilder
) -> None:
    """Exchange the asker's ``side`` with its tokens replaced by ``fabricated`` (two records);
    both pairs are decided, one member is released, the other denied ``claimed-today``."""
    liar = dataclasses.replace(side, tokens=fabricated.build(), hashed=None)
    holder, _ = asyncio.run(exchange_in_process((pair.holder, registry), (pair.asker, liar)))
    assert holder.decided == 2 and holder.released_total == 1
    denied = [
        e.fields["reason"] for e in pair.holder.audit.entries(kinds={AuditEvent.RELEASE_DENIED})
    ]
    assert denied == ["claimed-today"]


def _household_only(record_id: str, family: str) -> dict[str, str]:
    """A traveller row of a family name and the household's address, nothing else."""
    return {"pax_id": record_id, "surname": family, "us_address": "4 Oak Avenue",
            "us_zip": "K2B 7C3", "source": "APIS"}  # fmt: skip


def _travellers(pair: QueryPair, rows: list[dict[str, str]]) -> Any:
    """The asker's travellers file of ``rows`` (manifest column: value), prepared."""
    manifest = traveller_file(pair.base / "asker-files", ["USTR-00022"])
    with manifest.open(encoding="utf-8", newline="") as f:
        head = next(csv.reader(f))
    with manifest.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([head, *([r.get(c, "") for c in head] for r in rows)])
    return pair.asker.prepare([manifest])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # names written whole: the family name is the last word
        (("CASO-90001", "", "", "Maria Garcia", ""), ("CASO-90002", "", "", "Juan Garcia", "")),
        # a maiden name as an alias written whole
        (("CASO-90001", "Lopez", "Sofia", "", "Sofia Garcia"),
         ("CASO-90002", "Garcia", "Jose", "", "")),
        # a compound family name holding the one the partner knows
        (("CASO-90001", "Garcia Lopez", "Maria", "", ""), ("CASO-90002", "Garcia", "Juan", "", "")),
    ],
    ids=["names-written-whole", "maiden-name-alias", "compound-family-name"],
)  # fmt: skip
def test_a_household_named_in_other_forms_still_gives_one_member(
    pair: QueryPair, first: tuple[str, ...], second: tuple[str, ...]
) -> None:
    """The household is Garcia at one address whichever way our records write it: names
    written whole, a maiden name as an alias, a compound family name. Its projection was built
    from the family fields as written, so none of these spent the household's tokens, and two
    fabricated records (the first on what Maria holds of the household, the second on a band
    of the family name only Juan holds) won both; the projection reads the names as key
    derivation does, its parts too."""
    registry = _registry_of_names(pair, (first, second))
    side = _travellers(pair, [_household_only(r, "Garcia") for r in ("USTR-F1", "USTR-F2")])
    tokens = side.tokens
    of_key = {
        key: {tokens.value(i) for i in range(len(tokens)) if tokens.key_of(i) == key}
        for key in ("minhash_name_postcode", "family_postcode")
    }
    held = registry.tokens.tokens_of({first[0], second[0]})
    one, other = set(held[first[0]]), set(held[second[0]])
    bands = of_key["minhash_name_postcode"]
    only_one, only_other = (bands & one) - other, (bands & other) - one
    assert only_other  # a band of the family name the first member does not hold
    fabricated = TokenSetBuilder(tokens.key_names)
    key, first_tokens = (
        ("minhash_name_postcode", only_one)
        if only_one
        else ("family_postcode", of_key["family_postcode"] & one)
    )
    fabricated.add_record("USTR-F1", [(key, t) for t in sorted(first_tokens)])
    fabricated.add_record("USTR-F2", [("minhash_name_postcode", t) for t in sorted(only_other)])
    _one_released_the_other_claimed_today(pair, registry, side, fabricated)


def _registry_of_names(pair: QueryPair, members: tuple[tuple[str, ...], ...]) -> Any:
    """The bundled registry with a full-name and an aliases column, and the ``members`` (id,
    family name, given name, full name, aliases) at the household's address."""
    source = DATA / "ca_sex_offenders.csv"
    with source.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    head = [*rows[0], "Full Name", "Aliases"]
    rows = [head, *([*row, "", ""] for row in rows[1:])]
    for record_id, family, given, full, aliases in members:
        values = {"Registry No": record_id, "Family Name": family, "Given Name": given,
                  "Full Name": full, "Aliases": aliases, "Date of Birth": "02/03/1970",
                  "Sex": "F", "Citizenship": "CAN", "Street Address": "4 Oak Avenue",
                  "City": "Ottawa", "Province": "ON", "Postal Code": "K2B 7C3", "Country": "CAN",
                  "Source Ref": "RCMP-SRC-9001", "Grading": "2B", "Handling Code": "P",
                  "Offence": "Sexual assault", "Risk Level": "High"}  # fmt: skip
        rows.append([values.get(column, "") for column in head])
    target = pair.base / "registry" / "registry.csv"
    target.parent.mkdir()
    with target.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    mapping = json.loads((DATA / "ca_sex_offenders.mapping.json").read_text(encoding="utf-8"))
    mapping["columns"] |= {"Full Name": "full_name", "Aliases": "aliases"}
    target.with_name("registry.mapping.json").write_text(json.dumps(mapping), encoding="utf-8")
    return pair.holder.prepare([target])


def test_two_members_of_a_household_each_known_by_their_own_facts_are_both_released(
    pair: QueryPair,
) -> None:
    """The day of claims sets aside only the tokens another record won: a partner listing
    two members of the household with their own given names and dates of birth (a sibling
    each, both genuinely listed) has both released in one exchange."""
    registry = _registry_with_a_household(pair, _MIXED)
    rows = [
        {**_household_only(f"USTR-7777{i}", "Lopez"), "given_names": given, "dob": dob, "sex": sex}
        for i, (given, dob, sex) in enumerate((("Maria", "03/02/1970", "F"),
                                               ("Juan", "07/11/1995", "M")))
    ]  # fmt: skip
    side = _travellers(pair, rows)
    holder, _ = asyncio.run(exchange_in_process((pair.holder, registry), (pair.asker, side)))
    assert holder.decided == 2 and holder.released_total == 2
    assert not list(pair.holder.audit.entries(kinds={AuditEvent.RELEASE_DENIED}))


def _releases_rewritten(
    rewrite: Callable[[M.ReleasesMessage], M.ReleasesMessage],
) -> Callable[[bytes], bytes]:
    """The holder's RELEASES answers (two travellers decided) rewritten by ``rewrite`` as
    they leave it; every other frame as it is."""

    def frame(data: bytes) -> bytes:
        message = M.decode(data)
        if isinstance(message, M.ReleasesMessage) and len(message.frames) >= 2:
            return M.encode(rewrite(message))
        return data

    return frame


def _ended_by_a_bad_release(
    pair: QueryPair, served: Any, outcome: Any, transcript: Any, reason: str = "not-decided"
) -> dict[str, Any]:
    """The asker refused a release no honest holder sends: audited, the session aborted with
    ``BAD_RELEASE`` and no RECEIPTS sent (xlink-query-v1 §7.4); returns ``QUERY_ENDED``'s
    fields."""
    assert isinstance(outcome, BadRelease) and outcome.reason == reason
    assert isinstance(served, PeerAborted) and served.code is AbortCode.BAD_RELEASE
    sent = [M.decode(f) for f in transcript]
    assert not any(isinstance(m, M.ReceiptsMessage) for m in sent)
    assert isinstance(sent[-1], M.Abort) and sent[-1].code == AbortCode.BAD_RELEASE
    entries = [(e.kind, dict(e.fields)) for e in pair.asker.audit.entries()]
    denied = [f["reason"] for k, f in entries if k is AuditEvent.RECEIVE_DENIED]
    assert denied == [reason]
    kind, ended = entries[-1]
    assert kind is AuditEvent.QUERY_ENDED
    assert (ended["outcome"], ended["code"]) == ("aborted", "BAD_RELEASE")
    return ended


def test_a_holder_cannot_file_one_travellers_release_under_another(pair: QueryPair) -> None:
    """Two travellers decided; the holder answers the first one's slot with the second one's
    release and the second one's slot denied. The asker once stored the release under the
    right traveller (its label says whose it is) but answered that the first was sent a
    sex-offender release and the second denied: the officer read the wrong person's answer.
    Then it refused the frame and went on, receipting the rest of a dishonest holder's answer.
    A frame that is not its slot's release ends the session now, with nothing stored."""

    def swapped(message: M.ReleasesMessage) -> M.ReleasesMessage:
        ids = message.release_ids
        return dataclasses.replace(
            message,
            fates=bytes([Fate.SENT, Fate.DENIED]) + message.fates[2:],
            release_ids=ids[16:32] + bytes(16) + ids[32:],
            frames=(message.frames[1], *message.frames[2:]),
        )

    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(["USTR-00039", "USTR-00022"])
    lying = _releases_rewritten(swapped)
    answered = _serve_and(pair, service, lambda c: ask(pair.asker, c, side), lying)
    ended = _ended_by_a_bad_release(pair, *answered)
    assert pair.asker.store.list(now=pair.asker.clock()) == ()
    assert (ended["records"], ended["matched"], ended["received"]) == (2, 2, 0)


def _delivered_as(release_id: bytes) -> Callable[[bytes], bytes]:
    """The holder's RELEASES with the first traveller's slot answered ``DELIVERED`` with
    ``release_id``, no frame; the others as the holder answered them."""

    def lie(message: M.ReleasesMessage) -> M.ReleasesMessage:
        sent_first = message.fates[0] == Fate.SENT
        return dataclasses.replace(
            message,
            fates=bytes([Fate.DELIVERED]) + message.fates[1:],
            release_ids=release_id + message.release_ids[16:],
            frames=message.frames[1:] if sent_first else message.frames,
        )

    def frame(data: bytes) -> bytes:
        message = M.decode(data)
        return M.encode(lie(message)) if isinstance(message, M.ReleasesMessage) else data

    return frame


@pytest.mark.parametrize("named", ["zeros", "made-up"])
def test_delivered_before_naming_no_release_of_ours_is_shown_unknown_and_audited(
    pair: QueryPair, named: str
) -> None:
    """The holder answers a decided traveller "delivered before" with a release id we never
    received. The asker once printed ``delivered before, release <id> (already in the
    store)``: the officer was sent to read a release that is not there (or, with another
    traveller's id, the wrong person's). Now the answer is what our store keeps of every
    release it received: this one is not among them, so it is shown as such and audited
    (``RECEIVE_DENIED``, ``unknown-release``); nothing of the holder's is taken, so the other
    traveller's release is stored and the session completes (a store restored from an older
    copy gives the same answer from an honest holder, and must not end every later ask)."""
    release_id = bytes(16) if named == "zeros" else bytes(range(16))
    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(["USTR-00039", "USTR-00022"])
    lying = _delivered_as(release_id)
    _, outcome, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side), lying)
    assert not isinstance(outcome, BaseException), outcome
    (first,) = [a for a in outcome.answers if a.fate == "delivered"]
    (second,) = [a for a in outcome.answers if a is not first]
    assert (first.held, first.category) == ("unknown", None)
    assert "is not one received from it here (audited)" in answer_line(first, "CA-RCMP")
    counted = outcome_json(outcome, "MOU", side, every_answer=False)
    assert (counted["delivered_before"], counted["delivered_unknown"]) == (0, 1)
    assert second.fate == "sent" and second.category is not None
    assert len(pair.asker.store.list(now=pair.asker.clock())) == 1
    denied = [dict(e.fields) for e in pair.asker.audit.entries(kinds={AuditEvent.RECEIVE_DENIED})]
    assert [(f["reason"], f["handle"]) for f in denied] == [("unknown-release", release_id.hex())]


def test_delivered_before_says_whom_the_named_release_was_filed_for(pair: QueryPair) -> None:
    """A holder may name, as "delivered before", a release of its own that we hold, for
    another traveller: the answer shows the stored release's category and the traveller it
    was filed for, never the holder's word alone, so the officer sees it is not this one's.
    An honest answer for the same traveller asked again shows no such note, and one whose
    release we received and no longer hold (purged) says so."""
    service = pair.holder.query_service(pair.registry)
    _, first, _ = _serve_and(
        pair, service, lambda c: ask(pair.asker, c, pair.travellers(["USTR-00022"], "a.csv"))
    )
    (earlier,) = first.answers
    assert earlier.fate == "sent" and earlier.release_id is not None
    lying = _delivered_as(bytes.fromhex(earlier.release_id))
    side = pair.travellers(["USTR-00039"], "b.csv")
    _, second, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side), lying)
    assert not isinstance(second, BaseException), second
    shown = second.answers[0]
    assert (shown.fate, shown.held, shown.release_id) == ("delivered", "held", earlier.release_id)
    assert (shown.category, shown.filed_for) == (earlier.category, "USTR-00022")
    assert answer_line(shown, "CA-RCMP").endswith("in the store, filed for USTR-00022")
    _, again, _ = _serve_and(
        pair, service, lambda c: ask(pair.asker, c, pair.travellers(["USTR-00022"], "c.csv"))
    )
    (honest,) = again.answers
    assert (honest.fate, honest.release_id, honest.filed_for) == (
        "delivered",
        earlier.release_id,
        "USTR-00022",
    )
    assert answer_line(honest, "CA-RCMP").endswith(f"[{earlier.category}], in the store")
    with sqlite3.connect(pair.asker.store.path) as conn:  # as a purge leaves it
        conn.execute("DELETE FROM releases")
        conn.execute("UPDATE received SET own_record_id = NULL")
    _, purged, _ = _serve_and(
        pair, service, lambda c: ask(pair.asker, c, pair.travellers(["USTR-00022"], "d.csv"))
    )
    (gone,) = purged.answers
    assert (gone.fate, gone.held, gone.release_id) == ("delivered", "purged", earlier.release_id)
    assert (gone.category, gone.filed_for) == (None, None)
    assert answer_line(gone, "CA-RCMP").endswith("purged from the store since")


def _second_frame_doubled(message: M.ReleasesMessage) -> M.ReleasesMessage:
    frames = (message.frames[0], message.frames[0], *message.frames[2:])
    return dataclasses.replace(message, frames=frames)


def _second_frame_corrupted(message: M.ReleasesMessage) -> M.ReleasesMessage:
    second = bytearray(message.frames[1])
    second[-1] ^= 1  # the sealed release's last byte: its label no longer opens
    return dataclasses.replace(message, frames=(message.frames[0], bytes(second)))


@pytest.mark.parametrize(
    ("lie", "reason"),
    [(_second_frame_doubled, "not-decided"), (_second_frame_corrupted, "label-failed")],
)
def test_a_bad_release_after_a_good_one_ends_the_session_and_an_honest_ask_loses_nothing(
    pair: QueryPair, lie: Callable[[M.ReleasesMessage], M.ReleasesMessage], reason: str
) -> None:
    """The holder answers the first traveller's slot honestly and the second's with the first
    one's release again, or with a frame whose label does not open: the session ends at the
    second (the code before receipted the first, refused the second and completed), the first
    traveller's release stays stored and counted in ``QUERY_ENDED``, and the same query asked
    again of an honest holder stores each traveller's release once."""
    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(["USTR-00039", "USTR-00022"])
    lying = _releases_rewritten(lie)
    answered = _serve_and(pair, service, lambda c: ask(pair.asker, c, side), lying)
    ended = _ended_by_a_bad_release(pair, *answered, reason=reason)
    kept = pair.asker.store.list(now=pair.asker.clock())
    assert len(kept) == 1
    assert (ended["records"], ended["matched"], ended["received"]) == (2, 2, 1)
    assert ended["evaluations"] > 0
    _, again, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
    assert not isinstance(again, BaseException), again
    assert [a.fate for a in again.answers] == ["sent", "sent"] and again.refused_by_us == 0
    stored = pair.asker.store.list(now=pair.asker.clock())
    assert len(stored) == 2 and kept[0] in stored
    # the first traveller's release came again as a copy of the one stored: each answer
    # names a release the store holds (it named the copy's id, which `store read` refuses)
    held = {r.release_id.hex() for r in stored}
    assert {a.release_id for a in again.answers} == held
    # and the holder, which took the copy's receipt as the delivery, answers "delivered
    # before" with the copy's id from now on: known here, shown as the release stored (a
    # check on the stored releases alone ended every later ask of an honest holder)
    _, third, _ = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
    assert not isinstance(third, BaseException), third
    assert [(a.fate, a.held) for a in third.answers] == [("delivered", "held")] * 2
    assert {a.release_id for a in third.answers} == held


def test_a_release_the_asker_refuses_for_the_holders_clock_is_answered_and_the_session_goes_on(
    pair: QueryPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder whose clock runs ahead signs releases dated in the asker's future: an honest
    partner's fault, not a lie. Each is refused (``created-in-future``, audited) and answered
    in RECEIPTS, and the session completes, so the holder's operator learns why. (The store's
    allowance is set an hour below zero, so that a release made now is ahead of it: both clocks
    stay real, in one key period.) This held on the code before too; it is the exception to the
    rule the tests above check."""
    monkeypatch.setattr(store_module, "_CREATED_AHEAD_US", -3_600_000_000)
    service = pair.holder.query_service(pair.registry)
    side = pair.travellers(["USTR-00039", "USTR-00022"])
    served, outcome, transcript = _serve_and(pair, service, lambda c: ask(pair.asker, c, side))
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.received == 0 and outcome.refused_by_us == 2
    assert served.outcome == "completed"
    (receipts,) = [m for m in map(M.decode, transcript) if isinstance(m, M.ReceiptsMessage)]
    assert receipts.oks == bytes(2) and set(receipts.answers) == {b"created-in-future"}
    denied = pair.asker.audit.entries(kinds={AuditEvent.RECEIVE_DENIED})
    assert [dict(e.fields)["reason"] for e in denied] == ["created-in-future"] * 2
    said = "release refused here: the holder's clock (dated ahead, or past its retention); audited"
    assert all(answer_line(a, CA).endswith(said) for a in outcome.answers)  # whole, not cut


def test_one_person_twice_in_a_manifest_is_asked_about_once(pair: QueryPair) -> None:
    """A traveller entered twice (two flights): both pairs reach the certain threshold with
    one holder record, and the request named that record twice, which the protocol refuses:
    the whole query failed after its evaluations were charged, with no answer at all."""
    manifest = traveller_file(pair.base / "asker-files", ["USTR-00039", "USTR-00022"])
    with manifest.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    again = list(next(r for r in rows if r[0] == "USTR-00039"))
    again[0] = "USTR-99999"
    with manifest.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([*rows, again])
    side = pair.asker.prepare([manifest])
    service = pair.holder.query_service(pair.registry)
    served, outcome, _ = _serve_and(pair, service, lambda conn: ask(pair.asker, conn, side))
    assert not isinstance(outcome, BaseException), outcome
    answers = {a.record_id: a for a in outcome.answers}
    assert answers["USTR-00039"].fate == "sent" and answers["USTR-00022"].fate == "sent"
    assert answers["USTR-99999"].matched and answers["USTR-99999"].fate == "not-asked"
    assert served.requested == 2 and outcome.received == 2
