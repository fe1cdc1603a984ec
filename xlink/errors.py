"""The one exception tree of xlink, rooted at :class:`XlinkError`, and the one module where
every public exception of xlink is defined (docs/embedding.md, "Errors").

Whose fault it is decides the class: the caller's misuse (:class:`LocalProtocolError`, or a plain
``TypeError``/``ValueError`` for a wrong argument), the peer's misbehaviour
(:class:`RemoteProtocolError`, always with an :class:`~xlink.error_codes.AbortCode`), bad input
data (:class:`InputError` and subclasses) and policy refusals (:class:`PolicyDenied`). Any other
exception escaping xlink is a bug. The command line's exit code for each class is
:func:`xlink.cli.exitcodes.exit_code_for`.

A few classes are not in the tree on purpose: :class:`DocumentError`, :class:`InvalidElement`,
:class:`Malformed` and :class:`Truncated` are ``ValueError`` signals between xlink's own layers,
each turned into a typed error (``SchemaError``, ``LoadError``, an abort) before it reaches the
caller.

Messages never contain plaintext identities, secret keys or unblinded tokens: they name a line,
a field and a reason, never the offending value.

This module is a leaf: it imports nothing from xlink but :mod:`xlink.error_codes` (itself a
leaf), so that every module can import it. The modules that used to define these classes
(``xlink.release.codec``, ``xlink.transport.errors``...) import and re-export them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from xlink.error_codes import AbortCode, HubReason, RefusalReason

__all__ = [
    "AbortCode",
    "BadRelease",
    "ClusterError",
    "ConnectionLost",
    "DamagedDatabase",
    "DecisionMismatch",
    "DecryptionError",
    "DocumentError",
    "EstimationError",
    "EvaluationError",
    "FieldError",
    "HubError",
    "HubReason",
    "IdentifierError",
    "InputError",
    "InternalProtocolError",
    "InvalidElement",
    "LabelError",
    "LabelNotMatched",
    "LoadError",
    "LocalProtocolError",
    "Malformed",
    "MouRefused",
    "NothingLoaded",
    "PeerAborted",
    "PeerRefused",
    "PolicyDenied",
    "ProtocolError",
    "QueueError",
    "QuotaExhausted",
    "RefusalReason",
    "RejectedRow",
    "ReleaseRejected",
    "ReleaseReplayed",
    "RemoteProtocolError",
    "SchemaError",
    "SchemaMismatch",
    "TransferError",
    "TransportTimeout",
    "Truncated",
    "UntransliterableError",
    "WeakPassphrase",
    "XlinkError",
]


def _rebuild(cls: type[BaseException], args: tuple[object, ...]) -> BaseException:
    """``cls`` with ``args``, without its ``__init__`` (see :func:`_reduce`)."""
    return cls.__new__(cls, *args)


def _reduce(exc: BaseException) -> tuple[object, ...]:
    """``__reduce__`` of every exception here: rebuilt from its ``args`` and its attributes
    without calling ``__init__`` again, whose parameters are not its ``args`` (a
    ``NothingLoaded``, a ``RemoteProtocolError``...), so that it survives pickling: an error
    raised in a worker process or on a Dask worker reaches its caller as it was raised (type,
    message, attributes). Python's own would call ``cls(*args)``: a ``TypeError``, or the
    message wrapped twice."""
    return (_rebuild, (type(exc), exc.args), vars(exc) or None)


class XlinkError(Exception):
    """Root of every exception xlink raises on purpose."""

    __reduce__ = _reduce


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of one input row (not an exception: collected, not raised).

    ``line`` is the 1-based physical line of the input file (the header is line 1 in a CSV file),
    or the 1-based row number of a DataFrame. ``field`` is the column as the input names it.
    ``reason`` says what is wrong without quoting the value.
    """

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field!r}: {self.reason}"


# -- bad input --------------------------------------------------------------------------------


class InputError(XlinkError):
    """Input data that cannot be used as it is."""


class DamagedDatabase(InputError, sqlite3.DatabaseError):
    """A file xlink keeps as a database (a store, an audit log, a queue, the query service's
    counts) that is not one: damaged, cut short, or another kind of file. An input error to
    the person running xlink; a ``sqlite3.DatabaseError`` to code that handles a store that
    fails (the query service aborts the session, audited)."""


