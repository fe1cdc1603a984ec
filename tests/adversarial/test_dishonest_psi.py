"""A dishonest partner against the PSI session (spec: xlink-psi-v2 §4.4-§4.5, §6.9-§6.11, §10).

Each test plays one attack of issue 11 with a peer built on the sans-I/O core (real sessions
whose outgoing messages are rewritten, or hand-made messages) against an honest victim, and
asserts that no token of the victim's that the attacker does not hold is matched, decided or
revealed: the session aborts with a coded reason, or completes with nothing to decide.

Against xlink-psi-v1 (re-blinded values sent as group elements, no confirmation round, no
commitment) the same attacks made every record of the victim match (reflection), moved real
matches onto records the attacker did not hold (permuted answers, about 180 records a session),
and let the attacker mirror the victim's grouping (copied Reveal).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _rewrites import rotate_reblinded, swap_confirmation_answers
from _sessions import CHUNK
from _sessions import psi_config as _config

from xlink.audit import AuditEvent, AuditLog
from xlink.audit.session import SessionAuditor
from xlink.conformance.script import with_top_bit
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import SUITE_R255, SUITE_X25519, BlindingKey
from xlink.errors import RemoteProtocolError
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol import AbortCode, ExchangeComplete, PsiResult, PsiSession, Role, State
from xlink.protocol import limits as L
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.events import Event
from xlink.protocol.handshake import make_hello
from xlink.protocol.messages import (
    Abort,
    Commit,
    ConfirmRequest,
    ConfirmResponse,
    Elements,
    Hello,
    Reblinded,
    Reveal,
)

KEYS = ("name_dob", "passport", "surname_postcode")


def _tokens(prefix: str, people: range) -> TokenSet:
    builder = TokenSetBuilder(KEYS)
    for n in people:
        builder.add_record(
            f"{prefix}-{n}",
            [(key, hashlib.sha256(f"{key}|person-{n}".encode()).digest()) for key in KEYS],
        )
    return builder.build()


Rewrite = Callable[[bytes], bytes]


def _drive(
    victim: PsiSession, attacker: PsiSession, rewrite: Rewrite, *, limit: int = 10_000
) -> RemoteProtocolError | None:
    """Move messages until both are done or stuck; the attacker's go through ``rewrite``.
    Returns the victim's error, if it raised one."""
    for _ in range(limit):
        moved = False
        while (m := victim.next_message()) is not None:
            moved = True
            if not attacker.done:
                attacker.receive_message(m)
        while (m := attacker.next_message()) is not None:
            moved = True
            if victim.done:
                continue
            try:
                victim.receive_message(rewrite(m))
            except RemoteProtocolError as exc:
                return exc
        if not moved:
            return None
    raise AssertionError("no progress limit reached")


def _own_records_matched(result: PsiResult | None) -> set[str]:
    if result is None:
        return set()
    return {p.local_record_id for p in result.pairs}


def test_honest_baseline_matches_only_the_overlap() -> None:
    """The harness itself: an unmodified peer matches exactly the people both hold."""
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 20)), rng=_rng("v"))
    peer = PsiSession(_config(Role.RESPONDER), _tokens("us", range(10, 30)), rng=_rng("p"))
    victim.initiate()
    assert _drive(victim, peer, lambda m: m) is None
    assert isinstance(victim.result, PsiResult)
    assert _own_records_matched(victim.result) == {f"ca-{n}" for n in range(10, 20)}


def _rng(name: str) -> DeterministicRandom:
    return DeterministicRandom(f"adversarial/{name}")


