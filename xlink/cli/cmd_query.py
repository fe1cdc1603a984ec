"""``xlink query serve|ask|manifest``: the real-time query mode (docs/query.md).

The holder serves its list (``serve``: the month's OPRF table built or brought up to date,
then every pinned connection of the partner answered until SIGTERM or Ctrl-C); the asker asks
about one traveller (``ask``, from flags or one JSON object) or a manifest file (``manifest``),
and stores the releases of its decided matches as the batch exchange does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.agency import Agency, QueryServed
from xlink.cli._common import (
    add_agency_options,
    add_input_options,
    check_mappings,
    emit_json,
    failure_json,
    phase_timings,
    progress_reporter,
    withheld_line,
    write_port_file,
)
from xlink.cli._query_output import outcome_json, print_ask, print_manifest, served_line
from xlink.cli.cmd_keygen import read_passphrase
from xlink.cli.cmd_serve import run_cancellable
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.rand import system_random
from xlink.errors import FieldError, InputError, NothingLoaded
from xlink.prepare import PreparedSide, StrPath
from xlink.records.validation import CANONICAL_FIELDS, NAME_PSEUDO_FIELD, BadFieldPolicy

__all__ = ["register"]

EXIT_CODES_HELP = (
    "Exit codes: 0 done, 2 bad command line (a traveller flag the loaders refuse), 3 unusable "
    "keys, passphrase, MOU, bundle or input file, 4 session aborted (QUOTA_EXHAUSTED when the "
    "MOU's daily quota is used up) or peer refused, 5 MOU refused, 130 interrupted."
)

#: The traveller flags of ``xlink query ask`` and the canonical field each fills.
TRAVELLER_FLAGS: dict[str, str] = {
    "family": "family_name",
    "given": "given_name",
    "dob": "birth_date",
    "sex": "sex",
    "document": "doc_number",
    "nationality": "nationalities",
}
DEFAULT_TRAVELLER_ID = "traveller-1"
_TRAVELLER_FILE = "query-traveller.jsonl"  # its rejects file: WORKDIR/rejects/query-traveller...


class _TravellerUsageError(InputError):
    """A traveller given on the command line that the loaders refuse: a usage error (exit 2)."""


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("expected a port number 0..65535")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a whole number >= 1")
    return int(text)


def _add_holder_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", required=True, help="the holder's `xlink query serve` host")
    p.add_argument("--port", required=True, type=_port, help="its port")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "query",
        help="real-time queries: serve a list, ask about a traveller or a manifest",
        description="The real-time query mode (docs/query.md): the holder serves its list "
        "(`serve`); the partner asks about one traveller (`ask`) or a manifest (`manifest`) "
        "as they come, over mutual TLS 1.3 pinned by the MOU. The holder learns how many "
        "OPRF evaluations were asked and which of its records' releases, never the travellers "
        "without a hit; every evaluation counts against the MOU's query_quota_per_day. "
        + EXIT_CODES_HELP,
    )
    actions = p.add_subparsers(dest="query_command", metavar="ACTION", required=True)

    serve = actions.add_parser(
        "serve",
        help="serve this agency's list to the partner's queries",
        description="Prepare FILE... (this agency's list), build the month's query table or "
        "bring the cached one in WORKDIR/query/ up to date, print its summary and 'listening "
        "on HOST:PORT', then answer every connection of the partner the MOU pins, until "
        "SIGTERM or Ctrl-C (exit 130) or --max-connections. " + EXIT_CODES_HELP,
    )
    add_input_options(serve, "this agency's list (CSV or JSON Lines): the records asked about")
    add_agency_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=0, help="port to listen on (default 0: any free port)"
    )
    serve.add_argument(
        "--port-file",
        metavar="FILE",
        help="write the bound port to this file once listening (for scripts with port 0)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive,
        metavar="N",
        help="stop after serving N connections (default: serve until stopped)",
    )
    serve.set_defaults(handler=run_serve)

    ask = actions.add_parser(
        "ask",
        help="ask the partner's query server about one traveller",
        description="Ask the holder's `xlink query serve` about one traveller, given with "
        "--family, --given, --dob, --sex, --document, --nationality (and --id) or as one JSON "
        "object with canonical field names (--traveller). The traveller is validated by the "
        "loaders as a one-line JSON Lines file; a field they refuse is a usage error (exit 2) "
        "naming the flag and the field. Prints 'no match', or the match and what the holder "
        "did with its release (released and stored, pending approval, denied, delivered "
        "before). " + EXIT_CODES_HELP,
    )
    add_agency_options(ask)
    _add_holder_address(ask)
    fields = ask.add_argument_group("the traveller")
    fields.add_argument("--family", metavar="NAME", help="family name (surname)")
    fields.add_argument("--given", metavar="NAMES", help="given name(s)")
    fields.add_argument(
        "--dob", metavar="DATE", help="date of birth: YYYY-MM-DD (or YYYY-MM, YYYY)"
    )
    fields.add_argument("--sex", metavar="F|M|X", help="sex marker")
    fields.add_argument("--document", metavar="NUMBER", help="passport or ID document number")
    fields.add_argument("--nationality", metavar="CODE", help="nationality (ISO 3166 alpha-3)")
    fields.add_argument(
        "--id",
        metavar="ID",
        help=f"this traveller's id in the answer and the store (default {DEFAULT_TRAVELLER_ID})",
    )
    fields.add_argument(
        "--traveller",
        metavar="JSON",
        help='instead of the flags: one JSON object, canonical field names ({"family_name": '
        '"...", "given_name": "...", "birth_date": "YYYY-MM-DD", "documents": [...], ...})',
    )
    ask.set_defaults(handler=run_ask)

    manifest = actions.add_parser(
        "manifest",
        help="ask the partner's query server about a manifest of travellers",
        description="Ask the holder's `xlink query serve` about every traveller of FILE (CSV "
        "or JSON Lines, prepared as `xlink prepare` does; rejected rows go to WORKDIR/rejects/). "
        "Prints a summary (travellers, matched, released, pending, time) and one line per "
        "matched traveller. " + EXIT_CODES_HELP,
    )
    add_input_options(manifest, "the manifest: the travellers to ask about (CSV or JSON Lines)")
    add_agency_options(manifest)
    _add_holder_address(manifest)
    manifest.set_defaults(handler=run_manifest)


# -- running ---------------------------------------------------------------------------------


def _reporting_failures(args: argparse.Namespace, command: Callable[[], int]) -> int:
    """Run ``command``; a traveller the loaders refuse is a usage error (exit 2, said on
    standard error; with ``--json``, :func:`~xlink.cli._common.failure_json` with that exit
    code). Any other failure goes on to ``xlink.cli.main``, which prints its JSON document
    unless the command printed one already (``args.printed``)."""
    try:
        return command()
    except _TravellerUsageError as exc:
        if args.json:
            emit_json({**failure_json(exc), "exit_code": int(ExitCode.USAGE)})
        print(f"xlink query ask: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE


def _read_passphrase(args: argparse.Namespace) -> bytes:
    if args.timeout <= 0:
        raise InputError("--timeout must be > 0")
    return read_passphrase(args, confirm=False)


def _open(args: argparse.Namespace, passphrase: bytes) -> Agency:
    return Agency.open(
        args.workdir,
        agency=args.agency,
        keys_dir=args.keys,
        passphrase=passphrase,
        mou_path=args.mou,
        peer_bundle_path=args.peer_bundle,
        clock=lambda: datetime.now(UTC),
        rng=system_random,
    )


def run_serve(args: argparse.Namespace) -> int:
    def command() -> int:
        check_mappings(args)
        return run_cancellable(_serve(args, _read_passphrase(args)))

    return _reporting_failures(args, command)


async def _serve(args: argparse.Namespace, passphrase: bytes) -> int:
    report = progress_reporter(True)
    with _open(args, passphrase) as me:
        try:
            side = me.prepare(
                args.files,
                mappings=args.mapping,
                date_order=args.date_order,
                bad_field=args.bad_field,
                progress=report,
                psi=False,
            )
            started = time.perf_counter()
            # The table is built (or brought up to date) and saved here, for its summary;
            # serve_queries makes its own service from the saved table, unchanged.
            service = me.query_service(side, progress=report)
            seconds = time.perf_counter() - started
        finally:
            report.close()
        table = service.table
        summary: dict[str, object] = {
            "agency": me.agency_id,
            "peer": me.peer_id,
            "mou_id": me.mou.id,
            "records": side.loaded,
            "rejected": side.rejected,
            "withheld": service.side.withheld,
            "table": {
                "records": table.records,
                "entries": table.entries,
                "version": table.version,
                "period": service.period,
                "seconds": round(seconds, 3),
            },
            "quota_per_day": service.quota,
            "quota_left_today": service.quota_left(),
        }

        def listening(port: int) -> None:
            if args.json:
                emit_json(
                    {**summary, "host": args.host, "port": port, "phases": phase_timings(report)}
                )
                args.printed = True
            else:
                print(
                    f"{me.agency_id} query table for {me.peer_id} (MOU {me.mou.id}, period "
                    f"{service.period}): {table.records} records, {table.entries} entries, "
                    f"version {table.version}, ready in {seconds:.1f} s"
                )
                if side.rejected:
                    print(f"  rejected rows {side.rejected} (see {me.workdir / 'rejects'})")
                if service.side.withheld:
                    print(withheld_line(service.side.withheld))
                print(
                    f"  quota {service.quota} OPRF evaluations per UTC day, "
                    f"{service.quota_left()} left today"
                )
                print(f"listening on {args.host}:{port}")
            sys.stdout.flush()
            write_port_file(args.port_file, port)

        def answered(served: QueryServed) -> None:
            if not args.json:
                print(served_line(served, me.clock()), flush=True)

        served = await me.serve_queries(
            side,
            args.host,
            args.port,
            max_connections=args.max_connections,
            idle_timeout=args.timeout,
            on_listening=listening,
            on_served=answered,
        )
    if not args.json:
        print(f"served {served} connection(s)")
    return ExitCode.OK


def run_ask(args: argparse.Namespace) -> int:
    def command() -> int:
        record, source = _traveller(args)  # usage errors before any passphrase is asked for
        passphrase = _read_passphrase(args)
        with tempfile.TemporaryDirectory(prefix="xlink-query-") as tmp:
            path = Path(tmp) / _TRAVELLER_FILE
            path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
            return run_cancellable(
                _ask(args, passphrase, [path], None, None, BadFieldPolicy.REJECT_ROW, source)
            )

    return _reporting_failures(args, command)


def run_manifest(args: argparse.Namespace) -> int:
    def command() -> int:
        check_mappings(args)
        passphrase = _read_passphrase(args)
        return run_cancellable(
            _ask(args, passphrase, args.files, args.mapping, args.date_order, args.bad_field, None)
        )

    return _reporting_failures(args, command)


async def _ask(
    args: argparse.Namespace,
    passphrase: bytes,
    files: Sequence[StrPath],
    mappings: Sequence[StrPath | None] | None,
    date_order: str | None,
    bad_field: BadFieldPolicy | str,
    traveller_source: dict[str, str] | None,
) -> int:
    """``traveller_source``: for ``ask``, which flag gave each canonical field (``ask``
    passes ``REJECT_ROW``: a bad field it was given is a usage error, not a field left out)."""
    single = traveller_source is not None
    report = progress_reporter(not single)
    start = time.perf_counter()
    with _open(args, passphrase) as me:
        try:
            try:
                side = me.prepare(
                    files,
                    mappings=mappings,
                    date_order=date_order,
                    bad_field=bad_field,
                    progress=report,
                    psi=False,
                )
            except NothingLoaded as refused:
                if not single:
                    raise
                _refuse_single(refused.errors, refused.rejects_path, traveller_source or {})
                raise  # a reject without a reason: not made by the loaders
            if single:
                _check_single(side, traveller_source or {})
            outcome = await me.ask(
                side,
                args.host,
                args.port,
                timeout=args.timeout,
                idle_timeout=args.timeout,
                progress=report,
            )
        finally:
            report.close()
        mou_id = me.mou.id
    wall = time.perf_counter() - start
    if args.json:
        emit_json(
            {
                **outcome_json(outcome, mou_id, side, every_answer=single),
                "phases": {**phase_timings(report), **outcome.phases},
                "wall_s": round(wall, 2),
                "ok": True,
                "exit_code": int(ExitCode.OK),
            }
        )
    elif single:
        print_ask(outcome, wall)
    else:
        print_manifest(outcome, mou_id, side, files, wall)
    return ExitCode.OK


# -- the traveller of ``ask`` -----------------------------------------------------------------


def _traveller(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, str]]:
    """The traveller as one JSON Lines object (canonical field names), and for each field the
    option that gave it (for the error messages). :class:`_TravellerUsageError` for a JSON
    that is not an object of canonical fields, or flags mixed with ``--traveller``."""
    flags = {name: getattr(args, name) for name in TRAVELLER_FLAGS}
    given = {name: value for name, value in flags.items() if value is not None}
    record: dict[str, object]
    if args.traveller is not None:
        if given:
            raise _TravellerUsageError(
                "--traveller: give the traveller as JSON or with flags, not both "
                f"(also given: {', '.join('--' + n for n in given)})"
            )
        try:
            parsed = json.loads(args.traveller)
        except json.JSONDecodeError as exc:
            raise _TravellerUsageError(
                f"--traveller: not JSON (column {exc.colno}): {exc.msg}"
            ) from None
        if not isinstance(parsed, dict):
            raise _TravellerUsageError("--traveller: not a JSON object")
        unknown = sorted(set(parsed) - set(CANONICAL_FIELDS) - {"documents"})
        if unknown:
            raise _TravellerUsageError(
                f"--traveller: unknown field(s) {', '.join(map(repr, unknown))}; the canonical "
                f"names are {', '.join(CANONICAL_FIELDS)} and documents"
            )
        record = dict(parsed)
        source = {field: "--traveller" for field in (*CANONICAL_FIELDS, NAME_PSEUDO_FIELD)}
        source["documents"] = "--traveller"
        if "record_id" not in record:
            record["record_id"] = args.id or DEFAULT_TRAVELLER_ID
            source["record_id"] = "--id"
    else:
        if not given:
            raise _TravellerUsageError(
                "no traveller: give --family, --given, --dob, --sex, --document, "
                "--nationality, or --traveller JSON"
            )
        record = {"record_id": args.id or DEFAULT_TRAVELLER_ID}
        record.update({TRAVELLER_FLAGS[name]: value for name, value in given.items()})
        source = {field: f"--{name}" for name, field in TRAVELLER_FLAGS.items()}
        source["record_id"] = "--id"
        source[NAME_PSEUDO_FIELD] = "--family/--given"
    record.setdefault("category", "traveller")
    source.setdefault("category", "--traveller")
    return record, source


def _check_single(side: PreparedSide, source: dict[str, str]) -> None:
    """The loaders' verdict on the one traveller, loaded with bad fields left out: every field
    error (:func:`_refuse_single`); and a traveller no key can match is refused too."""
    for load in side.loads:
        _refuse_single(load.field_errors, load.field_errors_path, source)
    if side.untokenised:
        raise _TravellerUsageError(
            "this traveller derives no match token (too few fields to match on anything): "
            "give the names and the date of birth, or a document number"
        )


def _refuse_single(
    errors: Sequence[FieldError], written: StrPath | None, source: dict[str, str]
) -> None:
    """A usage error naming each of the traveller's field errors by its option and canonical
    field, if there are any; the file they were written to, which holds the traveller, is
    removed (the command line already has it)."""
    if written is not None:
        Path(written).unlink(missing_ok=True)
    if errors:
        raise _TravellerUsageError(
            "; ".join(
                f"{source.get(e.field, '--traveller')}: field {e.field!r}: {e.reason}"
                for e in errors
            )
        )


# -- output ------------------------------------------------------------------------------------
