"""``xlink releases pending|waiting|approve|deny|reciprocity``: the outbound ledger, its
two-step release queue and a reciprocal MOU's counts (docs/release.md)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from xlink._workdir import workdir_lock
from xlink.cli._common import add_now_option, emit_json, parse_now
from xlink.cli._custody import (
    Custody,
    add_custody_options,
    add_officer_options,
    add_store_options,
    load_officer,
    open_custody,
    open_store,
)
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError
from xlink.identifiers import REASON_CODE_RULE
from xlink.officers import OfficerAction
from xlink.release import ApprovalQueue, QueueError, QueueItem, QueueState
from xlink.release.transfer import RECIPROCAL_AHEAD

__all__ = ["register", "run"]

QUEUE_FILE: Final = "queue.db"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "releases",
        help="list, approve or deny releases waiting for approval; list those not delivered",
        description="Work with the approval queue of a two-step (Prüm-style) release: when the "
        "MOU requires approval, each release waits here until an officer approves or denies "
        "it, and nothing is sent before. The follow-up deadline is the MOU's follow_up_hours "
        "after the hit. Approvals and denials are signed by an enrolled approver (--officer) "
        "and everything is audited in the workdir's audit.db, which must exist. Exit 0 on "
        "success, 3 for an unknown id, an item not pending or an unreadable file, 5 when the "
        "officer is refused (not enrolled, revoked, not an approver).",
    )
    actions = p.add_subparsers(dest="releases_command", metavar="ACTION", required=True)
    pending = actions.add_parser(
        "pending",
        help="list releases awaiting approval, with their deadlines",
        description="List releases awaiting approval, earliest deadline first. Each shows "
        "its queue id, category, the local record id, the follow-up deadline and OVERDUE "
        "when it has passed; each overdue item is audited once (RELEASE_OVERDUE).",
    )
    waiting = actions.add_parser(
        "waiting",
        help="list releases that may be sent but are not delivered yet",
        description="List, in queue order, the releases that are approved (or need no "
        "approval) and not delivered yet: APPROVED, never sent; TAKEN, built for an exchange "
        "and not receipted by the partner (held back because a reciprocal MOU's partner "
        "offered fewer, or sent and its receipt lost). A later exchange that decides the same "
        "record again, unchanged, sends it; one whose record changed or is no longer matched "
        "stays listed. Nothing is audited: the list changes nothing.",
    )
    approve = actions.add_parser(
        "approve",
        help="approve one release",
        description="Approve a pending release: the next exchange with the partner "
        "(`xlink serve` / `xlink match` on the same workdir) builds it for that session, signs, "
        "seals and sends it, and records it SENT once the partner's receipt verifies. Audited "
        "as RELEASE_APPROVED with the approver's key and signature.",
    )
    deny = actions.add_parser(
        "deny",
        help="deny one release",
        description="Deny a pending release: it is never sent. Audited as RELEASE_DENIED "
        "with the approver's key and signature.",
    )
    for action in (approve, deny):
        action.add_argument("id", metavar="ID", type=int, help="the queue id (see pending)")
        add_officer_options(action, "decides (an enrolled approver)")
    deny.add_argument(
        "--reason",
        required=True,
        metavar="CODE",
        help="why, as a code such as insufficient-grounds ([a-z][a-z0-9_.-]*)",
    )
    reciprocity = actions.add_parser(
        "reciprocity",
        help="show (or reset) what a reciprocal MOU counts toward the partner",
        description="Under an MOU with release.reciprocal, show what this agency counts "
        "toward the partner over every exchange since the last reset: records of ours given "
        "to it (each version of a record once, however often and for whichever pair sent "
        "again) and its releases that credited it (each once). New releases of ours go only "
        "while we are fewer than 8 ahead; those of a record version given before go freely. "
        "--reset sets both counts back to nothing (audited as RECIPROCITY_RESET), taking the "
        "workdir's lock: only when both "
        "sides show a window of 0 (exchanges cut short, their records then changed; one "
        "side's reset is enough), never when only ours is ahead, for that partner holds ours "
        "and gave none. The partner may then have up to 8 more of ours for nothing "
        "(docs/release.md).",
    )
    reciprocity.add_argument(
        "--reset", action="store_true", help="set the counts back to nothing (audited)"
    )
    add_store_options(reciprocity)
    for action in (pending, waiting, approve, deny, reciprocity):
        add_custody_options(action)
        add_now_option(action)
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(handler=run)


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[tuple[ApprovalQueue, Custody]]:
    path = Path(args.workdir) / QUEUE_FILE
    if not path.is_file():
        raise InputError(f"--workdir: {path} does not exist (no release was ever queued there)")
    with (
        open_custody(args) as custody,
        ApprovalQueue.open(path, audit=custody.audit, officers=custody.officers) as queue,
    ):
        yield queue, custody


def _reciprocity(
    args: argparse.Namespace, queue: ApprovalQueue, custody: Custody, now: datetime
) -> int:
    with open_store(args, custody, now) as store:
        mou = store.mou
        peer = mou.peer_of(custody.keys.agency_id).agency_id
        credited = store.credited(peer)
        if args.reset:
            with workdir_lock(Path(args.workdir)):  # no exchange runs meanwhile
                balance = queue.reset_reciprocity(
                    mou_id=mou.id, recipient=peer, credited=store.credited(peer), now=now
                )
        else:
            balance = queue.reciprocity(mou_id=mou.id, recipient=peer, credited=credited)
    if args.json:
        emit_json(
            {
                "peer": peer,
                "mou": mou.id,
                "reciprocal": mou.reciprocal,
                "given": balance.given,
                "credited": balance.credited,
                "ahead": balance.ahead,
                "window": balance.window,
                "reset": bool(args.reset),
            }
        )
        return ExitCode.OK
    head = "before the reset: " if args.reset else ""
    print(
        f"{head}{balance.given} record(s) of ours given to {peer}, {balance.credited} of its "
        f"credited; {balance.ahead} of ours ahead (at most {RECIPROCAL_AHEAD})"
    )
    if not mou.reciprocal:
        print("  the MOU is not reciprocal: nothing paces our releases")
    elif args.reset:
        print(f"  reset (audited): {peer} may have up to {RECIPROCAL_AHEAD} more of ours at once")
    elif balance.window == 0:
        print(f"  no new release of ours goes before {peer} gives more")
    else:
        print(f"  up to {balance.window} new release(s) of ours may go before {peer} gives more")
    return ExitCode.OK


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
    return f"{_head(item)} deadline {item.deadline.isoformat(timespec='minutes')}{late}"


def _head(item: QueueItem) -> str:
    return f"{item.item_id:>5}  {item.category:<13} {item.record_id:<20} -> {item.recipient:<10}"


#: How ``releases waiting`` names each state it lists.
_UNDELIVERED: Final = {
    QueueState.APPROVED: "approved, not sent yet",
    QueueState.TAKEN: "sent or held back, not receipted",
}


def _list(
    items: Sequence[QueueItem],
    as_json: bool,
    none: str,
    some: str,
    line: Callable[[QueueItem], str],
) -> None:
    if as_json:
        emit_json([_as_json(i) for i in items])
    elif not items:
        print(none)
    else:
        print(f"{len(items)} {some}:")
        for item in items:
            print(line(item))


def run(args: argparse.Namespace) -> int:
    now = parse_now(args.now)
    if args.releases_command == "deny" and not REASON_CODE_RULE.matches(args.reason):
        raise InputError(f"--reason: must be {REASON_CODE_RULE.description}")
    with _open(args) as (queue, custody):
        agency = custody.keys.agency_id
        try:
            if args.releases_command == "reciprocity":
                return _reciprocity(args, queue, custody, now)
            if args.releases_command == "pending":
                queue.audit_overdue(now)
                none, some = "no releases awaiting approval", "release(s) awaiting approval"
                _list(queue.pending(now), args.json, none, some, _line)
                return ExitCode.OK
            if args.releases_command == "waiting":
                none, some = "no release waiting to be delivered", "release(s) not delivered yet"
                _list(
                    queue.undelivered(now),
                    args.json,
                    none,
                    some,
                    lambda item: f"{_head(item)} {_UNDELIVERED[item.state]}",
                )
                return ExitCode.OK
            target = queue.item(args.id, now=now).release_id
            officer = load_officer(args)
            if args.releases_command == "approve":
                act = officer.sign_act(
                    OfficerAction.APPROVE, agency=agency, target=target, detail="", now=now
                )
                item = queue.approve(args.id, act=act, now=now)
            else:
                act = officer.sign_act(
                    OfficerAction.DENY, agency=agency, target=target, detail=args.reason, now=now
                )
                item = queue.deny(args.id, act=act, now=now)
        except QueueError as exc:
            raise InputError(str(exc)) from None
    if args.json:
        emit_json(_as_json(item))
    else:
        print(f"release {item.item_id} {item.state.value.lower()}")
    return ExitCode.OK