@pytest.mark.parametrize("rerandomise", [False, True])
def test_reflection_matches_nothing(rerandomise: bool) -> None:
    """A partner holding no records sends the victim's own blinded elements back as its own
    (optionally multiplied by a scalar it knows) and returns the victim's answers as its own.
    The answers are direction-tagged hashes, so nothing it can send is a valid answer for the
    victim's elements: nothing matches, and claiming matches in the confirmation round aborts."""
    victim_tokens = _tokens("ca", range(0, 40))
    victim = PsiSession(_config(Role.INITIATOR), victim_tokens, rng=_rng("victim"))
    victim.initiate()
    hello = victim.next_message()
    assert hello is not None
    v_hello = decode_message(hello)
    assert isinstance(v_hello, Hello)
    attacker_cfg = _config(Role.RESPONDER)
    a_hello = make_hello(attacker_cfg, padded_size=v_hello.padded_size, nonce=b"\x07" * 32)
    victim.receive_message(encode_message(a_hello))
    scalar = BlindingKey(b"\x05" * 32)
    victim_chunks: list[bytes] = []
    answers_to_us: list[bytes] = []
    while (m := victim.next_message()) is not None:
        msg = decode_message(m)
        if isinstance(msg, Elements):
            victim_chunks.append(msg.elements)
            reflected = SUITE_X25519.blind(scalar, msg.elements) if rerandomise else msg.elements
            for out in victim.receive_message(encode_message(Elements(msg.seq, reflected))) or []:
                del out
        elif isinstance(msg, Reblinded):
            answers_to_us.append(msg.elements)
    # Everything the victim sent us for "our" elements goes back as its answers.
    while (m := victim.next_message()) is not None:
        msg = decode_message(m)
        if isinstance(msg, Reblinded):
            answers_to_us.append(msg.elements)
    for seq, answer in enumerate(answers_to_us):
        victim.receive_message(encode_message(Reblinded(seq, answer)))
    request = victim.next_message()
    assert request is not None
    decoded = decode_message(request)
    assert isinstance(decoded, ConfirmRequest)
    assert decoded.final and decoded.points == b""  # the victim matched nothing
    # Claiming matches anyway: the victim evaluates no more points than it matched.
    with pytest.raises(RemoteProtocolError) as info:
        victim.receive_message(encode_message(ConfirmRequest(0, True, victim_chunks[0][: 32 * 4])))
    assert info.value.code is AbortCode.WRONG_COUNT


def test_permuted_answers_abort_with_confirmation_failed() -> None:
    """A partner holding real records re-blinds honestly but returns the answers in another
    order, moving its genuine matches onto slots of people it does not hold. The victim's
    confirmation of each claimed match recomputes the value from the token it claims: the
    session aborts before any Reveal, so no pair is formed."""
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 40)), rng=_rng("v2"))
    attacker = PsiSession(_config(Role.RESPONDER), _tokens("us", range(20, 60)), rng=_rng("a2"))
    victim.initiate()
    error = _drive(victim, attacker, rotate_reblinded)
    # Moved onto a dummy slot, a match disappears (the attacker then claims more than we
    # matched: WRONG_COUNT); moved onto a real token, its confirmation fails.
    assert error is not None
    assert error.code in (AbortCode.CONFIRMATION_FAILED, AbortCode.WRONG_COUNT)
    assert victim.result is None and victim.done


def _matched_slots(victim: PsiSession, attacker_tokens: TokenSet) -> set[int]:
    """The victim's slots (positions in its sent sequence) that carry a token the attacker
    holds: what a patient attacker learns by matching before it answers (white-box here)."""
    held = {attacker_tokens.value(i) for i in range(len(attacker_tokens))}
    own = victim._own
    values, first, perm = own._values, own._first, own.perm
    slots = set()
    for slot, source in enumerate(perm.tolist()):
        if source < len(first) and values[first[source]].tobytes() in held:
            slots.add(slot)
    return slots


