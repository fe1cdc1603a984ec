"""The ``xlink`` command: argument parsing and dispatch (reference: docs/cli.md).

Each sub-command lives in its own module under :mod:`xlink.cli`; this one only builds the parser,
maps xlink's exceptions to documented exit codes and keeps tracebacks for real bugs.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from xlink import __version__
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError, PolicyDenied, ProtocolError, XlinkError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from xlink.cli import (
        cmd_audit,
        cmd_demo,
        cmd_eval,
        cmd_keygen,
        cmd_match,
        cmd_mou,
        cmd_prepare,
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
        "70 internal error.",
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
        cmd_source,
        cmd_audit,
        cmd_keygen,
        cmd_mou,
        cmd_serve,
        cmd_match,
        cmd_synth,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (also used by the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except InputError as exc:
        print(f"xlink: error: {exc}", file=sys.stderr)
        return ExitCode.INPUT
    except ProtocolError as exc:
        print(f"xlink: session aborted: {exc}", file=sys.stderr)
        return ExitCode.PROTOCOL
    except PolicyDenied as exc:
        print(f"xlink: {exc}", file=sys.stderr)
        return ExitCode.POLICY
    except XlinkError as exc:
        print(f"xlink: error: {exc}", file=sys.stderr)
        return ExitCode.INPUT
    except OSError as exc:  # a file we were told to read or write: say which, no traceback
        print(f"xlink: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return ExitCode.INPUT
    except KeyboardInterrupt:
        print("xlink: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: keep the traceback for the report, with its own exit code
        traceback.print_exc()
        print(
            "xlink: internal error (a bug): please report it with the traceback above",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
    return code


if __name__ == "__main__":
    sys.exit(main())
