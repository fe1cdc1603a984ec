"""The PSI attacks of issue 11 over real mutual TLS against a serving agency (`run_agency`,
what `xlink serve` runs): the partner is the library's own `match` run whose outgoing PSI
messages are rewritten on the wire. Each attack ends with a coded abort on the serving side,
an audit entry with that code, nothing decided, released or stored.

Against xlink-psi-v1 the reflection attack made `serve` release all 500 of its records and the
permuted-answers attack 163 records of people the partner did not hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _agencies import TIMEOUT, US, Agencies
from _rewrites import Rewrite, Rewriting, rotate_reblinded, swap_confirmation_answers

import xlink.agency._agency as runner
from xlink.audit import AuditEvent
from xlink.crypto.suite import SUITE_X25519, BlindingKey
from xlink.errors import RemoteProtocolError
from xlink.protocol import AbortCode
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import Elements, Hello, Reblinded, Reveal
from xlink.release.transfer import FrameType, transfer_frame
from xlink.transport.stream import Connection


def _run_with_partner_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rewrite: Rewrite
) -> tuple[Agencies, dict[str, Any]]:
    connect = runner.connect

    async def partner_connect(*args: Any, **kwargs: Any) -> Any:
        return Rewriting(await connect(*args, **kwargs), rewrite)

    monkeypatch.setattr(runner, "connect", partner_connect)  # only `match` connects
    agencies = Agencies(tmp_path)
    return agencies, agencies.run()


def _assert_aborted_and_audited(
    agencies: Agencies, out: dict[str, Any], codes: tuple[AbortCode, ...]
) -> None:
    error = out[US]
    assert isinstance(error, RemoteProtocolError), error
    assert error.code in codes
    assert agencies.stored(US) == 0
    entries = agencies.audit(US)
    kinds = [k for k, _ in entries]
    assert AuditEvent.RELEASE_SENT not in kinds and AuditEvent.RELEASE_RECEIVED not in kinds
    assert AuditEvent.SESSION_COMPLETED not in kinds
    (aborted,) = [f for k, f in entries if k is AuditEvent.SESSION_ABORTED]
    assert aborted["code"] == error.code.name


def test_permuted_answers_against_serve_release_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agencies, out = _run_with_partner_rewriting(tmp_path, monkeypatch, rotate_reblinded)
    _assert_aborted_and_audited(
        agencies, out, (AbortCode.CONFIRMATION_FAILED, AbortCode.WRONG_COUNT)
    )


def test_confirmation_answers_swapped_against_serve_release_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agencies, out = _run_with_partner_rewriting(tmp_path, monkeypatch, swap_confirmation_answers)
    _assert_aborted_and_audited(agencies, out, (AbortCode.CONFIRMATION_FAILED,))


def test_oversized_hello_against_serve_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner declaring a padded set far above the MOU's bound for it (dictionary probing)
    is refused at the Hello: BAD_SET_SIZE, audited, nothing exchanged."""

    def inflate(message: bytes) -> bytes:
        msg = decode_message(message)
        if isinstance(msg, Hello):
            return encode_message(dataclasses.replace(msg, padded_size=367 * msg.padding_bucket))
        return message

    agencies, out = _run_with_partner_rewriting(tmp_path, monkeypatch, inflate)
    _assert_aborted_and_audited(agencies, out, (AbortCode.BAD_SET_SIZE,))
    (refused,) = [f for k, f in agencies.audit(US) if k is AuditEvent.SESSION_ABORTED]
    assert refused["side"] == "LOCAL"


