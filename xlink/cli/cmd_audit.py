"""``xlink audit verify``: check that an audit log is intact (reference: docs/audit.md)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from xlink.audit import VerifyReport, verify_log
from xlink.cli._common import emit_json
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import load_public_bundle
from xlink.crypto.keys import VerifyKey
from xlink.errors import InputError

__all__ = ["parse_verify_key", "register", "run"]

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
        "checkpoint. Exit 0 when the log is intact; 7 when an entry was modified, deleted, "
        "inserted or reordered, a checkpoint was deleted or forged, or entries a checkpoint "
        "covers were truncated (the first bad entry is named); 3 when the file, key or "
        "bundle cannot be read. Entries after the last checkpoint are not signed yet: publish "
        "checkpoints to your partner to anchor them (see docs/audit.md).",
    )
    v.add_argument("path", metavar="PATH", help="the audit log (an SQLite file)")
    key = v.add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--key",
        metavar="HEX_OR_FILE",
        help="the agency's checkpoint verify key: 64 hex digits, or a file holding them",
    )
    key.add_argument(
        "--bundle",
        metavar="FILE",
        help="instead of --key: the agency's public bundle (public.json, from xlink keygen), "
        "whose verify key is the one its audit log is signed with",
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(handler=run)


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


def _summary(path: str, report: VerifyReport) -> str:
    if not report.ok:
        return f"audit log {path}: TAMPERED: {report.reason}"
    text = f"audit log {path}: intact, {report.entries} entries, {report.checkpoints} checkpoints"
    if report.covered < report.entries:
        text += (
            f"\n  entries {report.covered + 1}..{report.entries} follow the last checkpoint: "
            "not signed yet"
        )
    return text


def _bundle_key(path: str) -> VerifyKey:
    if not Path(path).is_file():
        raise InputError(f"--bundle: no such file: {path}")
    return load_public_bundle(path).verify_key


def run(args: argparse.Namespace) -> int:
    key = parse_verify_key(args.key) if args.bundle is None else _bundle_key(args.bundle)
    path = Path(args.path)
    if not path.is_file():
        raise InputError(f"{args.path}: no such audit log")
    report = verify_log(path, key)
    if args.json:
        emit_json(
            {
                "path": str(path),
                "ok": report.ok,
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "covered": report.covered,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "key_fingerprint": key.fingerprint(),
            }
        )
    else:
        print(_summary(args.path, report))
    return ExitCode.OK if report.ok else ExitCode.TAMPERED