class ClusterError(InputError):
    """A Dask cluster cannot be used for a party's group operations
    (:func:`xlink.crypto.cluster.dask_workers`): the extra is not installed, the address is not
    a TLS scheduler, it cannot be reached, it has no workers, or a worker computes
    differently."""


class EvaluationError(InputError):
    """A data set cannot be evaluated as given: too small to fit weights on its development
    split, or a party's records could not be loaded (``xlink.evaluation``)."""


class EstimationError(InputError):
    """A session's candidate pairs cannot be estimated from (too few, too many patterns, or a
    schema too rich: :func:`xlink.linkage.estimate.estimate`); the caller decides with fixed
    weights."""


class LoadError(InputError):
    """A whole input cannot be loaded (unreadable, not UTF-8, empty, missing columns...).

    Row-level problems are not raised: they are collected as :class:`FieldError` and the row goes
    to the rejects file. This is raised only when no row can be trusted.
    """

    def __init__(
        self,
        source: str,
        reason: str,
        errors: Sequence[FieldError] = (),
        others: Sequence[str] = (),
    ) -> None:
        self.source = source
        self.reason = reason
        self.errors = tuple(errors)
        #: Other inputs of the same load that could not be loaded either (their own errors
        #: are not repeated: load them again once this one is fixed).
        self.others = tuple(others)
        also = f" (also refused: {', '.join(self.others)})" if self.others else ""
        detail = "".join(f"\n  {e}" for e in self.errors)
        super().__init__(f"{source}: {reason}{also}{detail}")

    def also(self, others: Sequence[str]) -> LoadError:
        """The same error, naming ``others``: inputs of the same load refused too."""
        return LoadError(self.source, self.reason, self.errors, others)


class RejectedRow(Protocol):
    """What :class:`NothingLoaded` holds of each rejected row (a ``xlink.records.Reject``:
    this module imports nothing of xlink's but the error codes)."""

    @property
    def line(self) -> int: ...

    @property
    def errors(self) -> tuple[FieldError, ...]: ...


