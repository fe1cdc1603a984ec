"""Exit codes of the ``xlink`` command (documented in docs/cli.md) and the one mapping from an
exception to its exit code, :func:`exit_code_for`."""

from __future__ import annotations

from enum import IntEnum

from xlink.errors import (
    DocumentError,
    HubError,
    PeerRefused,
    PolicyDenied,
    ProtocolError,
    XlinkError,
)

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    OK = 0
    REJECTS = 1  # the job ran, but rows were rejected and --strict was given
    USAGE = 2  # bad command line (argparse's own code)
    INPUT = 3  # an input file, schema, identifier or key cannot be used (InputError...)
    PROTOCOL = 4  # a session aborted, the peer or the hub refused (ProtocolError, PeerRefused)
    POLICY = 5  # the MOU forbids what was asked (PolicyDenied)
    TARGET = 6  # an evaluation missed its stated target (--min-f1)
    TAMPERED = 7  # an audit log failed verification
    INTERNAL = 70  # a bug: an exception xlink did not mean to raise
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as a shell reports it


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code of a command that ended with ``exc``; the one mapping, used by
    ``xlink.cli.main`` and by every command that reports a failure itself (``--json``).

    - :class:`~xlink.errors.PolicyDenied` (and ``MouRefused``): ``POLICY``;
    - :class:`~xlink.errors.ProtocolError` (aborts, timeouts, lost connections, refused
      releases), :class:`~xlink.errors.PeerRefused` (no session was started) and
      :class:`~xlink.errors.HubError` (the hub refused us): ``PROTOCOL``;
    - the rest of :class:`~xlink.errors.XlinkError` (``InputError`` and subclasses,
      ``DecryptionError``, ``QueueError``), :class:`~xlink.errors.DocumentError` (a document
      that does not parse) and ``OSError`` (a file we were told to read or write): ``INPUT``;
    - ``KeyboardInterrupt``: ``INTERRUPTED``;
    - anything else, including ``InvalidElement``, ``Malformed`` and ``Truncated`` (signals that
      xlink's own layers turn into typed errors: one escaping is a bug), ``TypeError`` and
      ``ValueError``: ``INTERNAL``.
    """
    if isinstance(exc, PolicyDenied):
        return ExitCode.POLICY
    if isinstance(exc, ProtocolError | PeerRefused | HubError):
        return ExitCode.PROTOCOL
    if isinstance(exc, XlinkError | DocumentError | OSError):
        return ExitCode.INPUT
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.INTERNAL
