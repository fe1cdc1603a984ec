"""Helpers shared by the CLI sub-commands: output in text or JSON, progress wiring."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO, TypedDict

from xlink.cli.exitcodes import exit_code_for
from xlink.cli.progress import ProgressReporter
from xlink.crypto.keyfiles import AgencyKeys
from xlink.errors import (
    DecryptionError,
    InputError,
    LoadError,
    PeerRefused,
    PolicyDenied,
    ProtocolError,
    SchemaError,
    XlinkError,
)
from xlink.protocol.abort import AbortCode, escape_unprintable
from xlink.records.header_hints import unread_text
from xlink.records.validation import BadFieldPolicy

__all__ = [
    "add_agency_options",
    "add_input_options",
    "add_keys_option",
    "add_now_option",
    "add_psi_suite_option",
    "check_mappings",
    "emit_json",
    "error_lines",
    "load_keys",
    "parse_now",
    "phase_timings",
    "progress_reporter",
    "terminal_text",
]

_JOINERS = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner


def terminal_text(text: str) -> str:
    """``text`` that came from outside (a partner's release) as it may be printed on a
    terminal: a backslash doubled, then every control character (newline, escape, the C1
    controls), format character (a bidirectional override) and line separator written as its
    escape (``\\x0a``, ``\\x1b``, ``\\u202e``; the rule of abort details,
    :func:`~xlink.protocol.abort.escape_unprintable`), so that a value can neither add a line
    that reads as ours (a caveat an officer must obey) nor drive the terminal or reorder what
    it shows. The zero-width joiner and non-joiner are kept: they are part of how names are
    written in Persian, Arabic and the Indic scripts, and change no order."""
    return escape_unprintable(text.replace("\\", "\\\\"), keep=_JOINERS)


def error_lines(exc: BaseException) -> list[str]:
    """The message of ``exc`` as the lines to print: the lines xlink writes itself (a list of
    a document's problems, of a file's bad rows), each piece of text within them escaped whole
    (:func:`terminal_text`), so that what a piece quotes from outside (a member name of a
    partner's document, a hub's refusal) cannot start a line of its own, even with a newline."""
    if isinstance(exc, SchemaError):
        return [f"{len(exc.errors)} error(s):", *(f"  - {terminal_text(e)}" for e in exc.errors)]
    if isinstance(exc, LoadError):
        head = terminal_text(f"{exc.source}: {exc.reason}")
        return [head, *(f"  {terminal_text(str(e))}" for e in exc.errors)]
    if isinstance(exc, OSError):  # a file we were told to read or write: say which
        where = "" if exc.filename is None else f": {exc.filename}"
        return [terminal_text(f"{exc.strerror or exc}{where}")]
    if isinstance(exc, ProtocolError):  # a peer's detail is escaped already: not twice
        return [escape_unprintable(str(exc), keep=_JOINERS)]
    if isinstance(exc, PolicyDenied):  # what an officer's refusal asks of the user
        from xlink.officers import REFUSAL_HINTS

        hints = dict.fromkeys(REFUSAL_HINTS[r] for r in exc.reasons if r in REFUSAL_HINTS)
        return [terminal_text(str(exc)), *(f"  {hint}" for hint in hints)]
    return [terminal_text(str(exc))]


def write_port_file(path: str | Path | None, port: int) -> None:
    """Write the bound ``port`` to ``path`` (``--port-file``: for scripts that listen on port
    0), atomically: a reader sees the whole number or no file. Nothing when ``path`` is None."""
    if path:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(f"{port}\n", encoding="ascii")
        tmp.replace(path)


def withheld_line(withheld: int) -> str:
    """The summary line for records left out because the MOU does not list their category."""
    return f"  withheld {withheld} records: their category is not in the MOU"


def unread_line(unread: Sequence[tuple[str, str]]) -> str:
    """The summary line for columns of our files kept in the payload whose names usually hold
    a field (a file given without its mapping): their records matched without them."""
    return f"  {unread_text(unread)} (xlink prepare names the mapping entries that would read them)"


def emit_json(obj: object) -> None:
    """Print one JSON document on standard output (sorted keys, for diffable scripts)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def progress_reporter(
    enabled: bool,
    *,
    stream: TextIO | None = None,
    clock: Callable[[], float] | None = None,
) -> ProgressReporter:
    """The CLI's progress reporter (:class:`~xlink.cli.progress.ProgressReporter`), drawing on
    standard error when ``enabled`` and timing the phases either way: call it as a
    :class:`~xlink.progress.ProgressFn`, then ``close()``; ``timings()`` gives each phase's
    seconds for ``"phases"`` in ``--json``. It also unpacks as ``report, close``."""
    if clock is None:
        return ProgressReporter(enabled=enabled, stream=stream)
    return ProgressReporter(enabled=enabled, stream=stream, clock=clock)


def phase_timings(reporter: ProgressReporter) -> dict[str, float]:
    """``reporter.timings()`` rounded to milliseconds, for ``"phases"`` in ``--json`` output."""
    return {phase: round(seconds, 3) for phase, seconds in reporter.timings().items()}


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


def add_keys_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--keys DIR`` (a key directory written by ``xlink keygen``) and the passphrase
    options (``--passphrase-env|-file|-fd``)."""
    from xlink.cli.cmd_keygen import add_passphrase_option  # cmd_keygen imports this module

    parser.add_argument("--keys", metavar="DIR", help=help_text)
    add_passphrase_option(parser)


def load_keys(args: argparse.Namespace) -> AgencyKeys | None:
    """The key directory named by ``--keys``, decrypted with the passphrase of the passphrase
    options (or a prompt), or None when ``--keys`` is not given."""
    from xlink.cli.cmd_keygen import passphrase_source, read_passphrase  # imports this module

    directory = getattr(args, "keys", None)
    if directory is None:
        return None
    if not Path(directory).is_dir():
        raise InputError(f"--keys: {directory} is not a key directory")
    passphrase = read_passphrase(args, confirm=False)
    try:
        return AgencyKeys.load(directory, passphrase)
    except DecryptionError:
        raise InputError(
            f"--keys: cannot decrypt the keys in {directory} (wrong passphrase in "
            f"{passphrase_source(args)}, or a damaged key file)"
        ) from None


def add_input_options(parser: argparse.ArgumentParser, files_help: str) -> None:
    """An agency's input files and how to read them: ``FILE...``, ``--mapping`` (once per
    file), ``--date-order`` and ``--bad-field`` (``prepare``, ``serve``, ``match``, ``check``,
    ``query serve|manifest``, ``hub agent|ask``)."""
    parser.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    parser.add_argument(
        "--mapping",
        action="append",
        metavar="PATH",
        help="column mapping (.json/.toml), once per FILE in order; "
        "default: FILE's stem + .mapping.json next to it, if present",
    )
    parser.add_argument(
        "--date-order",
        choices=("DMY", "MDY", "YMD", "unknown"),
        help="how slash dates are written (overrides the mapping)",
    )
    parser.add_argument(
        "--bad-field",
        choices=tuple(p.value for p in BadFieldPolicy),
        default=BadFieldPolicy.DROP_FIELD.value,
        help="a bad value in a field a record may lack (a date of birth, a document...): "
        "drop-field leaves it out and keeps the record (listed in FILE's .field-errors.csv), "
        "reject-row rejects the row (default: %(default)s)",
    )


class InputReading(TypedDict):
    """How :func:`~xlink.prepare.prepare_side` reads the files :func:`add_input_options`
    names: the keyword arguments its options give, and today's date (the load's clock)."""

    mappings: list[str] | None
    date_order: str | None
    bad_field: str
    today: date


def input_reading(args: argparse.Namespace) -> InputReading:
    """The :class:`InputReading` of a command's :func:`add_input_options` options, read today
    (this machine's clock, in UTC)."""
    return InputReading(
        mappings=args.mapping,
        date_order=args.date_order,
        bad_field=args.bad_field,
        today=datetime.now(UTC).date(),
    )


def check_mappings(args: argparse.Namespace) -> None:
    """Refuse ``--mapping`` given, but not once per FILE (:func:`add_input_options`)."""
    if args.mapping is not None and len(args.mapping) != len(args.files):
        raise InputError("give --mapping once per FILE, or not at all")


def add_psi_suite_option(parser: argparse.ArgumentParser) -> None:
    """``--psi-suite ID``: the PSI ciphersuite an agency proposes (``args.psi_suite``)."""
    from xlink.crypto.suite import DEFAULT_SUITE, SUITES

    parser.add_argument(
        "--psi-suite",
        type=int,
        choices=[s.suite_id for s in SUITES],
        default=DEFAULT_SUITE.suite_id,
        metavar="ID",
        help=f"PSI ciphersuite to propose: {DEFAULT_SUITE.suite_id} (default) or 1, for a "
        "partner whose xlink speaks only suite 1; both sides must choose the same",
    )


def add_agency_options(parser: argparse.ArgumentParser) -> None:
    """What opens one agency's side under its MOU and reaches the partner: ``--agency``,
    ``--keys``, ``--mou``, ``--peer-bundle``, ``--workdir``, ``--timeout``, ``--json`` and
    ``--passphrase-env`` (``serve``, ``match``, ``query serve|ask|manifest``)."""
    from xlink.cli.cmd_keygen import add_passphrase_option, agency_id  # imports this module

    parser.add_argument("--agency", required=True, type=agency_id, metavar="ID", help="this agency")
    parser.add_argument("--keys", required=True, metavar="DIR", help="this agency's key directory")
    parser.add_argument("--mou", required=True, metavar="FILE", help="the MOU both agencies signed")
    parser.add_argument(
        "--peer-bundle",
        required=True,
        metavar="FILE",
        help="the other agency's public.json (its TLS certificate; the MOU pins it)",
    )
    parser.add_argument(
        "--workdir",
        required=True,
        metavar="DIR",
        help="where the audit log, release store, outbound ledger (approval queue), matches "
        "files, query tables and rejects go",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for the peer to connect or answer (default 60)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary on standard output; a failed run prints one JSON object "
        '{"ok": false, "exit_code": N, "error": {...}} instead',
    )
    add_passphrase_option(parser)


def failure_json(error: BaseException) -> dict[str, object]:
    """The ``--json`` document of a failed run: ``ok`` false, the exit code, and the error's
    type, abort code (``MOU_MISMATCH``... or null), machine-readable reason (a peer refusal's,
    the first of a policy refusal's, or null), every reason of a policy refusal
    (``reasons``, empty otherwise) and detail: xlink's own message, which names no key
    material, identity or certificate content; ``interrupted`` for Ctrl-C; for a bug, no
    message at all."""
    code = getattr(error, "code", None)
    reason: str | None = None
    reasons: list[str] = []
    if isinstance(error, PeerRefused):
        reason = error.reason.value
    elif isinstance(error, PolicyDenied) and error.reasons:
        reason, reasons = error.reasons[0], list(error.reasons)
    if isinstance(error, XlinkError):
        detail = str(error)
    elif isinstance(error, KeyboardInterrupt):
        detail = "interrupted"
    elif isinstance(error, OSError):
        detail = f"{error.strerror or error}: {error.filename}"
    else:
        detail = "internal error (a bug)"
    return {
        "ok": False,
        "exit_code": int(exit_code_for(error)),
        "error": {
            "type": type(error).__name__,
            "code": code.name if isinstance(code, AbortCode) else None,
            "reason": reason,
            "reasons": reasons,
            "detail": detail,
        },
    }
