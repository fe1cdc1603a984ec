"""The ``xlink`` command: argument parsing and dispatch (reference: docs/cli.md).

Each sub-command lives in its own module under :mod:`xlink.cli`; this one only builds the parser,
maps xlink's exceptions to documented exit codes and keeps tracebacks for real bugs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from xlink import __version__
from xlink.cli._common import emit_json, failure_json
from xlink.cli.exitcodes import ExitCode, exit_code_for
from xlink.errors import PeerRefused, PolicyDenied, ProtocolError

__all__ = ["build_parser", "main", "report_failure"]


def build_parser() -> argparse.ArgumentParser:
    from xlink.cli import (
        cmd_audit,
        cmd_check,
        cmd_conformance,
        cmd_demo,
        cmd_eval,
        cmd_hub,
        cmd_keygen,
        cmd_match,
        cmd_mou,
        cmd_officer,
        cmd_prepare,
        cmd_query,
        cmd_releases,
        cmd_schema,
        cmd_serve,
        cmd_source,
        cmd_store,
        cmd_synth,
    )

    parser = argparse.ArgumentParser(
        prog="xlink",
        description="Secure cross-border intelligence exchange: private matching of person "
        "records, release under MOU caveats.",
        epilog="Exit codes: 0 ok, 1 rows rejected under --strict, 2 usage, 3 bad input, "
        "4 protocol abort, 5 policy refusal, 6 evaluation target missed, 7 audit log tampered, "
        "70 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"xlink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        cmd_prepare,
        cmd_eval,
        cmd_schema,
        cmd_demo,
        cmd_releases,
        cmd_store,
        cmd_officer,
        cmd_source,
        cmd_audit,
        cmd_keygen,
        cmd_mou,
        cmd_check,
        cmd_serve,
        cmd_match,
        cmd_query,
        cmd_hub,
        cmd_synth,
        cmd_conformance,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (also used by the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        # The reader went away (`xlink store list | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except (Exception, KeyboardInterrupt) as exc:
        # --json as a flag (conformance run's --json FILE is where its report goes)
        # an interrupted run too: a script reading the document learns it was interrupted
        json_asked = getattr(args, "json", None) is True
        if json_asked and not getattr(args, "printed", False):  # none printed yet
            emit_json(failure_json(exc))
        return report_failure(exc)
    return code


def report_failure(exc: BaseException) -> ExitCode:
    """Say on standard error why a command failed; return its exit code
    (:func:`~xlink.cli.exitcodes.exit_code_for`). xlink's own messages name no key material,
    identity or certificate content; a bug (``INTERNAL``) keeps its traceback for the report."""
    code = exit_code_for(exc)
    if code is ExitCode.INTERNAL:
        from xlink.protocol.abort import escape_unprintable

        for line in "".join(traceback.format_exception(exc)).splitlines():
            print(escape_unprintable(line), file=sys.stderr)
        print(
            "xlink: internal error (a bug): please report it with the traceback above",
            file=sys.stderr,
        )
    elif code is ExitCode.INTERRUPTED:
        print("xlink: interrupted", file=sys.stderr)
    elif isinstance(exc, ProtocolError):
        _say("xlink: session aborted:", exc)
    elif isinstance(exc, PolicyDenied | PeerRefused):
        _say("xlink:", exc)
    else:
        _say("xlink: error:", exc)
    return code


def _say(prefix: str, exc: BaseException) -> None:
    """Print ``exc`` on standard error after ``prefix``, as text: a message may quote what
    came from outside (a member name of a partner's document, a hub's refusal), which must
    neither add a line nor drive the terminal (:func:`~xlink.cli._common.error_lines`)."""
    from xlink.cli._common import error_lines  # as the commands are: when needed

    first, *rest = error_lines(exc)
    print("\n".join([f"{prefix} {first}", *rest]), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