def test_answers_swapped_among_matches_abort_with_confirmation_failed() -> None:
    """The sharpest permutation keeps the victim's match count: the attacker swaps two answers
    between slots that both carry tokens it holds, so the victim matches as many values as it
    should, each claimed for a token the attacker holds but bound to the other's value. The
    confirmation of those claims fails: CONFIRMATION_FAILED, nothing revealed."""
    attacker_tokens = _tokens("us", range(20, 60))
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 40)), rng=_rng("v7"))
    attacker = PsiSession(_config(Role.RESPONDER), attacker_tokens, rng=_rng("a7"))
    matched = _matched_slots(victim, attacker_tokens)
    assert len(matched) >= 2
    victim.initiate()

    def swap_two_matched(message: bytes) -> bytes:
        msg = decode_message(message)
        if not isinstance(msg, Reblinded):
            return message
        size = L.REBLINDED_SIZE
        here = sorted(j for j in matched if msg.seq * CHUNK <= j < (msg.seq + 1) * CHUNK)
        if len(here) < 2:
            return message
        values = [msg.elements[i : i + size] for i in range(0, len(msg.elements), size)]
        a, b = (j - msg.seq * CHUNK for j in here[:2])
        values[a], values[b] = values[b], values[a]
        matched.clear()  # one swap in the whole session
        return encode_message(Reblinded(msg.seq, b"".join(values)))

    error = _drive(victim, attacker, swap_two_matched)
    assert error is not None and error.code is AbortCode.CONFIRMATION_FAILED
    assert victim.result is None and victim.done


def test_confirmation_answers_swapped_abort() -> None:
    """Honest PSI answers, but the answers to the confirmation requests swapped."""
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 40)), rng=_rng("v8"))
    attacker = PsiSession(_config(Role.RESPONDER), _tokens("us", range(20, 60)), rng=_rng("a8"))
    victim.initiate()
    error = _drive(victim, attacker, swap_confirmation_answers)
    assert error is not None and error.code is AbortCode.CONFIRMATION_FAILED


def test_copied_reveal_cannot_be_made_before_commitment() -> None:
    """The mirroring attack needs the victim's Reveal before the attacker commits to its own.
    The victim sends its Commit and then waits: no Reveal leaves it until the peer's Commit
    has arrived (spec §6.11)."""
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 30)), rng=_rng("v3"))
    attacker = PsiSession(_config(Role.RESPONDER), _tokens("us", range(10, 40)), rng=_rng("a3"))
    victim.initiate()
    sent_by_victim: list[object] = []

    def withhold_commit(message: bytes) -> bytes:
        if isinstance(decode_message(message), Commit | Reveal):
            raise _Withheld
        return message

    with pytest.raises(_Withheld):
        for _ in range(1000):
            while (m := victim.next_message()) is not None:
                sent_by_victim.append(decode_message(m))
                attacker.receive_message(m)
            m2 = attacker.next_message()
            if m2 is None:
                break
            victim.receive_message(withhold_commit(m2))
    assert any(isinstance(m, Commit) for m in sent_by_victim)
    while (m := victim.next_message()) is not None:
        sent_by_victim.append(decode_message(m))
    assert not any(isinstance(m, Reveal) for m in sent_by_victim)


class _Withheld(Exception):
    pass


def test_reveal_changed_after_commitment_aborts() -> None:
    """A partner that commits, then sends a Reveal other than the one it committed to (e.g.
    regrouped to mirror ours) is caught when its final chunk is opened: BAD_COMMITMENT."""
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 30)), rng=_rng("v4"))
    attacker = PsiSession(_config(Role.RESPONDER), _tokens("us", range(10, 40)), rng=_rng("a4"))
    victim.initiate()

    def regroup(message: bytes) -> bytes:
        msg = decode_message(message)
        if not isinstance(msg, Reveal) or len(msg.records) < 2:
            return message
        # Merge the first two entries into one record, as a mirroring partner would.
        merged = b"".join(
            sorted(
                [msg.records[0][i : i + 16] for i in range(0, len(msg.records[0]), 16)]
                + [msg.records[1][i : i + 16] for i in range(0, len(msg.records[1]), 16)]
            )
        )
        size = len(msg.presence) // len(msg.records)
        presence = bytes(
            a | b for a, b in zip(msg.presence[:size], msg.presence[size : 2 * size], strict=True)
        )
        return encode_message(
            Reveal(
                msg.seq,
                msg.final,
                (merged, *msg.records[2:]),
                presence + msg.presence[2 * size :],
                msg.salt,
            )
        )

    error = _drive(victim, attacker, regroup)
    assert error is not None and error.code is AbortCode.BAD_COMMITMENT
    assert victim.result is None


