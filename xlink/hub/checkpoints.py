"""The hub's cosigned checkpoints (xlink-hub-v1 §7): which of an agency's audit checkpoints
the hub keeps and signs, and which it refuses and keeps apart as evidence of a rewritten log."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from xlink.audit import PublishedCheckpoint
from xlink.crypto._public_docs import audit_endorsement_message
from xlink.crypto.keys import SigningKey
from xlink.error_codes import HubReason
from xlink.errors import XlinkError
from xlink.hub.schedule import MAX_CHECKPOINTS_PER_DAY, Schedule
from xlink.hub.wire import CheckpointOffer, Cosigned, HubMessage, Refused, cosign_message
from xlink.policy.multilateral import MultilateralMou

__all__ = ["cosign_offer"]

log = logging.getLogger("xlink.hub")


def cosign_offer(
    schedule: Schedule,
    mou: MultilateralMou,
    key: SigningKey,
    agency: str,
    offer: CheckpointOffer,
    *,
    now: datetime,
) -> HubMessage:
    """Keep and cosign ``agency``'s checkpoint of its log with ``offer.log``: only a log of a
    pair with terms, signed by an audit key the agency's MOU signing key endorses, in order,
    under one audit key; a checkpoint it kept, offered again (the latest or an earlier one),
    is cosigned again over what was offered (the same answer for the same offer); a
    contradicting one is kept as evidence (the first
    :data:`~xlink.hub.schedule.MAX_CONFLICTS_KEPT`, each once) and refused (``conflict``);
    beyond :data:`~xlink.hub.schedule.MAX_CHECKPOINTS_PER_DAY` new ones a day for one log,
    refused (``busy``). Returns COSIGNED or REFUSED."""
    if mou.terms_for(agency, offer.log) is None:
        return Refused(HubReason.NO_TERMS, "")
    endorsed = audit_endorsement_message(agency, offer.published.audit_key)
    try:
        offer.published.verify()
        mou.party(agency).verify_key.verify(offer.endorsement, endorsed)
    except XlinkError:
        return Refused(HubReason.BAD_SIGNATURE, "")
    text = json.dumps(offer.published.to_json(), sort_keys=True)
    seq = offer.published.checkpoint.seq
    same = schedule.kept_checkpoint(agency, offer.log, seq)
    if same is not None and same[0] == text:
        # Offered again (the latest or an earlier one kept): signed again over this very
        # offer, which gives the kept bytes when the endorsement is the one kept (Ed25519 is
        # deterministic), and a cosignature the agency can verify when the endorsement is
        # another valid signature of the same key (a signer that draws its nonce) or of a
        # key the MOU names since.
        return Cosigned(offer.log, seq, key.sign(cosign_message(mou.hub.hub_id, agency, offer)))
    last = schedule.last_checkpoint(agency, offer.log)
    if last is not None:
        last_seq, last_text, _ = last
        kept = PublishedCheckpoint.from_json(json.loads(last_text))
        if seq <= last_seq or kept.audit_key != offer.published.audit_key:
            if schedule.keep_conflict(agency, offer.log, seq, text, now):
                log.warning(
                    "%s offered a checkpoint contradicting its log with %s", agency, offer.log
                )
            return Refused(HubReason.CONFLICT, "")
    if schedule.checkpoints_on(agency, offer.log, now) >= MAX_CHECKPOINTS_PER_DAY:
        return Refused(HubReason.BUSY, "")  # one per exchange job: a flood is kept no more
    signature = key.sign(cosign_message(mou.hub.hub_id, agency, offer))
    schedule.keep_checkpoint(agency, offer.log, seq, text, signature, now)
    return Cosigned(offer.log, seq, signature)