class NothingLoaded(LoadError):
    r"""Rows were read and every one was rejected: no record loaded. ``errors`` are the first
    reject's (``FieldError``\ s name the line and field and never quote a value), and only they
    are in the message; ``rejects`` are every reject (:class:`~xlink.records.Reject`, whose
    ``raw`` holds the row as read: never shown), as a ``LoadResult`` would have held them;
    ``rejects_path`` is where the rejects file was written first, or None; ``hint`` names the
    input's columns that a mapping could read as the fields the rows lacked (a file loaded
    without its mapping), or None."""

    def __init__(
        self,
        source: str,
        rejects: Sequence[RejectedRow],
        rejects_path: str | None,
        others: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        self.rejects = tuple(rejects)
        self.rejected = len(self.rejects)
        self.rejects_path = rejects_path
        self.hint = hint
        where = f"; every reason is in {rejects_path}" if rejects_path is not None else ""
        said = f"; {hint}" if hint else ""
        super().__init__(
            source,
            f"no record loaded: every row ({self.rejected}) was rejected{where}; check the "
            f"mapping, the category and the date order{said}. The first:",
            self.rejects[0].errors if self.rejects else (),
            others,
        )

    def elsewhere(self) -> NothingLoaded:
        """The same refusal without the rejects file's path: for a load whose rejects went
        to a directory that is gone (a check's scratch space)."""
        return NothingLoaded(self.source, self.rejects, None, self.others, self.hint)

    def also(self, others: Sequence[str]) -> NothingLoaded:
        return NothingLoaded(self.source, self.rejects, self.rejects_path, others, self.hint)


class SchemaError(InputError):
    """A linkage schema or MOU document is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__(
            f"{len(self.errors)} error(s):" + "".join(f"\n  - {e}" for e in self.errors)
        )


class SchemaMismatch(InputError):
    """The linkage schema this side would use is not the one the MOU's digest names."""


class IdentifierError(InputError, ValueError):
    """A string that should be an identifier (agency id, MOU id, purpose...) breaks its rule
    (:mod:`xlink.identifiers`). ``kind`` names the rule (``"agency id"``); the message says
    what is wrong, the length or the position of the first bad character, never the value.
    Also a ``ValueError``, as a bad argument value."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class UntransliterableError(InputError, ValueError):
    """A letter has no ICAO 9303 transliteration and no decomposition to a Latin letter.

    The message names the Unicode script family of the letter, never the letter or the text.
    """

    def __init__(self, script: str) -> None:
        self.script = script
        super().__init__(f"a letter of script {script} has no ICAO 9303 transliteration")


class WeakPassphrase(InputError, ValueError):
    """A passphrase too easy to guess to protect keys at rest
    (:func:`xlink.crypto.envelope.check_passphrase_strength`). ``reasons`` are machine-readable
    codes (``too-short``, ``common-password``, ``agency-id``, ``repeated``, ``sequence``,
    ``keyboard-walk``, ``year``, ``guessable``); the message says what is wrong, never the
    passphrase. Also a ``ValueError``, as a bad argument value."""

    def __init__(self, reasons: Sequence[str], message: str) -> None:
        self.reasons = tuple(reasons)
        super().__init__(message)


class LabelError(InputError):
    """A labelled frame that is not well formed (too short, no handle, handles not sorted)."""


class LabelNotMatched(LabelError):
    """A labelled frame names handles we may not open a release for: not one of our decided
    pairs (release transfer v3), or a handle that is not one of our matches (a query)."""


# -- protocol ---------------------------------------------------------------------------------


class ProtocolError(XlinkError):
    """A protocol session cannot continue."""


class LocalProtocolError(ProtocolError):
    """The caller used a session in a way its state does not allow (a bug in the caller)."""


class InternalProtocolError(LocalProtocolError):
    """A local failure inside a session (spec xlink-psi-v2 §8 ``INTERNAL_ERROR``): not the
    peer's fault and not the caller's misuse, e.g. a token that hashed to the identity or a bug.

    When this is raised the session is already ABORTED and has queued an Abort with
    ``INTERNAL_ERROR`` for the peer: take it with ``next_message()`` and send it. ``detail``
    names the failure's type only, never a value; the original exception is ``__cause__``.
    """

    code = AbortCode.INTERNAL_ERROR

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"INTERNAL_ERROR ({int(AbortCode.INTERNAL_ERROR)}): {detail}")


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the session is aborted with ``code``."""

    def __init__(self, code: AbortCode, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code.name} ({int(code)}): {detail}")


class TransportTimeout(RemoteProtocolError):
    """A read, a write or the session itself made no progress within its timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(AbortCode.TIMEOUT, detail)


class ConnectionLost(RemoteProtocolError):
    """The connection ended (closed, reset, TLS alert) before the session was done."""

    def __init__(self, detail: str) -> None:
        super().__init__(AbortCode.CONNECTION_LOST, detail)


class PeerAborted(RemoteProtocolError):
    """The peer sent an Abort; ``code`` is the peer's reason (spec §6.8)."""


class QuotaExhausted(PeerAborted):
    """The holder's daily query quota (the MOU's ``query_quota_per_day``, in OPRF evaluations)
    does not cover this query (``QUOTA_EXHAUSTED``): the holder refused it, or the asker saw
    from the holder's WELCOME that it would and spent nothing (xlink-query-v1 §8)."""

    def __init__(self, detail: str) -> None:
        super().__init__(AbortCode.QUOTA_EXHAUSTED, detail)


class TransferError(RemoteProtocolError):
    """The peer broke release transfer v3: a frame out of order, a count that disagrees
    (``UNEXPECTED_MESSAGE``), more releases than we decided matches (``TOO_MANY_RELEASES``),
    another version of the transfer (``UNSUPPORTED_VERSION``), a release no honest partner
    sends (``BAD_RELEASE``: :class:`BadRelease`)."""

    def __init__(self, detail: str, code: AbortCode = AbortCode.UNEXPECTED_MESSAGE) -> None:
        super().__init__(code, detail)


class DecisionMismatch(TransferError):
    """The peer's decided-pairs digest is not the one ours calls for (``DECISION_MISMATCH``):
    the two sides did not decide the same matches, or the peer sent ours back, so neither
    releases anything."""

    def __init__(self) -> None:
        super().__init__("the peer decided other matches", AbortCode.DECISION_MISMATCH)


class BadRelease(TransferError):
    """The peer sent a release we refuse for a reason no honest partner causes
    (``BAD_RELEASE``): not for exactly one of our decided matches, a second one for a match, a
    label that does not open, not sealed and signed for us under this MOU and session
    (xlink-release-v1 §10; a refusal for the partner's clock is answered instead, but under
    a reciprocal MOU, §10.5, where it ends the transfer too). The
    transfer ends at the first: what of ours had not left stays here. A query's asker ends
    its session the same way, at the first such release of a holder's answer, with no receipts
    sent (xlink-query-v1 §7.4). ``reason`` is the refusal's code, as audited
    (``RECEIVE_DENIED``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the peer sent a release we refuse ({reason})", AbortCode.BAD_RELEASE)


class ReleaseRejected(ProtocolError):
    """A release or receipt cannot be accepted; ``reason`` is a machine-readable code
    (spec §7): ``malformed``, ``truncated``, ``too-large``, ``unsupported-version``,
    ``wrong-originator``, ``wrong-recipient``, ``mou-mismatch``, ``wrong-session``,
    ``wrong-release``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"release rejected: {reason}")


