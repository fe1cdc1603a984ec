"""End to end in memory: PSI, decide, release both ways, open, receipts; then scan every byte
that crossed for source ids and for the names of unmatched records (issue 4 tests)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from _officers import approve, open_queue
from _release_support import CA, HANDLE_KEY, SEALING, SIGNING, T0, US, sample_mou

from xlink.crypto.rand import DeterministicRandom
from xlink.decide import Decision, decide
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema
from xlink.policy import mou_digest
from xlink.prepare import PreparedSide, prepare_side
from xlink.protocol.events import PsiResult
from xlink.protocol.session import PsiSession
from xlink.release import (
    ApprovalQueue,
    ReleaseBatch,
    encode_release,
    match_for,
    receive_release,
    release_decided,
    verify_receipt,
)

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
FILES = {
    CA: [DATA / "ca_watchlist.csv", DATA / "ca_sex_offenders.csv"],
    US: [DATA / "us_watchlist.csv", DATA / "us_travellers.csv"],
}


def _secrets(side: PreparedSide, decision: Decision) -> tuple[set[bytes], set[bytes]]:
    """(source ids, name forms of unmatched records) of one side, as bytes to scan for."""
    matched = {m.local_record_id for m in decision.matches}
    sources = {r.source.source_id.encode() for r in side.records if r.source is not None}
    names: set[bytes] = set()
    for record in side.records:
        if record.record_id in matched:
            continue
        n = record.name
        parts = [p for p in (n.given, n.family, n.full) if p]
        if n.given and n.family:
            parts += [f"{n.given} {n.family}", f"{n.family}, {n.given}"]
        for part in parts:
            for form in (part, part.upper()):
                encoded = form.encode("utf-8")
                # Five bytes or more: a shorter string turns up in megabytes of random group
                # elements by chance, which would say nothing about a leak.
                if len(encoded) >= 5:
                    names.add(encoded)
    return sources, names


@dataclass
class Exchanged:
    sides: dict[str, PreparedSide]
    decisions: dict[str, Decision]
    psi_messages: list[bytes]


@pytest.fixture(scope="module")
def exchanged(tmp_path_factory: pytest.TempPathFactory) -> Exchanged:
    """One PSI session on the bundled files (CA watchlist + sex offenders against the US
    watchlist + travellers), decided at the sample MOU's threshold."""
    mou = sample_mou()
    schema = load_default_schema()
    rejects = tmp_path_factory.mktemp("rejects")  # never next to the bundled files
    sides = {
        agency: prepare_side(FILES[agency], schema=schema, rejects_dir=rejects)
        for agency in (CA, US)
    }
    crossed: list[bytes] = []

    def observe(sender: PsiSession, message: bytes) -> None:
        crossed.append(message)

    ca_result, us_result = exchange_in_memory(
        Party(CA, sides[CA].tokens, rng=DeterministicRandom("ca-psi")),
        Party(US, sides[US].tokens, rng=DeterministicRandom("us-psi")),
        schema=schema,
        mou_id=mou.id,
        mou_digest=mou_digest(mou),
        padding_bucket=mou.padding_bucket,
        observer=observe,
    )
    assert isinstance(ca_result, PsiResult) and isinstance(us_result, PsiResult)
    decisions = {
        CA: decide(ca_result, schema, mou.match_threshold),
        US: decide(us_result, schema, mou.match_threshold),
    }
    assert decisions[CA].matches and decisions[US].matches
    return Exchanged(sides, decisions, crossed)


def _release_both_ways(ex: Exchanged, approval: bool, tmp_path: Path) -> list[bytes]:
    """Release every decided match both ways, open each at the recipient and verify its
    receipt; return the sealed releases and receipts (the bytes that crossed). With
    ``approval``, each originator's ledger (audited, its approver enrolled) holds every
    release until the approver approves it."""
    mou = sample_mou(approval_required=approval)
    crossed: list[bytes] = []
    for originator, recipient in ((CA, US), (US, CA)):
        with contextlib.ExitStack() as stack:
            queue = None
            if approval:
                queue = stack.enter_context(
                    open_queue(
                        tmp_path / originator / "queue.db",
                        agency=originator,
                        agency_key=SIGNING[originator],
                        now=T0,
                    )
                )

            def release(
                seed: str, originator: str = originator, queue: ApprovalQueue | None = queue
            ) -> ReleaseBatch:
                return release_decided(
                    ex.decisions[originator],
                    ex.sides[originator].records,
                    mou=mou,
                    originator=originator,
                    signing_key=SIGNING[originator],
                    handle_key=HANDLE_KEY[originator],
                    rng=DeterministicRandom(f"{seed}-{originator}"),
                    now=T0,
                    queue=queue,
                )

            batch = release("release")
            sealed = batch.sealed
            if queue is not None:
                assert not sealed and batch.queued  # nothing leaves before approval
                for item in queue.pending(T0):
                    approve(queue, item.item_id, agency=originator, now=T0)
                # The next exchange (the same decision here) sends what was approved.
                sealed = release("release-again").sealed
        assert len(sealed) + len(batch.denied) == len(ex.decisions[originator].matches)
        assert len(sealed) > 5
        sources = _secrets(ex.sides[originator], ex.decisions[originator])[0]
        for s in sealed:
            record, receipt = receive_release(
                s.data,
                mou=mou,
                sealing_key=SEALING[recipient],
                signing_key=SIGNING[recipient],
                expected_session_id=ex.decisions[recipient].session_id,
                now=T0,
            )
            verify_receipt(receipt, mou=mou, release=s)
            assert match_for(record, ex.decisions[recipient].matches) is not None
            # Even inside the seal, the signed record holds no source id.
            plain = encode_release(record)
            assert not any(source in plain for source in sources)
            crossed += [s.data, receipt]
    return crossed


def _assert_nothing_leaked(ex: Exchanged, crossed: list[bytes]) -> None:
    blob = b"\x00".join(crossed)
    for agency in (CA, US):
        sources, names = _secrets(ex.sides[agency], ex.decisions[agency])
        assert sources and names
        leaked_sources = [s for s in sources if s in blob]
        leaked_names = [n for n in names if n in blob]
        assert not leaked_sources, f"{agency}: {len(leaked_sources)} source id(s) crossed"
        assert not leaked_names, f"{agency}: {len(leaked_names)} unmatched name(s) crossed"


def test_no_source_or_unmatched_name_crosses(exchanged: Exchanged, tmp_path: Path) -> None:
    crossed = _release_both_ways(exchanged, False, tmp_path)
    _assert_nothing_leaked(exchanged, exchanged.psi_messages + crossed)


def test_two_step_release_end_to_end(exchanged: Exchanged, tmp_path: Path) -> None:
    _assert_nothing_leaked(exchanged, _release_both_ways(exchanged, True, tmp_path))
