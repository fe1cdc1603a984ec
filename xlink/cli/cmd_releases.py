"""``xlink releases pending|approve|deny``: the two-step release queue (docs/release.md)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xlink.cli._common import (
    add_audit_options,
    add_keys_option,
    add_now_option,
    check_audit_options,
    emit_json,
    load_keys,
    open_audit,
    parse_now,
)
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError
from xlink.release import ApprovalQueue, QueueError, QueueItem

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "releases",
        help="list, approve or deny releases waiting for approval",
        description="Work with the approval queue of a two-step (Prüm-style) release: when the "
        "MOU requires approval, each release waits here until an officer approves or denies "
        "it, and nothing is sent before. The follow-up deadline is the MOU's follow_up_hours "
        "after the hit. Exit 0 on success, 3 for an unknown id, an item not pending or an "
        "unreadable file.",
    )
    actions = p.add_subparsers(dest="releases_command", metavar="ACTION", required=True)
    pending = actions.add_parser(
        "pending",
        help="list releases awaiting approval, with their deadlines",
        description="List releases awaiting approval, earliest deadline first. Each shows "
        "its queue id, category, the local record id, the follow-up deadline and OVERDUE "
        "when it has passed; with --audit, each overdue item is audited once "
        "(RELEASE_OVERDUE).",
    )
    approve = actions.add_parser(
        "approve",
        help="approve one release",
        description="Approve a pending release: the next exchange with the partner "
        "(`xlink serve` / `xlink match` on the same workdir) builds it for that session, signs, "
        "seals and sends it, and records it SENT once the partner's receipt verifies. Audited "
        "as RELEASE_APPROVED when --audit is given.",
    )
    deny = actions.add_parser(
        "deny",
        help="deny one release",
        description="Deny a pending release: it is never sent. Audited as RELEASE_DENIED "
        "when --audit is given.",
    )
    for action in (approve, deny):
        action.add_argument("id", metavar="ID", type=int, help="the queue id (see pending)")
        action.add_argument(
            "--approver",
            required=True,
            metavar="FINGERPRINT",
            help="the approving officer's key fingerprint (32 hex digits)",
        )
        add_audit_options(action, "append the decision to this audit log")
        add_keys_option(
            action,
            "this agency's key directory (from xlink keygen): its signing key signs the "
            "--audit log (instead of --audit-key)",
        )
    deny.add_argument(
        "--reason",
        required=True,
        metavar="CODE",
        help="why, as a code such as insufficient-grounds ([a-z][a-z0-9_.-]*)",
    )
    for action in (pending, approve, deny):
        action.add_argument("--queue", required=True, metavar="PATH", help="the queue file")
        add_now_option(action)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(handler=run)


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[ApprovalQueue]:
    path = Path(args.queue)
    if not path.is_file():
        raise InputError(f"{args.queue}: no such queue file")
    check_audit_options(args)
    if getattr(args, "keys", None) is not None and args.audit is None:
        raise InputError("--keys: only signs the audit log here; give --audit PATH too")
    keys = load_keys(args)
    with open_audit(args, keys) as audit, ApprovalQueue.open(path, audit=audit) as queue:
        yield queue


def _as_json(item: QueueItem) -> dict[str, object]:
    return {
        "id": item.item_id,
        "release_id": item.release_id.hex(),
        "session_id": item.session_id.hex(),
        "record_id": item.record_id,
        "category": item.category,
        "recipient": item.recipient,
        "queued_at": item.queued_at.isoformat(),
        "deadline": item.deadline.isoformat(),
        "overdue": item.overdue,
        "state": item.state.value,
        "approver": item.approver,
        "reason": item.reason,
    }


def _line(item: QueueItem) -> str:
    late = "  OVERDUE" if item.overdue else ""
    return (
        f"{item.item_id:>5}  {item.category:<13} {item.record_id:<20} -> {item.recipient:<10}"
        f" deadline {item.deadline.isoformat(timespec='minutes')}{late}"
    )


def run(args: argparse.Namespace) -> int:
    now = parse_now(args.now)
    with _open(args) as queue:
        try:
            if args.releases_command == "pending":
                queue.audit_overdue(now)
                items = queue.pending(now)
                if args.json:
                    emit_json([_as_json(i) for i in items])
                elif not items:
                    print("no releases awaiting approval")
                else:
                    print(f"{len(items)} release(s) awaiting approval:")
                    for item in items:
                        print(_line(item))
                return ExitCode.OK
            if args.releases_command == "approve":
                item = queue.approve(args.id, args.approver, now=now)
            else:
                item = queue.deny(args.id, args.approver, args.reason, now=now)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        except QueueError as exc:
            raise InputError(str(exc)) from None
    if args.json:
        emit_json(_as_json(item))
    else:
        print(f"release {item.item_id} {item.state.value.lower()}")
    return ExitCode.OK
