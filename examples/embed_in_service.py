"""The Python API inside an async service: two agencies' sessions over real mutual TLS.

Each agency runs a ``LinkageService``: it loads its own files when it starts (in a worker
thread, so the event loop stays free), and exposes ``async def check_manifest(...)``, which
runs one xlink-psi-v2 session with the partner over TLS 1.3 — certificate pinned by the signed
MOU — writes the session to the agency's own tamper-evident audit log, and decides the matches.
Here both services run in one event loop on 127.0.0.1; in production each runs on its own
agency's network. Run:

    python examples/embed_in_service.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xlink.audit import AuditLog, verify_log
from xlink.audit.session import SessionAuditor
from xlink.cli.cmd_demo import bundled_path
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.crypto.tls_certs import TlsIdentity, make_tls_identity
from xlink.decide import decide
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import Mou, PartyKeys, accept_mou, load_sample_template, mou_digest, sign_mou
from xlink.prepare import PreparedSide, prepare_side
from xlink.protocol import Mode, PsiResult, PsiSession, Role, SessionConfig
from xlink.transport import FramedConnection, connect, run_session, serve_once

CA, US = "CA-RCMP", "US-DHS"
FILES = {CA: ["ca_watchlist.csv", "ca_sex_offenders.csv"], US: ["us_travellers.csv"]}


@dataclass(frozen=True)
class Credentials:
    """One agency's secrets. Fixed seeds make the example reproducible; a real agency generates
    them with ``system_random`` and keeps them in encrypted key files (``xlink keys``)."""

    tls: TlsIdentity  # its TLS certificate and key; the MOU pins the certificate's SHA-256
    signing: SigningKey  # signs the MOU
    sealing: SealingKey  # opens records released to it
    audit: SigningKey  # signs its audit log's checkpoints


def credentials(agency: str, now: datetime) -> Credentials:
    rng = DeterministicRandom(f"embed-example/{agency}")
    # OpenSSL checks the certificate's validity window against the real clock.
    tls = make_tls_identity(
        agency,
        not_before=now - timedelta(hours=1),
        not_after=now + timedelta(days=30),
        key_seed=rng(32),
    )
    return Credentials(tls, SigningKey.generate(rng), SealingKey.generate(rng), SigningKey(rng(32)))


def agree_mou(creds: dict[str, Credentials], now: datetime) -> Mou:
    """The bundled CA-US template, filled with both agencies' keys and pins, signed by both."""
    mou = load_sample_template().fill(
        {
            agency: PartyKeys(c.signing.verify_key, c.sealing.public_key, c.tls.fingerprint)
            for agency, c in creds.items()
        },
        schema_digest=schema_digest(load_default_schema()),
        valid_from=now.date(),
        valid_until=now.date() + timedelta(days=365),
    )
    signed = sign_mou(sign_mou(mou, CA, creds[CA].signing), US, creds[US].signing)
    return accept_mou(signed, local_agency=CA, today=now.date())


@dataclass(frozen=True)
class CheckReport:
    """What one agency's service reports after a check: ids and counts, no partner data."""

    agency: str
    session_id: str
    records: int
    candidates: int
    matched: int
    first_matches: list[str]  # the agency's OWN record ids
    tls_version: str
    audit_ok: bool
    audit_entries: int


