"""Shared builders for the release tests: deterministic keys, the sample MOU, records, and
hypothesis strategies."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import strategies as st

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import RECORD_FIELDS, Mou, PartyKeys, load_sample_template, mou_digest
from xlink.records.model import (
    AdmiraltyGrading,
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
    Sex,
    SourceMetadata,
    UkGrading,
)
from xlink.release import ReleaseRecord, SourceHandleKey, make_source_handle
from xlink.release.policy import decide_release

CA, US = "CA-RCMP", "US-DHS"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SESSION = bytes(range(16))
HANDLES = (b"\x01" * 16, b"\x02" * 16)


def _keys(seed: str) -> tuple[SigningKey, SealingKey, bytes]:
    rng = DeterministicRandom(seed)
    return SigningKey.generate(rng), SealingKey.generate(rng), rng(32)


SIGNING = {CA: _keys("ca")[0], US: _keys("us")[0]}
SEALING = {CA: _keys("ca")[1], US: _keys("us")[1]}
OTHER_SIGNING = SigningKey(b"\x42" * 32)
OTHER_SEALING = SealingKey(b"\x43" * 32)
HANDLE_KEY = {CA: SourceHandleKey(b"\x0c" * 32), US: SourceHandleKey(b"\x0d" * 32)}
APPROVER = OTHER_SIGNING.verify_key.fingerprint()


def sample_mou(*, approval_required: bool = True) -> Mou:
    keys = {
        agency: PartyKeys(SIGNING[agency].verify_key, SEALING[agency].public_key, _keys(s)[2])
        for agency, s in ((CA, "ca"), (US, "us"))
    }
    mou = load_sample_template().fill(keys, schema_digest=schema_digest(load_default_schema()))
    return dataclasses.replace(mou, approval_required=approval_required)


MOU = sample_mou()
MOU_DIGEST = mou_digest(MOU)


def person(
    record_id: str = "CAWL-1",
    category: Category = Category.WATCHLIST,
    *,
    source_id: str = "RCMP-SRC-0001",
    grading: UkGrading | AdmiraltyGrading | None = UkGrading(2, "A"),  # noqa: B008
    payload: dict[str, str] | None = None,
) -> PersonRecord:
    return PersonRecord(
        record_id=record_id,
        category=category,
        name=PersonName(given="Grzegorz", family="Dąbrowski"),
        aliases=(PersonName(full="Greg Dabrowski"),),
        birth_date=BirthDate(1978, 4, 18),
        sex=Sex.MALE,
        nationalities=("CAN",),
        birth_place="Kraków",
        documents=(IdentityDocument("P", "AB123456", "CAN", "2031-01-01"),),
        source=SourceMetadata(source_id, grading=grading),
        payload=payload
        if payload is not None
        else {"Risk Level": "High", "Offence": "Fraud", "Remarks": "secret remark"},
    )


def release_record(
    record: PersonRecord | None = None, *, sender: str = CA, **changes: object
) -> ReleaseRecord:
    """A release as ``sender`` would build it for ``record``, then ``changes`` applied
    (to craft releases a recipient must refuse)."""
    record = record if record is not None else person()
    content = decide_release(record, MOU, originator=sender)
    rng = DeterministicRandom("release-record")
    built = ReleaseRecord(
        release_id=rng(16),
        session_id=SESSION,
        mou_id=MOU.id,
        mou_digest=MOU_DIGEST,
        originator=sender,
        recipient=MOU.peer_of(sender).agency_id,
        category=content.category,
        match_handles=HANDLES,
        created_at=T0,
        fields=content.fields,
        caveats=content.caveats,
        grading=content.grading,
        source_handle=make_source_handle(HANDLE_KEY[sender], "RCMP-SRC-0001", rng),
    )
    return dataclasses.replace(built, **changes) if changes else built  # type: ignore[arg-type]


# -- hypothesis strategies ----------------------------------------------------------------

PAYLOAD_COLUMNS = (
    "Risk Level",
    "risk_level",
    "Offence",
    "offense",
    "Remarks",
    "Threat Level",
    "Source ID",
    "source_ref",
    "Grading",
    "handling code",
    "Record ID",
)
PAYLOAD_NAMES = (
    "payload.risk_level",
    "payload.offence",
    "payload.offense",
    "payload.remarks",
    "payload.threat_level",
)

text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=0, max_size=8)
gradings = st.one_of(
    st.none(),
    st.builds(UkGrading, st.sampled_from([1, 2, 3]), st.sampled_from("ABCDE")),
    st.builds(AdmiraltyGrading, st.sampled_from("ABCDEF"), st.integers(1, 6)),
)


@st.composite
def records(draw: st.DrawFn) -> PersonRecord:
    given, family = draw(text), draw(text)
    name = PersonName(given=given, family=family) if (given or family) else PersonName(full="x")
    return PersonRecord(
        record_id="R-" + draw(st.text("0123456789", min_size=1, max_size=4)),
        category=draw(st.sampled_from(Category)),
        name=name,
        aliases=tuple(PersonName(full=a) for a in draw(st.lists(text.filter(bool), max_size=2))),
        birth_date=draw(st.none() | st.just(BirthDate(1980, 1, 2))),
        sex=draw(st.none() | st.sampled_from(Sex)),
        nationalities=tuple(draw(st.lists(st.sampled_from(["CAN", "USA"]), max_size=2))),
        birth_place=draw(text),
        source=draw(
            st.none()
            | st.builds(SourceMetadata, st.just("SRC#") | st.just("SRC#99"), grading=gradings)
        ),
        payload=draw(
            st.dictionaries(st.sampled_from(PAYLOAD_COLUMNS), text.filter(bool), max_size=5)
        ),
    )


@st.composite
def mous(draw: st.DrawFn) -> Mou:
    base = MOU.categories[0].caveats
    policies = []
    for category in draw(st.lists(st.sampled_from(Category), unique=True, min_size=1)):
        names = draw(st.lists(st.sampled_from(RECORD_FIELDS + PAYLOAD_NAMES), unique=True))
        caveats = dataclasses.replace(base, require_grading=draw(st.booleans()))
        policies.append(
            dataclasses.replace(
                MOU.categories[0],
                category=category,
                releasable_fields=tuple(names),
                caveats=caveats,
            )
        )
    return dataclasses.replace(MOU, categories=tuple(policies))
