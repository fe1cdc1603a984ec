"""End to end, refusals: each party its own OS process on 127.0.0.1, the server always the real
`xlink serve` (port 0, --port-file). A client with no certificate, the wrong certificate or an
expired certificate is refused; an MOU digest mismatch aborts both sides.

Keys come from AgencyKeys.generate/save and MOUs are filled and signed as in
xlink.ceremony.demo_ceremony, so that a test can choose each agency's keys and MOU.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.crypto.keyfiles import AgencyKeys, load_audit_verify_key
from xlink.crypto.rand import system_random
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import (
    Mou,
    PartyKeys,
    SignedMou,
    dump_mou,
    load_sample_template,
    parse_mou_template,
    sign_mou,
)

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "xlink" / "data"
CLIENT = HERE / "_tls_client.py"
FILES = {
    "CA-RCMP": [DATA / "ca_watchlist.csv", DATA / "ca_sex_offenders.csv"],
    "US-DHS": [DATA / "us_watchlist.csv", DATA / "us_travellers.csv"],
}
PEER = {"CA-RCMP": "US-DHS", "US-DHS": "CA-RCMP"}
PASSPHRASE = "e2e passphrase, not secret"
ENV_VAR = "XLINK_E2E_PASS"
ENV = {**os.environ, ENV_VAR: PASSPHRASE}
TIMEOUT = "10"  # --timeout of serve and match: a hang fails the test instead of blocking it
# serve's --timeout where a refused client comes at once: serve waits it out. The client is a
# new process that loads, prepares and unlocks its key before it connects, within this window.
SHORT = "8"
REFUSED_ONE = "(1 connection(s) refused: see the audit log)"
WAIT = 15.0  # how long a test waits for any one process
BUDGET = 30.0  # each test's wall-clock budget: a refusal ends the run, it does not hang

pytestmark = pytest.mark.slow


# -- keys and MOUs -----------------------------------------------------------------------------


def _keys(agency: str, *, now: datetime, valid_days: int = 2) -> AgencyKeys:
    return AgencyKeys.generate(agency, rng=system_random, now=now, valid_days=valid_days)


def _save(keys: AgencyKeys, directory: Path) -> tuple[Path, Path]:
    """Write a key directory; return it and its public bundle."""
    return directory, keys.save(directory, PASSPHRASE.encode())


def _signed_mou(
    path: Path,
    keys: Mapping[str, AgencyKeys],
    *,
    today: _dt.date,
    approval_required: bool | None = None,
) -> Path:
    """The bundled template filled with ``keys``, valid from ``today`` for two days, signed by
    both agencies (what demo_ceremony does, with keys of our choosing)."""
    template = load_sample_template()
    if approval_required is not None:
        doc = json.loads(template.document)
        doc["release"]["approval_required"] = approval_required
        template = parse_mou_template(json.dumps(doc), "json")
    mou = template.fill(
        {
            agency: PartyKeys(k.signing_key.verify_key, k.sealing_key.public_key, k.tls.fingerprint)
            for agency, k in keys.items()
        },
        schema_digest=schema_digest(load_default_schema()),
        valid_from=today,
        valid_until=today + _dt.timedelta(days=2),
    )
    signed: Mou | SignedMou = mou
    for agency, k in keys.items():
        signed = sign_mou(signed, agency, k.signing_key)
    path.write_text(dump_mou(signed, "toml"), encoding="utf-8")
    return path


def _ceremony(tmp_path: Path) -> CeremonyFiles:
    return demo_ceremony(
        tmp_path / "ceremony",
        passphrase=PASSPHRASE.encode(),
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
    )


# -- processes ---------------------------------------------------------------------------------


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xlink.cli.main", *args]


def _exchange_args(
    agency: str, keys: Path, mou: Path, peer_bundle: Path, work: Path, timeout: str = TIMEOUT
) -> list[str]:
    return [
        "--agency", agency,
        "--keys", str(keys),
        "--mou", str(mou),
        "--peer-bundle", str(peer_bundle),
        "--workdir", str(work / agency),
        "--passphrase-env", ENV_VAR,
        "--timeout", timeout,
        "--json",
        *(str(f) for f in FILES[agency]),
    ]  # fmt: skip


@contextmanager
def _serving(
    tmp_path: Path, keys: Path, mou: Path, peer_bundle: Path, timeout: str = TIMEOUT
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`xlink serve` for US-DHS on 127.0.0.1, port 0: yield the process once it listens, and
    its port. Killed on the way out if still running."""
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        _cmd(
            "serve", "--listen", "127.0.0.1:0", "--port-file", str(port_file),
            *_exchange_args("US-DHS", keys, mou, peer_bundle, tmp_path, timeout),
        ),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT
        while not port_file.exists():
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "serve never listened"
            time.sleep(0.05)
        yield server, int(port_file.read_text())
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _finish(server: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = server.communicate(timeout=WAIT)
    return subprocess.CompletedProcess(server.args, server.returncode, out, err)


def _match(
    tmp_path: Path, port: int, keys: Path, mou: Path, peer_bundle: Path, timeout: str = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(
            "match", "--peer", f"127.0.0.1:{port}",
            *_exchange_args("CA-RCMP", keys, mou, peer_bundle, tmp_path, timeout),
        ),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )  # fmt: skip


def _raw_client(port: int, server_cert: Path, identity: Path | None = None) -> dict[str, object]:
    """Run tests/e2e/_tls_client.py as its own process; return what it saw."""
    done = subprocess.run(
        [sys.executable, str(CLIENT), str(port), str(server_cert)]
        + ([str(identity)] if identity is not None else []),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _audit(work: Path, agency: str) -> list[tuple[AuditEvent, dict[str, object]]]:
    with AuditLog.open(work / agency / "audit.db", signing_key=None) as log:
        return [(e.kind, dict(e.fields)) for e in log.entries()]


def _kinds(entries: list[tuple[AuditEvent, dict[str, object]]]) -> set[AuditEvent]:
    return {kind for kind, _ in entries}


def _failure(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The one JSON object a failed `--json` run prints on stdout (and nothing else): ok false,
    the process's own exit code, and the error."""
    doc = json.loads(done.stdout)
    assert isinstance(doc, dict) and set(doc) == {"ok", "exit_code", "error"}, doc
    assert doc["ok"] is False and doc["exit_code"] == done.returncode, doc
    error = doc["error"]
    assert isinstance(error, dict) and set(error) == {
        "type",
        "code",
        "reason",
        "reasons",
        "detail",
    }, doc
    assert isinstance(error["type"], str) and isinstance(error["detail"], str), doc
    assert "BEGIN" not in done.stdout and "PRIVATE" not in done.stdout  # no PEM, no key
    return error


def _peer_refused(
    entries: list[tuple[AuditEvent, dict[str, object]]],
) -> list[dict[str, object]]:
    return [f for kind, f in entries if kind is AuditEvent.PEER_REFUSED]


def _assert_refused(
    served: subprocess.CompletedProcess[str], message: str, json_reason: str
) -> None:
    """`xlink serve` refused its peer before any session: exit 4, a message on stderr that
    says what happened, and with --json one failure object on stdout naming the refusal
    reason (the audit's reason) with the same message."""
    assert served.returncode == 4, served.stderr
    assert "\nxlink: no partner " in served.stderr, served.stderr
    assert message in served.stderr, served.stderr
    error = _failure(served)
    assert error["type"] == "PeerRefused" and error["code"] is None, error
    assert error["reason"] == json_reason, error
    assert message in str(error["detail"]), error


def _assert_refusal_audited(work: Path, reasons: list[str], us_bundle: Path) -> None:
    """The server's audit log: one PEER_REFUSED for the expected peer per reason of
    ``reasons``, in order, no session, and the log verifies with US-DHS's audit key (its key
    directory is the bundle's)."""
    report = verify_log(work / "US-DHS" / "audit.db", load_audit_verify_key(us_bundle.parent))
    assert report.ok, report
    entries = _audit(work, "US-DHS")
    assert AuditEvent.SESSION_STARTED not in _kinds(entries)
    assert AuditEvent.SESSION_ABORTED not in _kinds(entries)
    refused = _peer_refused(entries)
    assert [f["reason"] for f in refused] == reasons, entries
    for fields in refused:
        assert fields["peer"] == "CA-RCMP" and fields["role"] == "RESPONDER", refused
        assert set(fields) == {"peer", "reason", "mou", "role"}, refused


# -- the tests ---------------------------------------------------------------------------------


def test_client_without_certificate_is_refused(tmp_path: Path) -> None:
    start = time.monotonic()
    c = _ceremony(tmp_path)
    with _serving(tmp_path, c.keys["US-DHS"], c.mou, c.bundles["CA-RCMP"], SHORT) as (
        server,
        port,
    ):
        seen = _raw_client(port, c.keys["US-DHS"] / "tls.crt")
        served = _finish(server)
    # The refusal is audited as it happens and serve keeps waiting for the pinned peer; only
    # its timeout ends the run.
    _assert_refused(served, REFUSED_ONE, json_reason="no-peer")
    # TLS 1.3: the client's handshake completed; the refusal came on its first read, never
    # as application data.
    assert seen["handshake"] is True and seen["version"] == "TLSv1.3"
    assert seen["read"] != "data"
    assert AuditEvent.SESSION_STARTED not in _kinds(_audit(tmp_path, "US-DHS"))
    _assert_refusal_audited(tmp_path, ["no-certificate", "no-peer"], c.bundles["US-DHS"])
    assert time.monotonic() - start < BUDGET


def test_client_with_the_wrong_certificate_is_refused(tmp_path: Path) -> None:
    start = time.monotonic()
    c = _ceremony(tmp_path)
    # A second key set for the same agency id: its certificate is not the one the MOU pins.
    other = _keys("CA-RCMP", now=datetime.now(UTC))
    other_dir, _ = _save(other, tmp_path / "other-ca-rcmp-keys")
    identity = tmp_path / "other-identity.pem"
    identity.touch(mode=0o600)
    identity.write_bytes(other.tls.cert_pem + b"\n" + other.tls.key_pem)
    with _serving(tmp_path, c.keys["US-DHS"], c.mou, c.bundles["CA-RCMP"], "8") as (
        server,
        port,
    ):
        # `xlink match` with those keys refuses to start: the MOU names other keys (exit 3),
        # before it connects, so the server keeps waiting ...
        matched = _match(tmp_path, port, other_dir, c.mou, c.bundles["US-DHS"])
        assert matched.returncode == 3, matched.stderr
        assert "not the ones the MOU names for CA-RCMP" in matched.stderr
        error = _failure(matched)
        assert (error["type"], error["code"], error["reason"]) == ("InputError", None, None)
        assert "not the ones the MOU names for CA-RCMP" in str(error["detail"])
        assert server.poll() is None
        # ... and a raw TLS client presenting the other certificate is what the server judges.
        seen = _raw_client(port, c.keys["US-DHS"] / "tls.crt", identity)
        served = _finish(server)
    # The server trusts only the pinned certificate, so OpenSSL's verification refuses the
    # other one during the handshake (before the pin check could): certificate-invalid,
    # audited; serve then waits on until its timeout.
    _assert_refused(served, REFUSED_ONE, json_reason="no-peer")
    assert seen["read"] != "data"
    assert AuditEvent.SESSION_STARTED not in _kinds(_audit(tmp_path, "US-DHS"))
    _assert_refusal_audited(tmp_path, ["certificate-invalid", "no-peer"], c.bundles["US-DHS"])
    assert time.monotonic() - start < BUDGET


def test_client_with_an_expired_certificate_is_refused(tmp_path: Path) -> None:
    start = time.monotonic()
    now = datetime.now(UTC)
    keys = {
        # CA-RCMP's TLS certificate was valid for one day, ten days ago.
        "CA-RCMP": _keys("CA-RCMP", now=now - _dt.timedelta(days=10), valid_days=1),
        "US-DHS": _keys("US-DHS", now=now),
    }
    dirs = {a: _save(k, tmp_path / f"{a.lower()}-keys") for a, k in keys.items()}
    # The MOU pins that certificate and is itself valid today, so only TLS can refuse it.
    mou = _signed_mou(tmp_path / "mou.toml", keys, today=now.date(), approval_required=False)
    us_keys, us_bundle = dirs["US-DHS"]
    ca_keys, ca_bundle = dirs["CA-RCMP"]
    with _serving(tmp_path, us_keys, mou, ca_bundle, SHORT) as (server, port):
        matched = _match(tmp_path, port, ca_keys, mou, us_bundle)
        served = _finish(server)
    # The server: OpenSSL's validity check fails the handshake although the MOU pins the
    # certificate (audited as certificate-invalid); serve waits on and exits 4 at its timeout.
    _assert_refused(served, REFUSED_ONE, json_reason="no-peer")
    assert AuditEvent.SESSION_STARTED not in _kinds(_audit(tmp_path, "US-DHS"))
    _assert_refusal_audited(tmp_path, ["certificate-invalid", "no-peer"], us_bundle)
    # The client: in TLS 1.3 its own handshake completes (the server's certificate is valid),
    # so it starts the session and learns of the refusal on its first read: the connection is
    # lost, a session abort (exit 4) that it detected itself, before any session started.
    assert matched.returncode == 4, matched.stderr
    assert "CONNECTION_LOST" in matched.stderr, matched.stderr
    ca_log = _audit(tmp_path, "CA-RCMP")
    assert AuditEvent.SESSION_STARTED not in _kinds(ca_log)
    aborts = [f for kind, f in ca_log if kind is AuditEvent.SESSION_ABORTED]
    assert [(str(f["code"]), f["side"]) for f in aborts] == [("CONNECTION_LOST", "LOCAL")]
    # Its own TLS layer refused nothing: a session abort, not a PEER_REFUSED.
    assert _peer_refused(ca_log) == []
    error = _failure(matched)
    assert (error["type"], error["code"], error["reason"]) == (
        "ConnectionLost",
        "CONNECTION_LOST",
        None,
    ), error
    assert time.monotonic() - start < BUDGET


def test_mou_digest_mismatch_aborts_both(tmp_path: Path) -> None:
    start = time.monotonic()
    now = datetime.now(UTC)
    keys = {a: _keys(a, now=now) for a in ("CA-RCMP", "US-DHS")}
    dirs = {a: _save(k, tmp_path / f"{a.lower()}-keys") for a, k in keys.items()}
    # Same parties, same keys, same dates; only approval_required differs, so the digests do.
    mou_us = _signed_mou(tmp_path / "mou-us.toml", keys, today=now.date(), approval_required=True)
    mou_ca = _signed_mou(tmp_path / "mou-ca.toml", keys, today=now.date(), approval_required=False)
    us_keys, us_bundle = dirs["US-DHS"]
    ca_keys, ca_bundle = dirs["CA-RCMP"]
    with _serving(tmp_path, us_keys, mou_us, ca_bundle) as (server, port):
        matched = _match(tmp_path, port, ca_keys, mou_ca, us_bundle)
        served = _finish(server)
    assert served.returncode == 4, served.stderr
    assert matched.returncode == 4, matched.stderr
    for done in (served, matched):
        assert "xlink: session aborted: MOU_MISMATCH" in done.stderr, done.stderr
        # An aborted run prints no --json summary, only the failure object.
        error = _failure(done)
        assert error["code"] == "MOU_MISMATCH" and error["reason"] is None, error
        assert str(error["detail"]).startswith("MOU_MISMATCH"), error
    # The responder detected the mismatch; the initiator received the responder's Abort.
    assert _failure(served)["type"] == "RemoteProtocolError"
    assert _failure(matched)["type"] == "PeerAborted"
    sides: dict[str, object] = {}
    for agency in ("US-DHS", "CA-RCMP"):
        entries = _audit(tmp_path, agency)
        aborts = [f for kind, f in entries if kind is AuditEvent.SESSION_ABORTED]
        assert len(aborts) == 1, entries
        assert str(aborts[0]["code"]) == "MOU_MISMATCH"
        sides[agency] = aborts[0]["side"]
        assert _peer_refused(entries) == [], entries  # TLS accepted the peer
    # The responder (serve) compares the initiator's MOU digest with its own, detects the
    # mismatch and aborts (LOCAL); the initiator (match) records the peer's Abort (PEER).
    assert sides == {"US-DHS": "LOCAL", "CA-RCMP": "PEER"}, sides
    assert time.monotonic() - start < BUDGET


def test_serve_with_no_peer_records_no_peer(tmp_path: Path) -> None:
    start = time.monotonic()
    c = _ceremony(tmp_path)
    with _serving(tmp_path, c.keys["US-DHS"], c.mou, c.bundles["CA-RCMP"], timeout="1") as (
        server,
        _,
    ):
        served = _finish(server)
    # The audit reason (and the JSON one) says what happened: nobody came.
    _assert_refused(served, "no partner connected within 1 s", json_reason="no-peer")
    _assert_refusal_audited(tmp_path, ["no-peer"], c.bundles["US-DHS"])
    assert time.monotonic() - start < BUDGET


def test_match_with_nobody_listening_retries_then_records_nobody_listening(
    tmp_path: Path,
) -> None:
    start = time.monotonic()
    c = _ceremony(tmp_path)
    # A port that was free a moment ago: nobody listens on it, so the connection is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    began = time.monotonic()
    matched = _match(tmp_path, port, c.keys["CA-RCMP"], c.mou, c.bundles["US-DHS"], timeout="2")
    assert time.monotonic() - began >= 2  # it kept trying until --timeout
    assert matched.returncode == 4, matched.stderr
    message = f"xlink: nobody listening at 127.0.0.1:{port} (retried for 2 s)"
    assert message in matched.stderr, matched.stderr
    error = _failure(matched)
    assert (error["type"], error["code"], error["reason"]) == (
        "PeerRefused",
        None,
        "nobody-listening",
    ), error
    entries = _audit(tmp_path, "CA-RCMP")
    assert AuditEvent.SESSION_STARTED not in _kinds(entries)
    refused = _peer_refused(entries)
    assert [(f["peer"], f["reason"], f["role"]) for f in refused] == [
        ("US-DHS", "nobody-listening", "INITIATOR")
    ], entries
    assert time.monotonic() - start < BUDGET