class LinkageService:
    """One agency's linkage service. ``start()`` once, then ``check_manifest()`` per session."""

    def __init__(
        self, agency: str, *, mou: Mou, creds: Credentials, peer_cert_pem: bytes, audit_path: Path
    ) -> None:
        self.agency = agency
        self.mou = mou
        self.creds = creds
        self.peer = mou.peer_of(agency)
        self.peer_cert_pem = peer_cert_pem  # exchanged with the MOU; its SHA-256 is pinned
        self.audit_path = audit_path
        self.side: PreparedSide | None = None

    async def _open(
        self, host: str, port: int, *, listen: bool, on_listening: Callable[[int], object] | None
    ) -> FramedConnection:
        """Mutual TLS 1.3, trusting only the partner's certificate, pinned by the signed MOU."""
        pin = self.peer.tls_cert_sha256
        if listen:
            return await serve_once(
                host,
                port,
                identity=self.creds.tls,
                peer_cert_pem=self.peer_cert_pem,
                pinned_sha256=pin,
                timeout=10.0,
                on_listening=on_listening,
            )
        return await connect(
            host,
            port,
            identity=self.creds.tls,
            peer_cert_pem=self.peer_cert_pem,
            pinned_sha256=pin,
            timeout=10.0,
        )

    async def start(self) -> None:
        """Load and tokenise the agency's files off the event loop."""
        files = [bundled_path(name) for name in FILES[self.agency]]
        self.side = await asyncio.to_thread(prepare_side, files)

    async def check_manifest(
        self,
        host: str,
        port: int,
        *,
        listen: bool = False,
        on_listening: Callable[[int], object] | None = None,
    ) -> CheckReport:
        """Run one session with the MOU partner: listen for it (``listen=True``; the bound port
        goes to ``on_listening``) or connect to it. Raises ``PeerRefused`` when the TLS
        handshake or pin check fails, and a ``RemoteProtocolError`` when the session aborts
        (nothing is decided then)."""
        assert self.side is not None, "call start() first"
        conn = await self._open(host, port, listen=listen, on_listening=on_listening)
        tls_version = conn.ssl_object.version() if conn.ssl_object else "none"
        config = SessionConfig(
            role=Role.RESPONDER if listen else Role.INITIATOR,
            mode=Mode.PSI,
            party_id=self.agency,
            peer_id=self.peer.agency_id,
            mou_id=self.mou.id,
            mou_digest=mou_digest(self.mou),
            schema_digest=schema_digest(self.side.schema),
            padding_bucket=self.mou.padding_bucket,
        )
        session = PsiSession(config, self.side.tokens, rng=system_random)
        with AuditLog.open(self.audit_path, signing_key=self.creds.audit) as audit:
            auditor = SessionAuditor(
                audit, session, own_tokens=len(self.side.tokens), clock=lambda: datetime.now(UTC)
            )
            result = await run_session(session, conn, auditor=auditor, idle_timeout=30.0)
        assert isinstance(result, PsiResult)
        decision = decide(result, self.side.schema, threshold=self.mou.match_threshold)
        verified = verify_log(self.audit_path, self.creds.audit.verify_key)
        return CheckReport(
            agency=self.agency,
            session_id=result.session_id.hex(),
            records=self.side.loaded,
            candidates=decision.candidates,
            matched=len(decision.matches),
            first_matches=sorted(m.local_record_id for m in decision.matches)[:3],
            tls_version=str(tls_version),
            audit_ok=verified.ok,
            audit_entries=verified.entries,
        )


async def run(audit_dir: Path) -> tuple[CheckReport, CheckReport]:
    now = datetime.now(UTC)
    creds = {agency: credentials(agency, now) for agency in (CA, US)}
    mou = agree_mou(creds, now)
    ca, us = (
        LinkageService(
            agency,
            mou=mou,
            creds=creds[agency],
            peer_cert_pem=creds[mou.peer_of(agency).agency_id].tls.cert_pem,
            audit_path=audit_dir / f"{agency}.audit.db",
        )
        for agency in (CA, US)
    )
    await asyncio.gather(ca.start(), us.start())

    # The US listens on an ephemeral port; Canada connects once it is bound.
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        us.check_manifest("127.0.0.1", 0, listen=True, on_listening=bound.set_result)
    )
    first: list[asyncio.Future[Any]] = [bound, serving]
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        serving.result()  # the listener failed before binding: raise its error
    ca_report, us_report = await asyncio.gather(
        ca.check_manifest("127.0.0.1", bound.result()), serving
    )
    return ca_report, us_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as audit_dir:
        ca, us = asyncio.run(run(Path(audit_dir)))
    if args.json:
        print(json.dumps({"canada": asdict(ca), "usa": asdict(us)}, indent=2))
        return
    for report in (ca, us):
        print(
            f"{report.agency}: {report.records} records, {report.matched} matched "
            f"(of {report.candidates} candidate pairs), e.g. {', '.join(report.first_matches)}"
        )
        print(
            f"    session {report.session_id[:16]}… over {report.tls_version}; audit log "
            f"{'verified' if report.audit_ok else 'FAILED'} ({report.audit_entries} entries)"
        )


if __name__ == "__main__":
    main()
