"""``xlink store list|read|purge|export``: the recipient's store of released records
(docs/store.md)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from xlink.cli._common import (
    add_now_option,
    emit_json,
    parse_now,
    terminal_text,
)
from xlink.cli._custody import (
    add_custody_options,
    add_officer_options,
    add_store_options,
    load_officer,
    open_custody,
    open_store,
    parse_read_time,
)
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError
from xlink.officers import EXPORT_TARGET, OfficerAction
from xlink.release import ReleaseRecord
from xlink.store import ReleaseStore, StoredRelease, to_stix_bundle
from xlink.store._rows import expires_at

__all__ = ["register", "run"]

_RELEASE_ID = re.compile(r"[0-9a-f]{32}")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "store",
        help="list, read, purge or export the released records received",
        description="Work with the recipient's store of released records (the workdir's "
        "store.db). Records are kept sealed (encrypted) at rest; every read and export is "
        "signed by an enrolled officer, states a purpose the MOU lists and is audited in the "
        "workdir's audit.db, which must exist; purge removes records past their retention. "
        "Exit 0 on success, 3 for bad input or files, 4 for a record that fails "
        "verification, 5 for a policy refusal (officer not enrolled or not a reader, purpose "
        "not allowed, retention over, --now before the audit log, unknown id, MOU refused).",
    )
    actions = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    list_ = actions.add_parser(
        "list",
        help="list stored releases (metadata only)",
        description="List stored releases: id, category, originator, received and expiry "
        "times. Nothing is opened, so nothing is audited.",
    )
    read = actions.add_parser(
        "read",
        help="open one stored record for a stated purpose",
        description="Open one stored record for a purpose the MOU lists, as an enrolled "
        "reader signs it (--officer); audited as RECORD_READ, or READ_DENIED with the reason.",
    )
    read.add_argument("id", metavar="ID", help="the release id (32 hex digits, see list)")
    purge = actions.add_parser(
        "purge",
        help="delete records past their retention",
        description="Delete every record whose retention period is over (the MOU's "
        "retention_days after the release's signed creation time, read from each opened "
        "record); audited as PURGE.",
    )
    export = actions.add_parser(
        "export",
        help="export the records still in retention as a STIX 2.1 bundle",
        description="Read every record still in retention, as an enrolled reader signs it "
        "(each read audited as RECORD_READ, and the export as RECORDS_EXPORTED), and write "
        "them as one STIX 2.1 bundle marked with the standard TLP 2.0 marking definitions. "
        "The same records always give the same bundle.",
    )
    export.add_argument("--out", metavar="FILE", help="write the bundle here (default: stdout)")
    for action in (read, export):
        action.add_argument(
            "--purpose", required=True, help="why: one of the MOU's purposes (border-security)"
        )
        add_officer_options(action, "reads")
    for action in (list_, read, purge, export):
        add_store_options(action)
        add_custody_options(action)
        add_now_option(action)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(handler=run)


@contextlib.contextmanager
def _open(args: argparse.Namespace, now: datetime) -> Iterator[tuple[ReleaseStore, str]]:
    with open_custody(args) as custody, open_store(args, custody, now) as store:
        yield store, custody.keys.agency_id


def _meta_json(m: StoredRelease) -> dict[str, object]:
    return {
        "release_id": m.release_id.hex(),
        "session_id": m.session_id.hex(),
        "category": m.category.value,
        "originator": m.originator,
        "received_at": m.received_at.isoformat(),
        "expires_at": m.expires_at.isoformat(),
        "expired": m.expired,
        "own_record_id": m.own_record_id,
    }


def _record_json(r: ReleaseRecord) -> dict[str, object]:
    c = r.caveats
    return {
        "release_id": r.release_id.hex(),
        "session_id": r.session_id.hex(),
        "mou_id": r.mou_id,
        "originator": r.originator,
        "category": r.category.value,
        "created_at": r.created_at.isoformat(),
        "fields": {name: list(values) for name, values in r.fields.items()},
        "grading": None if r.grading is None else r.grading.code(),
        "source_handle": r.source_handle.hex(),
        "caveats": {
            "tlp": c.tlp.value,
            "permitted_actions": c.permitted_actions.value,
            "handling_code": c.handling_code.value,
            "handling_conditions": c.handling_conditions,
            "originator_control": c.originator_control,
            "retention_days": c.retention_days,
            "provider_attribution": c.provider_attribution,
            "affected_party_notifications": c.affected_party_notifications,
            "unmodified_resale": c.unmodified_resale,
            "encrypt_at_rest": c.encrypt_at_rest,
        },
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _print_record(record: ReleaseRecord, meta: StoredRelease | None) -> None:
    """Everything an officer must obey, in plain text: the conditions, the permitted actions,
    attribution and notification duties, onward sharing, grading and expiry."""
    c = record.caveats
    print(f"release {record.release_id.hex()} ({record.category.value}, from {record.originator})")
    if meta is not None:
        print(f"  matched our record: {meta.own_record_id or '(not recorded)'}")
    for name, values in record.fields.items():  # the partner's text, never raw
        for value in values:  # one a line: a value holding "; " is not two
            print(f"  {name}: {terminal_text(value)}")
    print("handling:")
    print(f"  TLP:{c.tlp.value}; handling code {c.handling_code.value}")
    if c.handling_conditions:  # the MOU's text, each of its lines shown as one
        lines = [terminal_text(line) for line in c.handling_conditions.split("\n")]
        print("  conditions: " + "\n              ".join(lines))
    print(f"  permitted actions: {c.permitted_actions.value}")
    print(f"  attribute the provider: {_yes(c.provider_attribution)}")
    print(f"  notify affected parties: {_yes(c.affected_party_notifications)}")
    print(f"  pass on only unmodified: {_yes(c.unmodified_resale)}")
    print(f"  encrypt at rest: {_yes(c.encrypt_at_rest)}")
    onward = (
        "only with the originator's consent (the third-party rule)"
        if c.originator_control
        else "allowed within the caveats"
    )
    print(f"  onward sharing: {onward}")
    print(f"  source grading: {record.grading.code() if record.grading else 'none given'}")
    expiry = expires_at(record).isoformat(timespec="minutes")
    print(f"  retention: {c.retention_days} days, expires {expiry}")


def _release_id(text: str) -> bytes:
    if not _RELEASE_ID.fullmatch(text.lower()):
        raise InputError("ID: a release id is 32 hex digits")
    return bytes.fromhex(text)


def _act(args: argparse.Namespace, store: ReleaseStore, agency: str, now: datetime) -> None:
    if args.store_command == "list":
        items = store.list(now)
        if args.json:
            emit_json([_meta_json(m) for m in items])
            return
        print(f"{len(items)} release(s) stored")
        for m in items:
            late = "  EXPIRED" if m.expired else ""
            print(
                f"{m.release_id.hex()}  {m.category.value:<13} from {m.originator:<10}"
                f" our record {m.own_record_id or '-':<14}"
                f" expires {m.expires_at.isoformat(timespec='minutes')}{late}"
            )
    elif args.store_command == "read":
        release_id = _release_id(args.id)
        act = load_officer(args).sign_act(
            OfficerAction.READ, agency=agency, target=release_id, detail=args.purpose, now=now
        )
        record = store.read(release_id, act=act, now=now)
        meta = next((m for m in store.list(now) if m.release_id == record.release_id), None)
        doc = _record_json(record)
        if meta is not None:
            doc["own_record_id"] = meta.own_record_id
        doc["expires_at"] = expires_at(record).isoformat()
        if args.json:
            emit_json(doc)
            return
        _print_record(record, meta)
    elif args.store_command == "purge":
        count = store.purge(now)
        if args.json:
            emit_json({"purged": count})
        else:
            print(f"{count} record(s) purged")
    else:
        act = load_officer(args).sign_act(
            OfficerAction.EXPORT, agency=agency, target=EXPORT_TARGET, detail=args.purpose, now=now
        )
        records = store.export(act=act, now=now)
        # every character outside ASCII escaped, as emit_json writes it: the partner's text
        # reaches a terminal (standard output) as JSON, never as what it would do there
        text = json.dumps(to_stix_bundle(records), indent=2, sort_keys=True)
        if args.out is None:
            sys.stdout.write(text + "\n")
        else:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
            print(f"{len(records)} record(s) exported to {args.out}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    reads = args.store_command in ("read", "export")
    now = parse_read_time(args.now) if reads else parse_now(args.now)
    with _open(args, now) as (store, agency):
        _act(args, store, agency, now)
    return ExitCode.OK
