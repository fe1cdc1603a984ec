"""Opening an agency (:meth:`Agency.open <xlink.agency.Agency.open>`): the checks that need
no workdir (keys, MOU, partner's bundle, schema), and what the audit log records when a
workdir is opened under an MOU."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from xlink.agency._schema import schema_for_mou
from xlink.audit import AuditEvent
from xlink.audit.history import unrecorded_runs
from xlink.audit.milestones import agency_keys_in_use, record_in_force
from xlink.crypto.keyfiles import AgencyKeys, PublicBundle, load_public_bundle
from xlink.errors import DecryptionError, InputError
from xlink.linkage.schema import LinkageSchema
from xlink.policy import Mou, load_pair_mou, mou_digest

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["check_setup", "record_in_force_once", "record_unrecorded_runs"]


def check_setup(
    *,
    agency: str,
    keys_dir: str | Path,
    passphrase: bytes,
    mou_path: str | Path,
    peer_bundle_path: str | Path,
    today: date,
    peer: str | None = None,
    keys: AgencyKeys | None = None,
) -> tuple[AgencyKeys, Mou, LinkageSchema, PublicBundle]:
    """The checks of :meth:`Agency.open <xlink.agency.Agency.open>` that touch no workdir
    (``xlink check`` runs them before a partner connects): the keys open with ``passphrase``
    and are ``agency``'s, the MOU is signed by every party, valid ``today``, names ``agency``
    and these keys, the bundle is the partner's with the certificate the MOU pins, and the
    MOU's linkage schema is at hand. The MOU file is bilateral or multilateral
    (:func:`~xlink.policy.load_pair_mou`): ``peer`` names the partner, required with a
    multilateral MOU (the agency then runs under that pair's view) and, with a bilateral
    one, checked to be its other party. ``keys``: the keys of ``keys_dir`` already opened (a
    long-running agent opens them once, not once per run); the passphrase is then not used.
    Raises what :meth:`Agency.open <xlink.agency.Agency.open>` raises."""
    if keys is None:
        try:
            keys = AgencyKeys.load(keys_dir, passphrase)
        except DecryptionError:
            raise InputError(
                f"{keys_dir}: the keys do not open with this passphrase (or were altered)"
            ) from None
    if keys.agency_id != agency:
        raise InputError(f"{keys_dir}: holds the keys of {keys.agency_id}, not {agency}")
    mou = load_pair_mou(mou_path, local_agency=agency, peer=peer, today=today)
    own, partner = mou.party(agency), mou.peer_of(agency)
    if own.tls_cert_sha256 != keys.tls.fingerprint or own.verify_key != (
        keys.signing_key.verify_key
    ):
        raise InputError(f"{keys_dir}: these keys are not the ones the MOU names for {agency}")
    bundle = load_public_bundle(peer_bundle_path)
    if bundle.agency_id != partner.agency_id:
        raise InputError(
            f"{peer_bundle_path}: a bundle for {bundle.agency_id}, not {partner.agency_id}"
        )
    if bundle.tls_cert_sha256 != partner.tls_cert_sha256:
        raise InputError(
            f"{peer_bundle_path}: its TLS certificate is not the one the MOU pins for "
            f"{partner.agency_id}"
        )
    schema = schema_for_mou(mou, mou_path)
    return keys, mou, schema, bundle


def record_in_force_once(agency: Agency) -> None:
    """``MOU_ACCEPTED`` the first time this workdir's log runs under this MOU's digest,
    ``KEY_EVENT`` ``FIRST_USE`` the first time under each of our keys (docs/audit.md).
    Refuses (:class:`~xlink.errors.InputError`) a log whose checkpoints another key signs,
    e.g. one begun under the signing key, before the audit key: mixed, it could not be
    verified."""
    keys = agency.keys
    if not agency.audit.signed_by(keys.audit_key.verify_key):
        raise InputError(
            f"{agency.audit.path}: its checkpoints are not signed by this agency's audit key "
            f"({keys.audit_key.verify_key.fingerprint()}): verify it with the key that "
            "signed it (xlink audit verify --key), move it aside and start a new log"
        )
    in_use = agency_keys_in_use(
        signing=keys.signing_key.verify_key,
        sealing=keys.sealing_key.public_key,
        tls_cert_sha256=keys.tls.fingerprint,
        audit=keys.audit_key.verify_key,
    )
    record_in_force(
        agency.audit,
        mou=agency.mou.id,
        mou_digest=mou_digest(agency.mou),
        peer=agency.peer_id,
        keys=in_use,
        now=agency.clock(),
    )


def record_unrecorded_runs(agency: Agency) -> None:
    """``RUN_ENDED`` ``unrecorded`` for each run the log saw start and never end (a crash)."""
    audit = agency.audit
    for session in unrecorded_runs(audit, agency.peer_id):
        fields = {"outcome": "unrecorded", "peer": agency.peer_id, "session": session}
        audit.append(AuditEvent.RUN_ENDED, {**fields, "mou": agency.mou.id}, now=agency.clock())
