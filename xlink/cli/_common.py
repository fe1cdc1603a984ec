"""Helpers shared by the CLI sub-commands: output in text or JSON, progress wiring."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from xlink.audit import AuditLog
from xlink.cli.progress import Progress
from xlink.crypto.keys import SigningKey
from xlink.errors import InputError

__all__ = [
    "add_audit_options",
    "add_now_option",
    "emit_json",
    "open_audit",
    "parse_now",
    "progress_reporter",
    "read_hex_key",
]

_HEX32 = re.compile(r"[0-9a-fA-F]{64}")


def emit_json(obj: object) -> None:
    """Print one JSON document on standard output (sorted keys, for diffable scripts)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def progress_reporter(enabled: bool) -> tuple[Callable[[str, int], None], Callable[[], None]]:
    """A ``(step, n)`` callback drawing one progress line per step, and a function closing it."""
    bars: dict[str, Progress] = {}

    def report(step: str, n: int) -> None:
        if not enabled:
            return
        if step not in bars:
            for bar in bars.values():
                bar.close()
            bars.clear()
            bars[step] = Progress(step)
        bars[step](n)

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return report, close


def add_now_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--now",
        metavar="ISO8601",
        help="the time to use instead of the clock (with a UTC offset)",
    )


def parse_now(text: str | None) -> datetime:
    """``--now`` as an aware datetime, or the clock's UTC time when not given."""
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("--now: not an ISO 8601 date and time") from None
    if when.tzinfo is None:
        raise InputError("--now: give a UTC offset (2026-03-01T12:00:00+00:00)")
    return when


def read_hex_key(path: str, option: str) -> bytes:
    """The 32 bytes held as 64 hex digits in the file ``path`` (named ``option`` in errors)."""
    try:
        raw = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise InputError(f"{option}: cannot read {path}") from None
    if not _HEX32.fullmatch(raw):
        raise InputError(f"{option}: {path} does not hold 64 hex digits")
    return bytes.fromhex(raw)


def add_audit_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--audit", metavar="PATH", help=help_text)
    parser.add_argument(
        "--audit-key",
        metavar="FILE",
        help="file holding the audit log's Ed25519 signing seed (64 hex digits)",
    )


@contextlib.contextmanager
def open_audit(args: argparse.Namespace) -> Iterator[AuditLog | None]:
    """The audit log named by ``--audit``/``--audit-key`` (which go together), or None."""
    audit_path = getattr(args, "audit", None)
    key_path = getattr(args, "audit_key", None)
    if (audit_path is None) != (key_path is None):
        raise InputError("--audit and --audit-key go together")
    if audit_path is None or key_path is None:
        yield None
        return
    key = SigningKey(read_hex_key(key_path, "--audit-key"))
    with AuditLog.open(audit_path, signing_key=key) as log:
        yield log
