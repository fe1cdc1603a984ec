"""``xlink serve``: wait for the partner agency and run one exchange with it (docs/quickstart.md,
"Two machines"). Also home of the options and output that ``xlink match`` shares."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from xlink.agency import AgencyOutcome, RoleName, run_agency
from xlink.cli._common import (
    add_agency_options,
    add_input_options,
    add_psi_suite_option,
    check_mappings,
    emit_json,
    phase_timings,
    progress_reporter,
    unread_line,
    withheld_line,
    write_port_file,
)
from xlink.cli.cmd_keygen import read_passphrase
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.cluster import ClusterError, check_address, dask_workers
from xlink.crypto.rand import system_random
from xlink.crypto.workers import GroupWorkers
from xlink.errors import InputError
from xlink.release.policy import DENY_GRADING_MISSING
from xlink.release.transfer import RECIPROCAL_AHEAD

T = TypeVar("T")

__all__ = [
    "EXIT_CODES_HELP",
    "add_exchange_options",
    "host_port",
    "register",
    "run",
    "run_exchange",
]

EXIT_CODES_HELP = (
    "Exit codes: 0 done (audit log verified), 3 unusable keys, passphrase, MOU, bundle or input "
    "file, 4 session aborted or peer refused (TLS, certificate pin, timeout), 5 MOU refused "
    "(signatures, validity, not a party), 7 own audit log failed verification."
)


def host_port(text: str) -> tuple[str, int]:
    """argparse type: ``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0..65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host.strip("[]"), int(port)


def worker_count(text: str) -> int:
    """argparse type: a worker count of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected a whole number of at least 1")
    return int(text)


def dask_address(text: str) -> str:
    """argparse type: ``local`` or a ``tls://`` Dask scheduler address."""
    try:
        return check_address(text)
    except ClusterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_exchange_options(p: argparse.ArgumentParser) -> None:
    add_input_options(p, "this agency's input files (CSV or JSON Lines)")
    add_agency_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=worker_count,
        metavar="N",
        help="processes for hashing and blinding (default: every core this process may use)",
    )
    where.add_argument(
        "--dask",
        type=dask_address,
        metavar="ADDRESS",
        help="hash and blind on a Dask cluster instead (extra xlink[dask]): 'local' starts one "
        "on this machine, or a scheduler's tls://HOST:PORT (credentials from the Dask "
        "configuration, distributed.comm.tls.*)",
    )
    add_psi_suite_option(p)
    p.set_defaults(handler=run)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="wait for the partner agency and run one exchange",
        description="Listen on HOST:PORT for the other agency (mutual TLS 1.3, certificate "
        "pinned by the MOU), run one private set intersection, decide matches, exchange "
        "sealed releases and receipts, verify the audit log, and exit. " + EXIT_CODES_HELP,
    )
    p.add_argument(
        "--listen",
        required=True,
        type=host_port,
        metavar="HOST:PORT",
        help="address to listen on (port 0: any free port, printed on standard error)",
    )
    p.add_argument(
        "--port-file",
        metavar="FILE",
        help="write the bound port to this file once listening (for scripts with port 0)",
    )
    add_exchange_options(p)
    p.set_defaults(role="serve")


def run_exchange(args: argparse.Namespace, role: RoleName, host: str, port: int) -> int:
    passphrase = read_passphrase(args, confirm=False)
    if args.timeout <= 0:
        raise InputError("--timeout must be > 0")
    check_mappings(args)
    port_file = getattr(args, "port_file", None)

    def listening(bound: int) -> None:
        print(f"xlink: {args.agency} listening on {host}:{bound}", file=sys.stderr, flush=True)
        write_port_file(port_file, bound)

    start = time.perf_counter()
    report, close = progress_reporter(True)
    try:
        with contextlib.ExitStack() as stack:
            workers: int | GroupWorkers | None = args.workers
            if args.dask is not None:
                workers = stack.enter_context(dask_workers(args.dask))
            outcome = run_cancellable(
                run_agency(
                    role,
                    agency=args.agency,
                    files=args.files,
                    keys_dir=args.keys,
                    passphrase=passphrase,
                    mou_path=args.mou,
                    peer_bundle_path=args.peer_bundle,
                    host=host,
                    port=port,
                    workdir=args.workdir,
                    now_clock=lambda: datetime.now(UTC),
                    rng=system_random,
                    mappings=args.mapping,
                    date_order=args.date_order,
                    bad_field=args.bad_field,
                    timeout=args.timeout,
                    idle_timeout=args.timeout,
                    on_listening=listening,
                    progress=report,
                    workers=workers,
                    suite_id=args.psi_suite,
                )
            )
    finally:
        close()
    wall = time.perf_counter() - start
    code = ExitCode.OK if outcome.audit_ok else ExitCode.TAMPERED
    if args.json:
        doc: dict[str, object] = {
            **outcome.to_json(),
            "phases": {**phase_timings(report), **outcome.phases},
            "wall_s": round(wall, 2),
            **(
                {
                    "dask": {
                        "address": args.dask,
                        "workers": workers.count,
                        "slices": workers.slices_sent,
                    }
                }
                if isinstance(workers, GroupWorkers)
                else {}
            ),
            "ok": code == ExitCode.OK,
            "exit_code": int(code),
        }
        if code != ExitCode.OK:
            doc["error"] = {
                "type": "AuditLogInvalid",
                "code": None,
                "reason": None,
                "detail": f"own audit log failed verification: {outcome.audit_reason}",
            }
        emit_json(doc)
    else:
        _print_outcome(outcome, wall)
    return code


