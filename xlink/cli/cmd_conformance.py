"""``xlink conformance``: the conformance suite for implementers (docs/conformance.md,
protocols/conformance.md): ``kit`` writes the keys, MOU and lists both sides load, ``agent``
runs xlink as the implementation under test, ``run`` plays every case against an
implementation and writes the reports, ``list`` prints the cases."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.cli._common import write_port_file
from xlink.cli.cmd_serve import host_port, run_cancellable
from xlink.cli.exitcodes import ExitCode
from xlink.conformance.agent import ROLES, run_agent
from xlink.conformance.cases import all_cases, select
from xlink.conformance.kit import load_kit, write_kit
from xlink.conformance.model import Result
from xlink.conformance.report import json_report, junit_report, summary, table_report
from xlink.conformance.runner import run_suite
from xlink.crypto.rand import system_random

__all__ = ["register"]

_EXIT = (
    "Exit status: 0 every case passed; 4 a case failed (or, with --strict, conformed to its "
    "MUSTs only); 3 bad input (kit, paths)."
)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("expected seconds in (0, 600]")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "conformance",
        help="test an implementation of the xlink protocols against the conformance suite",
        description="The conformance suite (docs/conformance.md): every invalid vector of "
        "xlink-psi-v2, release transfer v3 and the xlink-query-v1 holder played live, timing, "
        "size and ordering cases, and the dishonest-partner attacks, each over pinned mutual "
        "TLS against the implementation under test, with a verdict per case. " + _EXIT,
    )
    actions = p.add_subparsers(dest="conformance_command", metavar="ACTION", required=True)

    kit = actions.add_parser(
        "kit",
        help="write a conformance kit: test keys, the signed MOU and both lists",
        description="Write into DIR the kit both sides load (protocols/conformance.md §2): "
        "keys for CA-RCMP (the runner) and US-DHS (the implementation under test), the MOU "
        "both signed (valid from today for --valid-days), the two lists and kit.json. The "
        "keys' passphrase is in kit.json: test keys only.",
    )
    kit.add_argument("dir", type=Path, metavar="DIR", help="directory to write the kit into")
    kit.add_argument("--valid-days", type=int, default=30, help="MOU and TLS validity (30)")
    kit.set_defaults(handler=run_kit)

    agent = actions.add_parser(
        "agent",
        help="run xlink as the implementation under test",
        description="Listen on HOST:PORT as US-DHS with the kit's keys and run one exchange "
        "per connection in ROLE, each from a fresh working directory under --workdir, one "
        "after another, appending one outcome line per connection to --outcomes "
        "(protocols/conformance.md §3), until SIGTERM or Ctrl-C.",
    )
    agent.add_argument("--kit", type=Path, required=True, metavar="DIR")
    agent.add_argument("--role", choices=ROLES, required=True)
    agent.add_argument("--listen", type=host_port, required=True, metavar="HOST:PORT")
    agent.add_argument("--workdir", type=Path, required=True, metavar="DIR")
    agent.add_argument("--outcomes", type=Path, required=True, metavar="FILE")
    agent.add_argument(
        "--idle-timeout", type=_positive_seconds, default=2.0, metavar="S",
        help="seconds of silence before a session is aborted with TIMEOUT (2)",
    )  # fmt: skip
    agent.add_argument("--port-file", metavar="FILE", help="write the bound port here")
    agent.set_defaults(handler=run_agent_command)

    run = actions.add_parser(
        "run",
        help="play the suite against an implementation under test",
        description="Connect to the implementation under test at --peer once per case, play "
        "the case as CA-RCMP with the kit's keys, read the implementation's outcome line from "
        "--outcomes, and judge it. Prints a table; --json and --junit write the reports. " + _EXIT,
    )
    run.add_argument("--kit", type=Path, required=True, metavar="DIR")
    run.add_argument("--peer", type=host_port, required=True, metavar="HOST:PORT")
    run.add_argument(
        "--role", choices=ROLES, required=True,
        help="the role the implementation under test was started in",
    )  # fmt: skip
    run.add_argument("--outcomes", type=Path, required=True, metavar="FILE",
                     help="the implementation's outcomes file")  # fmt: skip
    run.add_argument("--workdir", type=Path, required=True, metavar="DIR",
                     help="the runner's working directory (one subdirectory per case)")  # fmt: skip
    run.add_argument(
        "--idle-timeout", type=_positive_seconds, default=2.0, metavar="S",
        help="the idle timeout the implementation was started with (2)",
    )  # fmt: skip
    run.add_argument(
        "--cases", nargs="+", default=[], metavar="GLOB",
        help="only the cases whose id matches a glob (the sanity cases always run)",
    )  # fmt: skip
    run.add_argument(
        "--strict", action="store_true",
        help="also play the SHOULD cases; a NON-STRICT verdict fails the run",
    )  # fmt: skip
    run.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report here")
    run.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report here")
    run.add_argument("--failures-only", action="store_true",
                     help="print only the cases whose verdict is not OK")  # fmt: skip
    run.set_defaults(handler=run_run)

    listing = actions.add_parser(
        "list",
        help="print the cases: id, level, roles, expected codes, section",
        description="One line per case: tcId, id, level (MUST or SHOULD), the roles it is "
        "played against, the abort codes it expects and its spec section; with --json one "
        "JSON object per line, with the requirement and the vector it plays too.",
    )
    listing.add_argument("--role", choices=ROLES)
    listing.add_argument("--strict", action="store_true", help="include the SHOULD cases")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=run_list)


def run_kit(args: argparse.Namespace) -> int:
    write_kit(args.dir, now=datetime.now(UTC), rng=system_random, valid_days=args.valid_days)
    print(f"conformance kit written to {args.dir} (kit.json names every file)")
    return ExitCode.OK


def run_agent_command(args: argparse.Namespace) -> int:
    kit = load_kit(args.kit)
    host, port = args.listen

    def listening(bound: int) -> None:
        print(f"conformance agent ({args.role}) listening on {host}:{bound}", flush=True)
        write_port_file(args.port_file, bound)

    served = run_cancellable(
        run_agent(
            kit,
            role=args.role,
            host=host,
            port=port,
            workdir=args.workdir,
            outcomes=args.outcomes,
            clock=lambda: datetime.now(UTC),
            rng=system_random,
            idle_timeout=args.idle_timeout,
            on_listening=listening,
        )
    )
    print(f"served {served} connection(s)")
    return ExitCode.OK


def run_run(args: argparse.Namespace) -> int:
    kit = load_kit(args.kit)
    host, port = args.peer
    interactive = sys.stdout.isatty()
    total = len(select(all_cases(), args.role, args.cases, strict=args.strict))
    played = 0

    def progress(result: Result) -> None:
        nonlocal played
        played += 1
        if interactive:
            line = f"{played}/{total} {result.case.id}"[:70]
            print(f"\r{line:<70}", end="", flush=True)
        elif played % 25 == 0 or played == total:
            print(f"xlink: {played}/{total} cases played", file=sys.stderr, flush=True)

    results = run_cancellable(
        run_suite(
            kit,
            host=host,
            port=port,
            role=args.role,
            outcomes=args.outcomes,
            workdir=args.workdir,
            clock=lambda: datetime.now(UTC),
            rng=system_random,
            idle_timeout=args.idle_timeout,
            patterns=args.cases,
            strict=args.strict,
            on_result=progress,
        )
    )
    if interactive:
        print("\r" + " " * 70 + "\r", end="")
    agent = f"{host}:{port}"
    if args.json:
        args.json.write_text(json_report(results, strict=args.strict, agent=agent), "utf-8")
    if args.junit:
        args.junit.write_text(junit_report(results, strict=args.strict), "utf-8")
    print(table_report(results, strict=args.strict, failures_only=args.failures_only), end="")
    return ExitCode.OK if summary(results, strict=args.strict)["passed"] else ExitCode.PROTOCOL


def run_list(args: argparse.Namespace) -> int:
    cases = all_cases()
    roles = [args.role] if args.role else list(ROLES)
    chosen = [c for c in cases if any(c in select(cases, r, strict=args.strict) for r in roles)]
    for c in chosen:
        row = {
            "tcId": c.tc_id,
            "id": c.id,
            "section": c.section,
            "level": c.expect.level,
            "roles": sorted(c.roles),
            "expected": [code.name for code in c.expect.abort] or None,
            "vector": c.vector,
            "requirement": c.requirement,
        }
        if args.json:
            print(json.dumps(row, sort_keys=True, ensure_ascii=False))
        else:
            expected = ",".join(row["expected"] or ["-"])  # type: ignore[arg-type]
            print(
                f"{c.tc_id:>4}  {c.id:<44} {c.expect.level:<6} "
                f"{','.join(sorted(c.roles)):<28} {expected:<30} {c.section}"
            )
    return ExitCode.OK
