"""Tamper-evident audit log: hash-chained entries, signed checkpoints, verification
(DESIGN §2 step 8; reference: docs/audit.md).

Usage::

    with AuditLog.open(path, signing_key=key) as log:
        log.append(AuditEvent.SESSION_STARTED, {...}, now=now)
    report = verify_log(path, key.verify_key)

Entries hold only a closed vocabulary of typed fields (counts, hex ids, enum names, agency
ids, purposes and reason codes), checked before anything is written: no plaintext identity,
secret or token can be logged by mistake. Time is always a parameter.
"""

from __future__ import annotations

from xlink.audit._anchors import (
    CHECKPOINTS_FORMAT,
    CheckpointsFile,
    PublishedCheckpoint,
    dump_checkpoints,
    load_checkpoints,
    make_checkpoint,
)
from xlink.audit._encoding import DST_CHECKPOINT, DST_ENTRY, GENESIS_HASH
from xlink.audit._log import MAX_CHECKPOINT_EVERY, AuditLog, Checkpoint, Entry
from xlink.audit._verify import VerifyReport, verify_log
from xlink.audit._vocab import FIELDS, KINDS, AuditEvent, FieldType, FieldValue, check_fields

__all__ = [
    "CHECKPOINTS_FORMAT",
    "DST_CHECKPOINT",
    "DST_ENTRY",
    "FIELDS",
    "GENESIS_HASH",
    "KINDS",
    "MAX_CHECKPOINT_EVERY",
    "AuditEvent",
    "AuditLog",
    "Checkpoint",
    "CheckpointsFile",
    "Entry",
    "FieldType",
    "FieldValue",
    "PublishedCheckpoint",
    "VerifyReport",
    "check_fields",
    "dump_checkpoints",
    "load_checkpoints",
    "make_checkpoint",
    "verify_log",
]