def test_oversized_set_refused_at_hello() -> None:
    """Dictionary probing needs a set far larger than the partner's list. The MOU bounds each
    party's padded size; a Hello above it aborts with BAD_SET_SIZE before any element moves."""
    victim = PsiSession(
        _config(Role.INITIATOR, max_peer_set_size=64), _tokens("ca", range(0, 10)), rng=_rng("v5")
    )
    victim.initiate()
    assert victim.next_message() is not None
    probing = make_hello(_config(Role.RESPONDER), padded_size=367 * 1024, nonce=b"\x01" * 32)
    with pytest.raises(RemoteProtocolError) as info:
        victim.receive_message(encode_message(probing))
    assert info.value.code is AbortCode.BAD_SET_SIZE
    abort = victim.next_message()
    assert abort is not None and decode_message(abort).TYPE.name == "ABORT"


def test_own_set_above_bound_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="bound"):
        PsiSession(
            _config(Role.INITIATOR, max_own_set_size=16), _tokens("ca", range(0, 10)), rng=_rng("o")
        )


def test_confirmation_answer_out_of_subgroup_is_refused() -> None:
    """An answer that is not a point of the prime-order subgroup aborts as INVALID_ELEMENT."""
    victim = PsiSession(_config(Role.INITIATOR), _tokens("ca", range(0, 20)), rng=_rng("v6"))
    attacker = PsiSession(_config(Role.RESPONDER), _tokens("us", range(10, 30)), rng=_rng("a6"))
    victim.initiate()
    order8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")

    def poison(message: bytes) -> bytes:
        msg = decode_message(message)
        if isinstance(msg, ConfirmResponse) and msg.points:
            return encode_message(ConfirmResponse(msg.seq, order8 + msg.points[32:]))
        return message

    error = _drive(victim, attacker, poison)
    assert error is not None and error.code is AbortCode.INVALID_ELEMENT


@pytest.mark.parametrize("message", ["request", "response"])
def test_confirmation_point_with_bit_255_set_is_refused_under_suite_2(message: str) -> None:
    """xlink-psi-v2 §4.6, §10: a ristretto255 encoding with bit 255 set is not canonical, though
    libsodium 1.0.18 multiplies it as the canonical one; both confirmation directions refuse it."""
    suite = {"suite_id": SUITE_R255.suite_id}
    victim = PsiSession(
        _config(Role.INITIATOR, **suite), _tokens("ca", range(0, 20)), rng=_rng("v7")
    )
    attacker = PsiSession(
        _config(Role.RESPONDER, **suite), _tokens("us", range(10, 30)), rng=_rng("a7")
    )
    victim.initiate()
    kind = ConfirmRequest if message == "request" else ConfirmResponse

    def poison(raw: bytes) -> bytes:
        msg = decode_message(raw)
        if isinstance(msg, kind) and msg.points:
            return encode_message(dataclasses.replace(msg, points=with_top_bit(msg.points)))
        return raw

    error = _drive(victim, attacker, poison)
    assert error is not None and error.code is AbortCode.INVALID_ELEMENT
    assert victim.result is None


def test_reveal_with_more_entries_than_the_peer_set_is_refused() -> None:
    """A partner repeating one of its genuine entries to make us build pairs (and hold memory)
    without bound: a Reveal naming more than max(N, 65,536) records is BAD_REVEAL as soon as the
    chunk that crosses the cap arrives, before its final chunk."""
    victim, attacker, captured = _held_reveal("9")
    entry, presence = captured[0].records[0], captured[0].presence[:1]
    per_chunk = L.MAX_RECORDS_PER_REVEAL
    cap = max(attacker.padded_size, L.MIN_REVEAL_CAP)
    chunks = cap // per_chunk + 1
    with pytest.raises(RemoteProtocolError) as info:
        for seq in range(chunks):
            victim.receive_message(
                encode_message(Reveal(seq, False, (entry,) * per_chunk, presence * per_chunk))
            )
    assert info.value.code is AbortCode.BAD_REVEAL
    assert "cap for the peer's set size" in info.value.detail
    assert victim.result is None and victim.done


