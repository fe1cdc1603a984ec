"""``xlink audit verify`` and ``xlink audit export-checkpoints``: check that an audit log is
intact, against its audit key and the checkpoints the partner holds (reference: docs/audit.md).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from pathlib import Path
from typing import Any

from xlink._files import written_whole
from xlink.audit import (
    AuditLog,
    CheckpointsFile,
    VerifyReport,
    dump_checkpoints,
    load_checkpoints,
    verify_log,
)
from xlink.cli._common import emit_json
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keys import VerifyKey
from xlink.documents import MAX_DOCUMENT_BYTES, read_document
from xlink.errors import InputError
from xlink.identifiers import check_agency_id

__all__ = ["parse_verify_key", "register", "run", "run_export"]

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="verify a tamper-evident audit log",
        description="Work with xlink's hash-chained, checkpoint-signed audit logs.",
    )
    actions = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = actions.add_parser(
        "verify",
        help="check that an audit log is intact",
        description="Recompute the hash chain of an audit log and check every signed "
        "checkpoint with the agency's audit key. Exit 0 when the log is intact; 7 when an "
        "entry was modified, deleted, inserted or reordered, a checkpoint was deleted or "
        "forged, or entries a checkpoint covers were truncated (the first bad entry is "
        "named); 3 when the file, key or checkpoints file cannot be read. Whoever holds the "
        "audit key can rewrite a log and sign it again: --partner-checkpoints checks it "
        "against the checkpoints the partner kept from its receipts (made by the partner "
        "with 'xlink audit export-checkpoints'), which catches that, truncation and a "
        "replaced log (see docs/audit.md).",
    )
    v.add_argument("path", metavar="PATH", help="the audit log (an SQLite file)")
    key = v.add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--keys",
        metavar="DIR",
        help="the agency's key directory: its audit verify key, from audit-key.json "
        "(endorsed by the agency's signing key)",
    )
    key.add_argument(
        "--key",
        metavar="HEX_OR_FILE",
        help="the agency's audit verify key: 64 hex digits, or a file holding them",
    )
    key.add_argument("--bundle", metavar="FILE", help=argparse.SUPPRESS)  # removed: see run
    v.add_argument(
        "--partner-checkpoints",
        metavar="FILE",
        help="the checkpoints of this log that the partner kept (its 'xlink audit "
        "export-checkpoints --peer OUR-AGENCY'): each must verify with the audit key and "
        "match the log",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(handler=run)

    e = actions.add_parser(
        "export-checkpoints",
        help="write the partner's audit checkpoints we kept, for its auditor",
        description="Write, as JSON, every checkpoint of PEER's audit log that came to us in "
        "PEER's receipts and was kept in our audit log. Each carries PEER's audit key and "
        "signature, so the file can be carried by anyone: PEER's auditor checks PEER's log "
        "against it with 'xlink audit verify --partner-checkpoints'.",
    )
    e.add_argument("--workdir", required=True, metavar="DIR", help="our agency's workdir")
    e.add_argument("--peer", required=True, metavar="AGENCY", help="the partner's agency id")
    e.add_argument("--out", required=True, metavar="FILE", help="the file to write (new)")
    e.set_defaults(handler=run_export)


def parse_verify_key(text: str) -> VerifyKey:
    """A verify key from 64 hex digits or from a file holding them; ``InputError`` otherwise."""
    if _HEX_KEY.fullmatch(text):
        raw = text
    else:
        try:
            raw = Path(text).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise InputError(f"--key: not 64 hex digits and no such file: {text}") from None
        except (OSError, UnicodeDecodeError):
            raise InputError(f"--key: cannot read the key file {text}") from None
        if not _HEX_KEY.fullmatch(raw):
            raise InputError(f"--key: the file {text} does not hold 64 hex digits")
    try:
        return VerifyKey(bytes.fromhex(raw))
    except ValueError:
        raise InputError("--key: not a valid Ed25519 public key") from None


def _verify_key(args: argparse.Namespace) -> VerifyKey:
    if args.bundle is not None:
        raise InputError(
            "--bundle: a public bundle's key signs the agency's releases and receipts, not its "
            "audit log, which has its own audit key: give --keys DIR (the key directory's "
            "audit-key.json) or --key HEX"
        )
    if args.keys is not None:
        from xlink.crypto.keyfiles import load_audit_verify_key

        if not Path(args.keys).is_dir():
            raise InputError(f"--keys: no such key directory: {args.keys}")
        return load_audit_verify_key(args.keys)
    return parse_verify_key(args.key)


def _partner_checkpoints(path: str) -> CheckpointsFile:
    try:  # bounded, and a FIFO or a device in the file's place is refused, not read or waited on
        data = read_document(path)
    except FileNotFoundError:
        raise InputError(f"--partner-checkpoints: no such file: {path}") from None
    except OSError as exc:
        reason = f": {exc.strerror}" if exc.strerror else ""
        raise InputError(f"--partner-checkpoints: cannot read {path}{reason}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"--partner-checkpoints: {path} is larger than 1 MiB")
    try:
        return load_checkpoints(data)
    except InputError as exc:
        raise InputError(f"--partner-checkpoints: {path}: {exc}") from None


def _summary(path: str, report: VerifyReport, anchors: CheckpointsFile | None) -> str:
    if not report.ok:
        return f"audit log {path}: TAMPERED: {report.reason}"
    text = f"audit log {path}: intact, {report.entries} entries, {report.checkpoints} checkpoints"
    if anchors is not None:
        count = len(anchors.checkpoints)
        text += f"\n  matches the {count} checkpoints {anchors.agency}'s partner kept"
        if count:
            text += f" (up to entry {report.anchored})"
    if report.covered < report.entries:
        text += (
            f"\n  entries {report.covered + 1}..{report.entries} follow the last checkpoint: "
            "not signed yet"
        )
    if anchors is not None and report.anchored < report.entries:
        text += (
            f"\n  entries {report.anchored + 1}..{report.entries} follow the partner's last "
            "checkpoint: whoever holds the audit key could still rewrite them"
        )
    return text


def run(args: argparse.Namespace) -> int:
    key = _verify_key(args)
    path = Path(args.path)
    if not path.is_file():
        raise InputError(f"{args.path}: no such audit log")
    anchors = None
    if args.partner_checkpoints is not None:
        anchors = _partner_checkpoints(args.partner_checkpoints)
    given = () if anchors is None else anchors.checkpoints
    report = verify_log(path, key, partner_checkpoints=given)
    if args.json:
        emit_json(
            {
                "path": str(path),
                "ok": report.ok,
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "covered": report.covered,
                "partner_checkpoints": len(given),
                "anchored": report.anchored,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "key_fingerprint": key.fingerprint(),
            }
        )
    else:
        print(_summary(args.path, report, anchors))
    return ExitCode.OK if report.ok else ExitCode.TAMPERED


def run_export(args: argparse.Namespace) -> int:
    peer = check_agency_id(args.peer, what="--peer")
    log_path = Path(args.workdir) / "audit.db"
    if not log_path.is_file():
        raise InputError(f"--workdir: no audit log in {args.workdir}")
    out = Path(args.out)
    if out.exists() or out.is_symlink():
        raise InputError(f"--out: {out} already exists; refusing to overwrite it")
    try:
        with AuditLog.open(log_path, signing_key=None) as log:
            held = log.partner_checkpoints(peer)
    except (sqlite3.Error, ValueError):
        raise InputError(f"--workdir: {log_path} is not a readable audit log") from None
    text = dump_checkpoints(peer, held)
    try:
        with written_whole(out, encoding="ascii", overwrite=False) as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(f"--out: cannot write {out}: {exc.strerror}") from None
    print(f"{len(held)} checkpoints of {peer}'s audit log written to {out}")
    return ExitCode.OK