def run_cancellable(run: Coroutine[Any, Any, T]) -> T:
    """Run ``run`` to completion; SIGTERM cancels it like Ctrl-C does, so an interrupted
    exchange still closes its connection and audits how it ended."""

    async def main() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await run
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def _print_outcome(o: AgencyOutcome, wall: float) -> None:
    print(f"{o.agency} ({o.role}) with {o.peer}, MOU {o.mou_id}, session {o.session_id[:16]}…")
    print(f"  records {o.records}, rejected rows {o.rejected}, tokens {o.tokens}")
    if o.withheld:
        print(withheld_line(o.withheld))
    if o.unread_columns:
        print(unread_line(o.unread_columns))
    print(f"  matched tokens {o.matched_tokens}, candidate pairs {o.candidates}")
    print(f"  decided matches {o.decided}")
    released = ", ".join(f"{k} {v}" for k, v in o.released.items()) or "none"
    why = ", ".join(f"{k} {v}" for k, v in o.denied_reasons.items())
    denied = f"{o.denied} ({why})" if why else f"{o.denied}"
    print(f"  released {o.released_total} ({released}), denied {denied}, queued {o.queued}")
    if o.denied_reasons.get(DENY_GRADING_MISSING):
        print(
            "    grading-missing: the MOU requires a source grading for those categories and "
            "the records have none; map a grading column (docs/loading.md) and run again"
        )
    if o.pending or o.delivered_before:
        print(
            f"    from earlier runs: {o.pending} still pending approval, "
            f"{o.delivered_before} delivered before (not sent again)"
        )
    if o.unreciprocated:
        print(
            f"    {o.unreciprocated} kept back: the MOU is reciprocal and the peer offered "
            f"{o.peer_offered}; the next exchange offers them again"
        )
    if o.reciprocal_ahead is not None and o.reciprocal_ahead > 0:
        shut = o.reciprocal_ahead >= RECIPROCAL_AHEAD
        print(
            f"    {o.peer} holds {o.reciprocal_ahead} of ours beyond its own, over every "
            f"exchange (at most {RECIPROCAL_AHEAD})"
            + ("; no new release of ours goes before it gives more" if shut else "")
        )
    ours = o.released_total + o.unreciprocated  # what we offered, under a reciprocal MOU
    if o.peer_offered is not None and o.peer_offered > ours:
        print(
            f"    the peer offered {o.peer_offered} releases and sent {ours}, as many as we "
            f"offered (the MOU is reciprocal): the rest come with an exchange in which we "
            f"offer as many"
        )
    if o.overdue:
        print(f"    {o.overdue} queued release(s) now past the MOU's follow-up deadline (audited)")
    if o.approval_required and (o.queued or o.pending):
        print(
            f"    the MOU requires approval: review with `xlink releases pending --workdir "
            f"{o.workdir} --keys ...`; approved ones go with the next exchange"
        )
    print(f"  receipts verified {o.receipts_verified}, refused by the peer {o.refused_by_peer}")
    received = ", ".join(f"{k} {v}" for k, v in o.received.items()) or "none"
    print(f"  received {o.received_total} ({received}), refused {o.refused_by_us}")
    if o.received_before:
        print(f"    {o.received_before} already held from an earlier run (not stored twice)")
    print(f"  matches file {o.matches_file}")
    verdict = "ok" if o.audit_ok else f"FAILED: {o.audit_reason}"
    print(f"  audit log {verdict} ({o.audit_entries} entries)")
    print(f"  workdir {o.workdir}; done in {wall:.1f} s")


def run(args: argparse.Namespace) -> int:
    if args.role == "serve":
        host, port = args.listen
        return run_exchange(args, "serve", host, port)
    host, port = args.peer
    return run_exchange(args, "match", host, port)