def test_an_empty_reveal_chunk_before_the_final_one_is_refused() -> None:
    """A partner stalling the session: Reveal chunks with no entries, not final, one inside
    each idle timeout, would keep us waiting without end (the timeout restarts with every
    message, and only the 24-bit sequence number limits them). An honest sender fills every
    chunk but the last, so the first such chunk is BAD_REVEAL."""
    victim, _attacker, captured = _held_reveal("11")
    assert captured[0].records  # the honest first chunk holds entries
    with pytest.raises(RemoteProtocolError) as info:
        victim.receive_message(encode_message(Reveal(0, False, (), b"")))
    assert info.value.code is AbortCode.BAD_REVEAL
    assert "empty Reveal chunk" in info.value.detail
    assert victim.result is None and victim.done


def test_reveal_naming_our_tokens_again_and_again_is_refused() -> None:
    """Within the cap on entries, a partner repeated one entry naming a value many of our
    records hold (a family name and city): each copy made us hold a row per token of ours
    carrying it, and build a pair per record of ours (65,536 copies of 1,024 handles: 26
    million pairs, 4.6 GB). The rows a Reveal makes us hold are capped too
    (REVEAL_ROWS_PER_ENTRY per entry of the cap): the chunk that passes it is BAD_REVEAL,
    long before the entries' cap, and before its rows are gathered."""
    victim, attacker, captured = _held_reveal("10", _crowd("ca", 400), _crowd("us", 20))
    entry, presence = captured[0].records[0], captured[0].presence[:1]
    per_chunk = L.MAX_RECORDS_PER_REVEAL
    cap = max(attacker.padded_size, L.MIN_REVEAL_CAP)
    sent = 0
    with pytest.raises(RemoteProtocolError) as info:
        for seq in range(cap // per_chunk + 1):
            victim.receive_message(
                encode_message(Reveal(seq, False, (entry,) * per_chunk, presence * per_chunk))
            )
            sent += per_chunk
    assert info.value.code is AbortCode.BAD_REVEAL
    assert "more often than the cap" in info.value.detail
    assert sent < cap // 2  # refused long before the cap on entries
    assert victim.result is None and victim.done


@pytest.mark.slow
def test_an_honest_reveal_of_a_value_shared_widely_on_both_sides_passes_the_rows_cap() -> None:
    """20 partner records and 30,000 of ours hold one family name and city: the honest Reveal
    makes 600,000 rows, past a cap of 8 per entry (it was refused, BAD_REVEAL, with no
    attacker); 64 per entry leaves room for such lists and still bounds the repeated entry."""
    ours = PsiSession(_config(Role.INITIATOR), _crowd("ca", 30_000), rng=_rng("honest-ca"))
    theirs = PsiSession(_config(Role.RESPONDER), _crowd("us", 20), rng=_rng("honest-us"))
    ours.initiate()
    _drive(ours, theirs, lambda message: message)
    assert isinstance(ours.result, PsiResult) and len(ours.result.pairs) == 20 * 30_000


def _crowd(prefix: str, n: int) -> TokenSet:
    """``n`` records, each with a document of its own and one family name and city for all."""
    builder = TokenSetBuilder(("document", "family_locality"))
    shared = hashlib.sha256(b"SMITH|LONDON").digest()
    for i in range(n):
        own = hashlib.sha256(f"{prefix}|document|{i}".encode()).digest()
        builder.add_record(f"{prefix}-{i}", [("document", own), ("family_locality", shared)])
    return builder.build()


def _held_reveal(
    seed: str, ours: TokenSet | None = None, theirs: TokenSet | None = None
) -> tuple[PsiSession, PsiSession, list[Reveal]]:
    """A victim (``ours``) and an attacker (``theirs``) session run up to the attacker's
    Reveal, which is held back (captured) instead of reaching the victim."""
    ours = _tokens("ca", range(0, 30)) if ours is None else ours
    theirs = _tokens("us", range(10, 40)) if theirs is None else theirs
    victim = PsiSession(_config(Role.INITIATOR), ours, rng=_rng(f"v{seed}"))
    attacker = PsiSession(_config(Role.RESPONDER), theirs, rng=_rng(f"a{seed}"))
    victim.initiate()
    captured: list[Reveal] = []

    def hold_reveal(message: bytes) -> bytes:
        msg = decode_message(message)
        if isinstance(msg, Reveal):
            captured.append(msg)
            raise _Withheld
        return message

    with pytest.raises(_Withheld):
        _drive(victim, attacker, hold_reveal)
    return victim, attacker, captured


def _holding_our_reveal() -> tuple[PsiSession, list[bytes], list[Event]]:
    """An honest pair run until the victim holds the peer's whole Reveal and has not yet sent
    any of its own (it sent its Commit): a window a fast honest peer puts it in. The victim,
    the peer's messages it received, and the events they gave."""
    victim = PsiSession(
        _config(Role.INITIATOR), _tokens("CA", range(6)), rng=DeterministicRandom(1)
    )
    peer = PsiSession(
        _config(Role.RESPONDER), _tokens("US", range(3, 9)), rng=DeterministicRandom(2)
    )
    victim.initiate()
    received: list[bytes] = []
    events: list[Event] = []
    committed = False
    while victim.result is None:
        moved = False
        if not committed and (message := victim.next_message()) is not None:
            committed = isinstance(decode_message(message), Commit)
            peer.receive_message(message)
            moved = True
        if (message := peer.next_message()) is not None:
            received.append(message)
            events += victim.receive_message(message)
            moved = True
        assert moved
    assert victim.state is State.REVEAL and any(isinstance(e, ExchangeComplete) for e in events)
    return victim, received, events


@pytest.mark.parametrize(
    ("again", "code"),
    [
        ("reveal", AbortCode.CHUNK_REPLAYED),  # its final chunk again (spec §6.7)
        ("next reveal", AbortCode.BAD_REVEAL),  # a chunk after the final one (§6.7)
        ("commit", AbortCode.UNEXPECTED_MESSAGE),  # a second Commit (§6.11)
    ],
)
def test_a_message_after_the_peers_final_reveal_is_the_peers_fault(
    again: str, code: AbortCode
) -> None:
    """Once the peer's final Reveal was in and ours not yet out, its reader was dropped: a
    replayed Reveal or a second Commit hit an assertion, and the victim aborted with
    INTERNAL_ERROR, blaming itself in its audit log and to the peer."""
    victim, received, _ = _holding_our_reveal()
    kind = Commit if again == "commit" else Reveal
    replay = [m for m in received if isinstance(decode_message(m), kind)][-1]
    if again == "next reveal":
        final = decode_message(replay)
        assert isinstance(final, Reveal) and final.final
        replay = encode_message(dataclasses.replace(final, seq=final.seq + 1))
    with pytest.raises(RemoteProtocolError) as raised:
        victim.receive_message(replay)
    assert raised.value.code is code
    abort = decode_message(victim.next_message() or b"")
    assert isinstance(abort, Abort) and abort.code == code


def test_a_session_that_aborts_after_its_result_is_known_has_none_and_is_audited_aborted(
    tmp_path: Path,
) -> None:
    """The result is known when the peer's final Reveal is in, before our own has gone: a
    session aborted then (the peer aborts, our send fails) kept its result, and its audit log
    said MATCHES and SESSION_COMPLETED, then nothing of the abort. The abort follows now."""
    victim, _, events = _holding_our_reveal()
    with AuditLog.open(tmp_path / "audit.db", signing_key=SigningKey(bytes(32))) as log:
        auditor = SessionAuditor(
            log, victim, own_tokens=18, clock=lambda: datetime(2026, 12, 7, tzinfo=UTC)
        )
        auditor.record(events)
        auditor.record(victim.receive_message(encode_message(Abort(30, "gone"))))
        kinds = [e.kind for e in log.entries()]
    assert victim.state is State.ABORTED and victim.result is None
    assert kinds[-3:] == [
        AuditEvent.MATCHES,  # what the session learnt, once it knew it
        AuditEvent.SESSION_COMPLETED,
        AuditEvent.SESSION_ABORTED,  # and how it ended
    ]
