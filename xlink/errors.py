"""The one exception tree of xlink, rooted at :class:`XlinkError`.

Whose fault it is decides the class: the caller's misuse (:class:`LocalProtocolError`, or a plain
``TypeError``/``ValueError`` for a wrong argument), the peer's misbehaviour
(:class:`RemoteProtocolError`, always with an :class:`~xlink.protocol.abort.AbortCode`), bad input
data (:class:`InputError` and subclasses) and policy refusals (:class:`PolicyDenied`). Any other
exception escaping xlink is a bug.

Messages never contain plaintext identities, secret keys or unblinded tokens: they name a line, a
field and a reason, never the offending value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xlink.protocol.abort import AbortCode

__all__ = [
    "AbortCode",
    "DecryptionError",
    "EvaluationError",
    "FieldError",
    "InputError",
    "InternalProtocolError",
    "LoadError",
    "LocalProtocolError",
    "PolicyDenied",
    "ProtocolError",
    "RemoteProtocolError",
    "SchemaError",
    "XlinkError",
]


class XlinkError(Exception):
    """Root of every exception xlink raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of one input row.

    ``line`` is the 1-based physical line of the input file (the header is line 1 in a CSV file),
    or the 1-based row number of a DataFrame. ``field`` is the column as the input names it.
    ``reason`` says what is wrong without quoting the value.
    """

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field!r}: {self.reason}"


class InputError(XlinkError):
    """Input data that cannot be used as it is."""


class EvaluationError(InputError):
    """A data set cannot be evaluated as given: too small to fit weights on its development
    split, or a party's records could not be loaded (``xlink.evaluation``)."""


class LoadError(InputError):
    """A whole input cannot be loaded (unreadable, not UTF-8, empty, missing columns...).

    Row-level problems are not raised: they are collected as :class:`FieldError` and the row goes
    to the rejects file. This is raised only when no row can be trusted.
    """

    def __init__(self, source: str, reason: str, errors: Sequence[FieldError] = ()) -> None:
        self.source = source
        self.reason = reason
        self.errors = tuple(errors)
        detail = "".join(f"\n  {e}" for e in self.errors)
        super().__init__(f"{source}: {reason}{detail}")


class SchemaError(InputError):
    """A linkage schema or MOU document is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__(
            f"{len(self.errors)} error(s):" + "".join(f"\n  - {e}" for e in self.errors)
        )


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


class PolicyDenied(XlinkError):
    """The MOU forbids what was asked; ``reasons`` are machine-readable codes."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("denied by policy: " + ", ".join(self.reasons))


class DecryptionError(XlinkError):
    """A sealed or signed object failed to open or verify. Deliberately says nothing more."""

    def __init__(self) -> None:
        super().__init__("decryption or verification failed")
