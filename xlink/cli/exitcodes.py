"""Exit codes of the ``xlink`` command (documented in docs/cli.md)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    OK = 0
    REJECTS = 1  # the job ran, but rows were rejected and --strict was given
    USAGE = 2  # bad command line (argparse's own code)
    INPUT = 3  # an input file or schema cannot be used (LoadError, SchemaError)
    PROTOCOL = 4  # a session was aborted (RemoteProtocolError / LocalProtocolError)
    POLICY = 5  # the MOU forbids what was asked (PolicyDenied)
    TARGET = 6  # an evaluation missed its stated target (--min-f1)
    TAMPERED = 7  # an audit log failed verification
    INTERNAL = 70  # a bug: an exception xlink did not mean to raise
