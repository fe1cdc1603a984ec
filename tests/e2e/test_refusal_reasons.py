"""The PEER_REFUSED audit reason (a RefusalReason value) and the --json failure object
(xlink.cli._common.failure_json), without processes or sockets."""

from __future__ import annotations

import pytest

from xlink.audit import AuditEvent, check_fields
from xlink.cli._common import failure_json
from xlink.errors import InputError, PolicyDenied
from xlink.protocol.abort import AbortCode
from xlink.transport import ConnectionLost, PeerAborted, PeerRefused, RefusalReason


def test_every_transport_refusal_is_a_valid_audit_reason() -> None:
    assert {"no-peer", "connect-failed"} <= {r.value for r in RefusalReason}
    for reason in RefusalReason:
        assert PeerRefused(reason).reason.value == reason.value
        check_fields(AuditEvent.PEER_REFUSED, {"peer": "US-DHS", "reason": reason.value})


@pytest.mark.parametrize(
    ("error", "exit_code", "type_", "code", "reason"),
    [
        (PeerRefused(RefusalReason.NO_CERTIFICATE), 4, "PeerRefused", None, "no-certificate"),
        (PeerAborted(AbortCode.MOU_MISMATCH, "digest"), 4, "PeerAborted", "MOU_MISMATCH", None),
        (ConnectionLost("peer closed the connection"), 4, "ConnectionLost", "CONNECTION_LOST",
         None),
        (InputError("keys unusable"), 3, "InputError", None, None),
        (PolicyDenied(["expired", "not-a-party"]), 5, "PolicyDenied", None, "expired"),
        (FileNotFoundError(2, "No such file or directory", "x.csv"), 3, "FileNotFoundError",
         None, None),
    ],
)  # fmt: skip
def test_failure_json(
    error: BaseException, exit_code: int, type_: str, code: str | None, reason: str | None
) -> None:
    doc = failure_json(error)
    assert (doc["ok"], doc["exit_code"]) == (False, exit_code)
    fields = doc["error"]
    assert isinstance(fields, dict)
    assert (fields["type"], fields["code"], fields["reason"]) == (type_, code, reason)
    assert isinstance(fields["detail"], str) and fields["detail"]


def test_failure_json_of_a_bug_carries_no_message() -> None:
    doc = failure_json(RuntimeError("secret-ish internals"))
    assert doc["exit_code"] == 70
    assert "secret-ish" not in str(doc)
