"""The PSI attacks of issue 11 over real mutual TLS against a serving agency (`run_agency`,
what `xlink serve` runs): the partner is the library's own `match` run whose outgoing PSI
messages are rewritten on the wire. Each attack ends with a coded abort on the serving side,
an audit entry with that code, nothing decided, released or stored.

Against xlink-psi-v1 the reflection attack made `serve` release all 500 of its records and the
permuted-answers attack 163 records of people the partner did not hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _agencies import US, Agencies
from _rewrites import rotate_reblinded, swap_confirmation_answers

import xlink.runner as runner
from xlink.audit import AuditEvent
from xlink.errors import RemoteProtocolError
from xlink.protocol import AbortCode
from xlink.protocol.codec import decode_message, encode_message
from xlink.protocol.messages import Hello
from xlink.transport.stream import Connection

Rewrite = Callable[[bytes], bytes]


class _Rewriting:
    """The partner's connection: every message it sends goes through ``rewrite`` first."""

    def __init__(self, conn: Connection, rewrite: Rewrite) -> None:
        self._conn, self._rewrite = conn, rewrite

    async def send(self, message: bytes) -> None:
        await self._conn.send(self._rewrite(message))

    async def receive(self) -> bytes | None:
        return await self._conn.receive()

    async def close(self, timeout: float | None = None) -> None:
        await self._conn.close(timeout)


def _run_with_partner_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rewrite: Rewrite
) -> tuple[Agencies, dict[str, Any]]:
    connect = runner.connect

    async def partner_connect(*args: Any, **kwargs: Any) -> Any:
        return _Rewriting(await connect(*args, **kwargs), rewrite)

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