def test_a_release_transfer_frame_in_the_middle_of_the_session_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner that starts the release transfer (its DIGEST) in place of its first
    Elements: the frame was held for the transfer and the session left waiting for the rest,
    to end in TIMEOUT a whole idle timeout later, blaming silence. It is UNEXPECTED_MESSAGE at
    once, audited, nothing released."""
    sent = {"elements": 0}

    def start_transfer_early(message: bytes) -> bytes:
        msg = decode_message(message)
        if isinstance(msg, Elements) and not sent["elements"]:
            sent["elements"] += 1
            return transfer_frame(FrameType.DIGEST, bytes(32))
        return message

    loop_start = time.monotonic()
    agencies, out = _run_with_partner_rewriting(tmp_path, monkeypatch, start_transfer_early)
    _assert_aborted_and_audited(agencies, out, (AbortCode.UNEXPECTED_MESSAGE,))
    assert time.monotonic() - loop_start < TIMEOUT


class _Mirroring:
    """The partner's connection, playing back what it received: each outgoing message of a
    type in ``kinds`` is replaced by the victim's message of the same type and ``seq``, passed
    through ``transform``. One that has not arrived yet is held and sent as soon as it does,
    before the partner's session sees it (so the partner's later messages still follow it)."""

    def __init__(
        self,
        conn: Connection,
        kinds: tuple[type, ...],
        transform: Callable[[Any], Any] = lambda m: m,
    ) -> None:
        self._conn, self._kinds, self._transform = conn, kinds, transform
        self._seen: dict[tuple[type, int], Any] = {}
        self._held: set[tuple[type, int]] = set()
        self._lock = asyncio.Lock()

    async def _send(self, message: bytes) -> None:
        async with self._lock:
            await self._conn.send(message)

    async def send(self, message: bytes) -> None:
        msg = decode_message(message) if message[:1] == b"\x02" else None  # PSI, not transfer
        if isinstance(msg, self._kinds):
            key = (type(msg), msg.seq)
            if key not in self._seen:
                self._held.add(key)
                return
            message = encode_message(self._transform(self._seen[key]))
        await self._send(message)

    async def receive(self) -> bytes | None:
        message = await self._conn.receive()
        if message is not None and message[:1] == b"\x02":
            msg = decode_message(message)
            if isinstance(msg, self._kinds):
                key = (type(msg), msg.seq)
                self._seen[key] = msg
                if key in self._held:
                    self._held.discard(key)
                    await self._send(encode_message(self._transform(msg)))
        return message

    async def close(self, timeout: float | None = None) -> None:
        await self._conn.close(timeout)


def _run_with_partner_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrap: Callable[[Connection], Any]
) -> tuple[Agencies, dict[str, Any]]:
    connect = runner.connect

    async def partner_connect(*args: Any, **kwargs: Any) -> Any:
        return wrap(await connect(*args, **kwargs))

    monkeypatch.setattr(runner, "connect", partner_connect)
    agencies = Agencies(tmp_path)
    return agencies, agencies.run()


def test_reflection_against_serve_matches_and_releases_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner sends the victim's own blinded elements back as its own (re-randomised by a
    scalar it knows) and the victim's answers back as its answers. Both lists here pad to one
    bucket, so the sizes line up. Against v1 this released every record; now the answers are
    tagged for the other direction and nothing matches: nothing is decided, sent or stored."""
    scalar = BlindingKey(b"\x05" * 32)

    def rerandomise(msg: Any) -> Any:
        if isinstance(msg, Elements):
            return Elements(msg.seq, SUITE_X25519.blind(scalar, msg.elements))
        return msg

    agencies, out = _run_with_partner_connection(
        tmp_path, monkeypatch, lambda conn: _Mirroring(conn, (Elements, Reblinded), rerandomise)
    )
    us = out[US]
    assert not isinstance(us, BaseException), (us, out)
    assert us.matched_tokens == 0 and us.decided == 0
    assert us.released_total == 0 and us.received_total == 0 and agencies.stored(US) == 0
    kinds = [k for k, _ in agencies.audit(US)]
    assert AuditEvent.RELEASE_SENT not in kinds


def test_copied_reveal_against_serve_aborts_with_bad_commitment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner commits to its own Reveal, waits for the victim's (which comes only after
    both Commits) and sends a copy of it instead of its own, to mirror the victim's grouping:
    the copy does not open the partner's commitment. BAD_COMMITMENT, audited, nothing released."""
    agencies, out = _run_with_partner_connection(
        tmp_path, monkeypatch, lambda conn: _Mirroring(conn, (Reveal,))
    )
    _assert_aborted_and_audited(agencies, out, (AbortCode.BAD_COMMITMENT, AbortCode.BAD_REVEAL))
