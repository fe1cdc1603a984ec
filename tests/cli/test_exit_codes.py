"""One mapping from exceptions to exit codes (``exit_code_for``), used by ``xlink.cli.main``:
every exception in ``xlink.errors`` has a deliberate code."""

from __future__ import annotations

import inspect

import pytest

import xlink.errors as E
from xlink.cli.exitcodes import ExitCode, exit_code_for
from xlink.cli.main import main

INPUT, PROTOCOL, POLICY, INTERNAL = (
    ExitCode.INPUT,
    ExitCode.PROTOCOL,
    ExitCode.POLICY,
    ExitCode.INTERNAL,
)

#: Every exception of xlink.errors and the code the command line exits with when it escapes.
EXPECTED: dict[type[BaseException], ExitCode] = {
    E.XlinkError: INPUT,
    # bad input
    E.InputError: INPUT,
    E.DamagedDatabase: INPUT,  # a store, audit log or queue that is not a database
    E.EvaluationError: INPUT,
    E.EstimationError: INPUT,
    E.ClusterError: INPUT,  # a Dask cluster that cannot be used (--dask)
    E.LoadError: INPUT,
    E.NothingLoaded: INPUT,  # every row of a file rejected
    E.SchemaError: INPUT,
    E.SchemaMismatch: INPUT,
    E.IdentifierError: INPUT,
    E.UntransliterableError: INPUT,
    E.WeakPassphrase: INPUT,  # a passphrase too easy to guess, refused before any key is sealed
    E.LabelError: INPUT,
    E.LabelNotMatched: INPUT,
    E.DecryptionError: INPUT,  # a wrong passphrase, a key file or release that does not open
    E.QueueError: INPUT,  # no such queue item, or not in a state that allows the request
    E.DocumentError: INPUT,  # not in the tree, but always about a document the user gave
    # a session that cannot go on, or never started
    E.ProtocolError: PROTOCOL,
    E.LocalProtocolError: PROTOCOL,
    E.InternalProtocolError: PROTOCOL,
    E.RemoteProtocolError: PROTOCOL,
    E.TransportTimeout: PROTOCOL,
    E.ConnectionLost: PROTOCOL,
    E.PeerAborted: PROTOCOL,
    E.QuotaExhausted: PROTOCOL,
    E.TransferError: PROTOCOL,
    E.DecisionMismatch: PROTOCOL,
    E.BadRelease: PROTOCOL,
    E.ReleaseRejected: PROTOCOL,
    E.ReleaseReplayed: PROTOCOL,
    E.PeerRefused: PROTOCOL,
    E.HubError: PROTOCOL,
    # the MOU says no
    E.PolicyDenied: POLICY,
    E.MouRefused: POLICY,
    # signals xlink's own layers always turn into typed errors: one escaping is a bug
    E.InvalidElement: INTERNAL,
    E.Malformed: INTERNAL,
    E.Truncated: INTERNAL,
}


def _errors_exceptions() -> set[type[BaseException]]:
    return {
        obj
        for name in E.__all__
        if inspect.isclass(obj := getattr(E, name)) and issubclass(obj, BaseException)
    }


def test_the_table_lists_every_exception_of_xlink_errors() -> None:
    assert set(EXPECTED) == _errors_exceptions()


@pytest.mark.parametrize(
    "cls", sorted(EXPECTED, key=lambda c: c.__name__), ids=lambda c: c.__name__
)
def test_exit_code_for(cls: type[BaseException]) -> None:
    exc = cls.__new__(cls)  # the code depends on the class alone
    assert exit_code_for(exc) is EXPECTED[cls]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (E.RemoteProtocolError(E.AbortCode.TIMEOUT, "slow"), PROTOCOL),
        (E.PeerRefused(E.RefusalReason.NO_PEER), PROTOCOL),
        (E.PolicyDenied(["purpose-not-allowed"]), POLICY),
        (E.IdentifierError("agency id", "agency id: must be ..."), INPUT),
        (FileNotFoundError(2, "No such file", "x.csv"), INPUT),
        (PermissionError(13, "Permission denied", "keys"), INPUT),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (ValueError("a bug"), INTERNAL),
        (TypeError("a bug"), INTERNAL),
        (ZeroDivisionError(), INTERNAL),
        (RuntimeError(), INTERNAL),
    ],
)
def test_exit_code_for_instances_and_the_rest(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) is code


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            E.IdentifierError("agency id", "--agency: must be 1-64 chars"),
            3,
            "xlink: error: --agency",
        ),
        (E.RemoteProtocolError(E.AbortCode.TIMEOUT, "slow"), 4, "xlink: session aborted: TIMEOUT"),
        (E.PeerRefused(E.RefusalReason.NO_PEER), 4, "xlink: peer refused: no-peer"),
        (E.MouRefused(["expired"]), 5, "xlink: denied by policy: expired"),
        (E.QueueError("no such item"), 3, "xlink: error: no such item"),
        (E.DocumentError("not valid JSON"), 3, "xlink: error: not valid JSON"),
        (FileNotFoundError(2, "No such file", "x.csv"), 3, "xlink: error: No such file: x.csv"),
        (KeyboardInterrupt(), 130, "xlink: interrupted"),
        (E.Malformed("bytes"), 70, "internal error (a bug)"),
    ],
)
def test_main_reports_and_exits_with_exit_code_for(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    message: str,
) -> None:
    import xlink.cli.cmd_schema as cmd_schema

    def failing(_args: object) -> int:
        raise exc

    monkeypatch.setattr(cmd_schema, "run", failing)
    assert main(["schema"]) == code
    err = capsys.readouterr().err
    assert message in err
    assert ("Traceback" in err) is (code == 70)
