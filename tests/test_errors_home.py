"""Every public exception of xlink is defined in xlink.errors, exported there and documented in
docs/embedding.md; every one has a deliberate exit code."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re
from pathlib import Path

import pytest

import xlink
import xlink.errors
from xlink.cli.exitcodes import ExitCode

EMBEDDING = Path(__file__).parents[1] / "docs" / "embedding.md"


def _public_exceptions() -> dict[str, set[type[BaseException]]]:
    """Every public exception class found in any xlink module, by where it is found."""
    found: dict[str, set[type[BaseException]]] = {}
    for info in pkgutil.walk_packages(xlink.__path__, "xlink."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and not name.startswith("_")
                and not obj.__name__.startswith("_")
                and (obj.__module__ == "xlink" or obj.__module__.startswith("xlink."))
            ):
                found.setdefault(f"{obj.__module__}.{obj.__qualname__}", set()).add(obj)
    return found


EXCEPTIONS = _public_exceptions()


def test_some_exceptions_are_found() -> None:
    assert "xlink.errors.XlinkError" in EXCEPTIONS
    assert "xlink.errors.ReleaseRejected" in EXCEPTIONS


@pytest.mark.parametrize("where", sorted(EXCEPTIONS))
def test_every_public_exception_is_defined_in_errors(where: str) -> None:
    (cls,) = EXCEPTIONS[where]
    assert cls.__module__ == "xlink.errors", f"{where}: define it in xlink.errors, re-export it"
    assert cls.__name__ in xlink.errors.__all__
    assert getattr(xlink.errors, cls.__name__) is cls


def _documented() -> set[str]:
    text = EMBEDDING.read_text(encoding="utf-8")
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)`", section, flags=re.MULTILINE))


def _exception_names() -> list[str]:
    return sorted(
        name
        for name in xlink.errors.__all__
        if inspect.isclass(obj := getattr(xlink.errors, name)) and issubclass(obj, BaseException)
    )


@pytest.mark.parametrize("name", _exception_names())
def test_every_exception_is_in_the_table_of_embedding_md(name: str) -> None:
    assert name in _documented()


def test_the_table_names_only_real_exceptions() -> None:
    assert _documented() - {"FieldError"} <= set(_exception_names())


def test_the_old_homes_still_export_the_same_classes() -> None:
    """Imports written against the old homes keep working, and catch the same class."""
    from xlink import canonical, documents
    from xlink.crypto import suite
    from xlink.policy import signing
    from xlink.records import transliterate
    from xlink.release import codec, label
    from xlink.store import reasons
    from xlink.transport import errors as transport_errors

    e = xlink.errors
    assert transliterate.UntransliterableError is e.UntransliterableError
    assert documents.DocumentError is e.DocumentError
    assert signing.MouRefused is e.MouRefused
    assert suite.InvalidElement is e.InvalidElement
    assert codec.ReleaseRejected is e.ReleaseRejected
    assert label.LabelError is e.LabelError and label.LabelNotMatched is e.LabelNotMatched
    assert reasons.ReleaseReplayed is e.ReleaseReplayed
    assert canonical.Malformed is e.Malformed and canonical.Truncated is e.Truncated
    assert transport_errors.PeerRefused is e.PeerRefused
    assert transport_errors.RefusalReason is e.RefusalReason
    assert transport_errors.TransportTimeout is e.TransportTimeout
    assert transport_errors.ConnectionLost is e.ConnectionLost
    assert transport_errors.PeerAborted is e.PeerAborted
    from xlink.protocol import AbortCode, InternalProtocolError, abort

    assert abort.AbortCode is AbortCode is e.AbortCode
    assert InternalProtocolError is e.InternalProtocolError


def test_the_documented_exit_codes_are_exit_code_for() -> None:
    """The exit code column of the table in docs/embedding.md is what the CLI returns."""
    from xlink.cli.exitcodes import exit_code_for

    text = EMBEDDING.read_text(encoding="utf-8").split("## Errors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|.*\| (\d+) \|$", text, flags=re.MULTILINE)
    assert rows
    for name, code in rows:
        cls = getattr(xlink.errors, name)
        exc = cls.__new__(cls)  # the code depends on the class only
        assert exit_code_for(exc) == ExitCode(int(code)), name


def _examples() -> list[BaseException]:
    """One instance of every exception of xlink.errors, each attribute given a value of its own
    (not its default), so that one lost in a copy shows."""
    from xlink.records import Reject

    e = xlink.errors
    field = e.FieldError(3, "surname", "not a name")
    rejects = [Reject(3, "row as read", (field,)), Reject(4, "another", ())]
    return [
        e.XlinkError("something"),
        e.InputError("bad input"),
        e.DamagedDatabase("x.db: not a database xlink can read"),
        e.ClusterError("no workers"),
        e.EvaluationError("too small"),
        e.EstimationError("too few pairs"),
        e.LoadError("a.csv", "no header", [field], ["b.csv"]),
        e.NothingLoaded("a.csv", rejects, "rejects.csv", ["b.csv"], "map columns"),
        e.SchemaError(["fields: missing", "blocking: empty"]),
        e.SchemaMismatch("another schema"),
        e.IdentifierError("agency id", "--agency: must be 1-64 chars"),
        e.UntransliterableError("Cyrillic"),
        e.WeakPassphrase(["too-short", "year"], "too short; a year"),
        e.LabelError("too short"),
        e.LabelNotMatched("handle 7"),
        e.ProtocolError("cannot continue"),
        e.LocalProtocolError("not in this state"),
        e.InternalProtocolError("ZeroDivisionError"),
        e.RemoteProtocolError(e.AbortCode.INVALID_ELEMENT, "element 2"),
        e.TransportTimeout("read"),
        e.ConnectionLost("reset"),
        e.PeerAborted(e.AbortCode.MOU_MISMATCH, "from the peer"),
        e.QuotaExhausted("12 left"),
        e.TransferError("count", e.AbortCode.TOO_MANY_RELEASES),
        e.DecisionMismatch(),
        e.BadRelease("wrong-session"),
        e.ReleaseRejected("truncated"),
        e.ReleaseReplayed(),
        e.PeerRefused(e.RefusalReason.NO_PEER, "no certificate"),
        e.HubError(e.HubReason.BUSY, "job 1"),
        e.PolicyDenied(["purpose-not-allowed", "expired"]),
        e.MouRefused(["not-a-party"]),
        e.DecryptionError(),
        e.QueueError("no such item"),
        e.DocumentError("not valid JSON"),
        e.InvalidElement(5, "not on the curve", identity=True),
        e.Malformed("trailing bytes"),
        e.Truncated("ends early"),
    ]


def test_the_examples_are_one_of_every_exception() -> None:
    names = [type(exc).__name__ for exc in _examples()]
    assert sorted(names) == _exception_names()


@pytest.mark.parametrize("exc", _examples(), ids=lambda exc: type(exc).__name__)
def test_every_exception_survives_pickling(exc: BaseException) -> None:
    """Errors cross process boundaries (worker pools, Dask workers): each must come back as it
    was raised, whatever its __init__ takes. Python's own pickling calls ``cls(*args)``: a
    TypeError for most, or the message wrapped twice."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(exc, protocol))
        assert type(back) is type(exc)
        assert str(back) == str(exc) and back.args == exc.args
        assert vars(back) == vars(exc)
        public = {n: getattr(exc, n) for n in dir(exc) if not n.startswith("_")}
        public = {n: value for n, value in public.items() if not callable(value)}
        assert {n: getattr(back, n) for n in public} == public