class ReleaseReplayed(ReleaseRejected):
    """A release whose id the store already holds was delivered again (a replay, or an honest
    re-send after a lost receipt: :meth:`~xlink.store.ReleaseStore.receipt` gives the receipt
    issued the first time). Nothing is stored or audited."""

    def __init__(self) -> None:
        super().__init__("replayed")


class PeerRefused(XlinkError):
    """The peer could not be authenticated; no session was started. ``reason`` says why in a
    machine-readable way; the message names no certificate content."""

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"peer refused: {reason.value}" + (f" ({detail})" if detail else ""))


class HubError(XlinkError):
    """The hub refused us, or a hub message broke xlink-hub-v1 (protocols/xlink-hub-v1.md):
    ``reason`` is the :class:`~xlink.error_codes.HubReason`; the message names agencies and
    jobs, never a record, a token or a key."""

    def __init__(self, reason: HubReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"hub: {reason.value}" + (f" ({detail})" if detail else ""))


# -- policy and cryptography ------------------------------------------------------------------


class PolicyDenied(XlinkError):
    """The MOU forbids what was asked; ``reasons`` are machine-readable codes."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("denied by policy: " + ", ".join(self.reasons))


class MouRefused(PolicyDenied):
    """An MOU cannot be used: ``reasons`` lists every machine-readable reason, in the order
    ``not-a-party``, ``signature-missing:<agency>`` / ``signature-invalid:<agency>`` (parties in
    MOU order), ``not-yet-valid`` / ``expired``."""


class DecryptionError(XlinkError):
    """A sealed or signed object failed to open or verify. Deliberately says nothing more."""

    def __init__(self) -> None:
        super().__init__("decryption or verification failed")


class QueueError(XlinkError):
    """An approval-queue request that cannot be done: no such item, or not in a state that
    allows it (approving a denied item, denying one already approved...)."""


# -- signals between xlink's layers (ValueError, outside the tree) ----------------------------


class DocumentError(ValueError):
    """A document cannot be parsed; ``reason`` says why without quoting its content. Each
    caller turns it into its own typed error (:class:`SchemaError`, :class:`LoadError`)."""

    __reduce__ = _reduce

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class InvalidElement(ValueError):
    """A received element is not a valid group element; ``index`` is its position in the buffer.

    ``identity`` is True when the element is the identity (``u = 0``) or of small order.
    The protocol layer turns this into an abort with the matching code.
    """

    __reduce__ = _reduce

    def __init__(self, index: int, reason: str, *, identity: bool = False) -> None:
        self.index = index
        self.reason = reason
        self.identity = identity
        super().__init__(f"element {index}: {reason}")


class Malformed(ValueError):
    """The bytes are not one well-formed, allowed msgpack object (:mod:`xlink.canonical`); each
    format turns it into its own typed error (``RemoteProtocolError``, ``ReleaseRejected``)."""

    __reduce__ = _reduce


class Truncated(Malformed):
    """The bytes end before the object does."""
