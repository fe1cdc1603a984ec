"""What the custody commands share (``xlink officer``, ``xlink store``, ``xlink releases``): the
agency's workdir opened with its keys, its audit log (which must exist) and its enrolled
officers, and the officer who signs the act (docs/store.md)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from xlink.audit import AuditEvent, AuditLog
from xlink.cli._common import load_keys, parse_now
from xlink.cli.cmd_keygen import add_passphrase_option, read_passphrase
from xlink.crypto.keyfiles import AgencyKeys
from xlink.errors import DecryptionError, InputError
from xlink.officers import CLOCK_TOLERANCE, OFFICERS_DIR, OfficerKey, OfficerRegistry
from xlink.policy import load_pair_mou
from xlink.store import ReleaseStore

__all__ = [
    "AUDIT_FILE",
    "Custody",
    "add_custody_options",
    "add_officer_options",
    "add_store_options",
    "load_officer",
    "open_custody",
    "open_store",
    "parse_read_time",
]

AUDIT_FILE: Final = "audit.db"
STORE_FILE: Final = "store.db"
OFFICER_PASSPHRASE: Final = "officer-passphrase"  # noqa: S105 (an option prefix)
DEFAULT_OFFICER_PASSPHRASE_ENV: Final = "XLINK_OFFICER_PASSPHRASE"  # noqa: S105 (a name)


def add_custody_options(parser: argparse.ArgumentParser) -> None:
    """``--workdir`` (the agency's: its audit log, store, queue and officers) and ``--keys``
    with the agency passphrase options."""
    parser.add_argument(
        "--workdir",
        required=True,
        metavar="DIR",
        help="the agency's working directory (as given to serve/match): its audit.db must "
        "exist, and every action is audited there",
    )
    parser.add_argument(
        "--keys",
        required=True,
        metavar="DIR",
        help="this agency's key directory (from xlink keygen): its audit key signs the log",
    )
    add_passphrase_option(parser)


def add_officer_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--officer DIR`` (the officer's own key directory) and its passphrase options."""
    parser.add_argument(
        "--officer",
        required=True,
        metavar="DIR",
        help=f"the key directory of the officer who {what} (from xlink officer keygen)",
    )
    add_passphrase_option(
        parser,
        prefix=OFFICER_PASSPHRASE,
        what="the officer's passphrase",
        default_env=DEFAULT_OFFICER_PASSPHRASE_ENV,
    )


def load_officer(args: argparse.Namespace) -> OfficerKey:
    """The officer key named by ``--officer``, unlocked with the officer's passphrase."""
    directory = Path(args.officer)
    if not directory.is_dir():
        raise InputError(f"--officer: {directory} is not an officer key directory")
    passphrase = read_passphrase(
        args, prefix=OFFICER_PASSPHRASE, confirm=False, prompt="Officer's passphrase: "
    )
    try:
        return OfficerKey.load(directory, passphrase)
    except DecryptionError:
        raise InputError(
            f"--officer: cannot unlock the key in {directory} (wrong officer passphrase, or a "
            "damaged key file)"
        ) from None


def parse_read_time(text: str | None, *, clock: datetime | None = None) -> datetime:
    """``--now`` for a read or an export: it may be later than the clock (to see what a later
    read would be refused), never earlier, which would step back into a retention period."""
    now = parse_now(text)
    real = clock or datetime.now(UTC)
    if text is not None and now < real - CLOCK_TOLERANCE:
        raise InputError("--now: a read cannot be dated earlier than the clock")
    return now


@dataclass(frozen=True, slots=True)
class Custody:
    """The agency's side of a custody command: its keys, audit log and officers."""

    keys: AgencyKeys
    workdir: Path
    audit: AuditLog
    officers: OfficerRegistry


@contextlib.contextmanager
def open_custody(args: argparse.Namespace) -> Iterator[Custody]:
    """Open ``--workdir``'s audit log (an error if it does not exist: a typo must not start a
    new, empty log) with the audit key from ``--keys``, and load its enrolled officers."""
    workdir = Path(args.workdir)
    log_path = workdir / AUDIT_FILE
    if not log_path.is_file():
        raise InputError(
            f"--workdir: {log_path} does not exist (give the workdir serve/match used; a new "
            "log is never started here)"
        )
    keys = load_keys(args)
    assert keys is not None  # --keys is required
    with AuditLog.open(log_path, signing_key=keys.audit_key) as audit:
        officers = OfficerRegistry.load(
            workdir / OFFICERS_DIR,
            agency_id=keys.agency_id,
            agency_key=keys.signing_key.verify_key,
            audit=audit,
        )
        yield Custody(keys, workdir, audit, officers)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--mou FILE`` and ``--peer ID``: the MOU the workdir's store holds releases under."""
    parser.add_argument("--mou", required=True, metavar="FILE", help="the signed MOU")
    parser.add_argument(
        "--peer",
        metavar="ID",
        help="the partner whose releases these are: required with a multilateral MOU "
        "(docs/hub.md), checked against a bilateral one",
    )


@contextlib.contextmanager
def open_store(args: argparse.Namespace, custody: Custody, now: datetime) -> Iterator[ReleaseStore]:
    """The workdir's store of received releases (which must exist) under ``--mou`` with
    ``--peer``, read-only as to receipts (no signing key), checked to be a store of exchanges
    with that partner."""
    path = Path(args.workdir) / STORE_FILE
    if not path.is_file():
        raise InputError(f"--workdir: {path} does not exist (no release was ever stored there)")
    keys = custody.keys
    mou = load_pair_mou(args.mou, local_agency=keys.agency_id, peer=args.peer, today=now.date())
    peers = {str(e.fields["peer"]) for e in custody.audit.entries(kinds=(AuditEvent.MOU_ACCEPTED,))}
    partner = mou.peer_of(keys.agency_id).agency_id
    if peers and partner not in peers:
        raise InputError(
            f"--workdir: {args.workdir} holds exchanges with {', '.join(sorted(peers))}, "
            f"not {partner} (another --peer or --mou?)"
        )
    with ReleaseStore.open(
        path,
        mou=mou,
        sealing_key=keys.sealing_key,
        signing_key=None,
        audit=custody.audit,
        officers=custody.officers,
    ) as store:
        yield store
