"""``xlink officer keygen|enrol|revoke|list``: the officers who may read released records and
approve releases, each with their own key (docs/store.md, "Officers")."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from xlink.cli._common import add_now_option, emit_json, parse_now
from xlink.cli._custody import (
    DEFAULT_OFFICER_PASSPHRASE_ENV,
    OFFICER_PASSPHRASE,
    add_custody_options,
    open_custody,
)
from xlink.cli.cmd_keygen import add_passphrase_option, read_passphrase
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import PUBLIC_BUNDLE_FILE, load_public_bundle
from xlink.crypto.rand import system_random
from xlink.errors import InputError
from xlink.identifiers import FINGERPRINT_RULE, arg_type
from xlink.officers import (
    OFFICER_KEY_FILE,
    OFFICER_PUBLIC_FILE,
    OFFICERS_DIR,
    Enrolment,
    OfficerKey,
    OfficerRegistry,
    OfficerRole,
    load_officer_public,
)

__all__ = ["register", "run"]

DEFAULT_VALID_DAYS: Final = 365


def register(sub: Any) -> None:
    p = sub.add_parser(
        "officer",
        help="make an officer's key, enrol or revoke it, list the enrolled officers",
        description="Officers read released records and approve releases with their own "
        "keys: an officer makes a key (keygen), the agency enrols its public half with a role "
        "(enrol: reader reads, exports and shares; approver approves and denies releases), "
        "and every read or decision is then signed by the officer and audited with the key's "
        "fingerprint. Exit 0 on success, 3 for bad input, a file that exists or does not "
        "verify, or a workdir without an audit log.",
    )
    actions = p.add_subparsers(dest="officer_command", metavar="ACTION", required=True)
    keygen = actions.add_parser(
        "keygen",
        help="make an officer's own key",
        description="Make an officer's Ed25519 key: officer.key (sealed with the officer's "
        "passphrase, not the agency's) and officer.json, the public half to give the agency.",
    )
    keygen.add_argument("--name", required=True, help="badge number or name (not audited)")
    keygen.add_argument("--out", required=True, metavar="DIR", help="key directory (mode 0700)")
    add_passphrase_option(
        keygen,
        prefix=OFFICER_PASSPHRASE,
        what="the officer's passphrase",
        default_env=DEFAULT_OFFICER_PASSPHRASE_ENV,
    )
    enrol = actions.add_parser(
        "enrol",
        aliases=["enroll"],
        help="enrol an officer's key with a role",
        description="Sign an enrolment for an officer's public key with the agency's signing "
        "key, into the workdir's officers/ directory; audited as KEY_EVENT ENROLLED.",
    )
    enrol.add_argument(
        "--officer",
        required=True,
        metavar="FILE",
        help="the officer's officer.json (or the directory holding it)",
    )
    enrol.add_argument(
        "--role",
        required=True,
        action="append",
        choices=[r.value for r in OfficerRole],
        help="reader (read, export, share onward) or approver (approve, deny); repeatable",
    )
    enrol.add_argument(
        "--valid-days",
        type=int,
        default=DEFAULT_VALID_DAYS,
        metavar="N",
        help=f"how long the enrolment lasts (default {DEFAULT_VALID_DAYS} days)",
    )
    revoke = actions.add_parser(
        "revoke",
        help="revoke an officer's enrolment",
        description="Sign a revocation: from now on the officer's acts are refused. Audited "
        "as KEY_EVENT REVOKED.",
    )
    revoke.add_argument(
        "fingerprint",
        type=arg_type(FINGERPRINT_RULE),
        metavar="FINGERPRINT",
        help="the officer key's fingerprint (see list)",
    )
    list_ = actions.add_parser(
        "list",
        help="list the enrolled officers",
        description="List the enrolments in the workdir, each checked against the agency's "
        "public bundle (no passphrase needed).",
    )
    list_.add_argument("--workdir", required=True, metavar="DIR", help="the agency's workdir")
    list_.add_argument(
        "--keys", required=True, metavar="DIR", help="this agency's key directory (public.json)"
    )
    for action in (enrol, revoke):
        add_custody_options(action)
    for action in (keygen, enrol, revoke, list_):
        add_now_option(action)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(handler=run)


def _as_json(e: Enrolment, registry: OfficerRegistry) -> dict[str, object]:
    revoked = registry.revoked_at(e.fingerprint)
    return {
        "fingerprint": e.fingerprint,
        "name": e.name,
        "roles": sorted(r.value for r in e.roles),
        "enrolled_at": e.enrolled_at.isoformat(),
        "expires_at": e.expires_at.isoformat(),
        "revoked_at": None if revoked is None else revoked.isoformat(),
    }


def _keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for name in (OFFICER_KEY_FILE, OFFICER_PUBLIC_FILE):
        if (out / name).exists():
            raise InputError(f"{out / name}: already exists; refusing to overwrite it")
    key = OfficerKey.generate(args.name, rng=system_random)
    passphrase = read_passphrase(
        args, prefix=OFFICER_PASSPHRASE, confirm=True, prompt="New officer passphrase: "
    )
    public = key.save(out, passphrase, rng=system_random)
    if args.json:
        emit_json({"fingerprint": key.fingerprint, "public": str(public)})
    else:
        print(f"officer key {key.fingerprint} written to {out}")
        print(f"give {public} to the agency to enrol (xlink officer enrol)")
    return ExitCode.OK


def run(args: argparse.Namespace) -> int:
    command = args.officer_command
    if command == "keygen":
        return _keygen(args)
    now = parse_now(args.now) if args.now is not None else datetime.now(UTC)
    if command == "list":
        bundle = load_public_bundle(Path(args.keys) / PUBLIC_BUNDLE_FILE)
        registry = OfficerRegistry.load(
            Path(args.workdir) / OFFICERS_DIR,
            agency_id=bundle.agency_id,
            agency_key=bundle.verify_key,
        )
        if args.json:
            emit_json([_as_json(e, registry) for e in registry.enrolments()])
        elif not registry.enrolments():
            print("no officers enrolled")
        for e in registry.enrolments() if not args.json else ():
            revoked = registry.revoked_at(e.fingerprint)
            state = "revoked" if revoked else f"until {e.expires_at.isoformat()}"
            roles = ",".join(sorted(r.value for r in e.roles))
            print(f"{e.fingerprint}  {roles:<16} {state}  {e.name}")
        return ExitCode.OK
    if command == "enrol" and args.valid_days < 1:
        raise InputError("--valid-days: must be at least 1")
    public = load_officer_public(args.officer) if command == "enrol" else None
    with open_custody(args) as custody:
        signing = custody.keys.signing_key
        if public is not None:
            enrolment = custody.officers.enrol(
                public,
                [OfficerRole(r) for r in args.role],
                agency_key=signing,
                audit=custody.audit,
                now=now,
                valid_for=timedelta(days=args.valid_days),
            )
            doc = _as_json(enrolment, custody.officers)
            roles = ", ".join(sorted(r.value for r in enrolment.roles))
            message = f"enrolled officer {enrolment.fingerprint} as {roles}"
        else:
            custody.officers.revoke(
                args.fingerprint, agency_key=signing, audit=custody.audit, now=now
            )
            doc = {"fingerprint": args.fingerprint, "revoked_at": now.isoformat()}
            message = f"revoked officer {args.fingerprint}"
    if args.json:
        emit_json(doc)
    else:
        print(message)
    return ExitCode.OK
