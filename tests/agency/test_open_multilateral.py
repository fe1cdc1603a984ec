"""An agency opens under a multilateral MOU through its pair view (``Agency.open(...,
peer=...)``, docs/mou.md §8): for every pair with terms, from either side, to the same MOU and
digest; refused without a peer, for a pair without terms, and at the handshake when the two sides
hold different multilateral documents."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _two_agencies import small_files

from xlink.agency import Agency, exchange_in_process
from xlink.ceremony import HubCeremonyFiles, demo_ceremony, hub_ceremony
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.error_codes import AbortCode
from xlink.errors import InputError, MouRefused, ProtocolError
from xlink.linkage.schema import schema_digest
from xlink.policy import (
    SignedMultilateralMou,
    accept_multilateral,
    dump_multilateral,
    load_multilateral,
    mou_digest,
    multilateral_to_document,
    pair_mou,
    sign_multilateral,
    validate_multilateral,
)

PASSPHRASE = b"multilateral agency tests, not secret"
RCMP, CBSA, DHS = "CA-RCMP", "CA-CBSA", "US-DHS"


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> HubCeremonyFiles:
    return hub_ceremony(
        tmp_path_factory.mktemp("hub-ceremony"),
        passphrase=PASSPHRASE,
        now=_now(),
        rng=system_random,
        approval_required=False,
    )


def _pairs(c: HubCeremonyFiles) -> list[tuple[str, str]]:
    return list(load_multilateral(c.mou).mou.pairs())


def test_the_ceremony_wrote_every_file(ceremony: HubCeremonyFiles) -> None:
    assert set(ceremony.keys) == set(ceremony.bundles) == {RCMP, CBSA, DHS}
    assert ceremony.hub_key.name == "hub.key" and ceremony.mou.name == "hub-mou.toml"
    signed = load_multilateral(ceremony.mou)
    assert set(signed.signatures) == {RCMP, CBSA, DHS}
    assert accept_multilateral(signed, local_agency=None, today=_now().date()) == signed.mou
    assert _pairs(ceremony) == [(CBSA, RCMP), (CBSA, DHS), (RCMP, DHS)]


def test_every_pair_with_terms_opens_from_both_sides(
    ceremony: HubCeremonyFiles, tmp_path: Path
) -> None:
    multi = load_multilateral(ceremony.mou).mou
    for a, b in _pairs(ceremony):
        digests = set()
        for us, peer in ((a, b), (b, a)):
            work = tmp_path / f"{us}-with-{peer}"
            rng = DeterministicRandom(f"{us}-{peer}")
            with ceremony.open_agency(
                us, peer, work, passphrase=PASSPHRASE, clock=_now, rng=rng
            ) as agency:
                assert agency.agency_id == us and agency.peer_id == peer
                assert agency.mou == pair_mou(multi, us, peer)
                assert agency.mou.id == f"{multi.id}/{a}/{b}"
                assert schema_digest(agency.schema) == multi.schema_digest
                digests.add(mou_digest(agency.mou))
        assert len(digests) == 1  # what both compare in the handshake


def test_a_multilateral_mou_needs_a_peer(ceremony: HubCeremonyFiles, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="name the peer"):
        Agency.open(
            tmp_path / "work",
            agency=RCMP,
            keys_dir=ceremony.keys[RCMP],
            passphrase=PASSPHRASE,
            mou_path=ceremony.mou,
            peer_bundle_path=ceremony.bundles[DHS],
            clock=_now,
            rng=system_random,
        )
    assert not (tmp_path / "work").exists()


def test_the_bundle_must_be_the_named_peers(ceremony: HubCeremonyFiles, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"a bundle for {CBSA}, not {DHS}"):
        Agency.check(
            agency=RCMP,
            keys_dir=ceremony.keys[RCMP],
            passphrase=PASSPHRASE,
            mou_path=ceremony.mou,
            peer_bundle_path=ceremony.bundles[CBSA],
            today=_now().date(),
            peer=DHS,
        )


def _resigned(c: HubCeremonyFiles, path: Path, edit: object) -> Path:
    """The ceremony's MOU with ``edit`` applied to its document, signed again by every party
    (with the ceremony's own keys) and written to ``path``."""
    doc = copy.deepcopy(multilateral_to_document(load_multilateral(c.mou).mou))
    assert callable(edit)
    edit(doc)
    signed = SignedMultilateralMou(validate_multilateral(doc).mou)
    for agency, keys_dir in c.keys.items():
        signed = sign_multilateral(
            signed, agency, AgencyKeys.load(keys_dir, PASSPHRASE).signing_key
        )
    path.write_text(dump_multilateral(signed, "toml"), encoding="utf-8")
    return path


def test_a_pair_without_terms_is_refused(ceremony: HubCeremonyFiles, tmp_path: Path) -> None:
    def drop_cbsa_dhs(doc: dict[str, object]) -> None:
        terms = doc["terms"]
        assert isinstance(terms, list)
        doc["terms"] = [t for t in terms if set(t["parties"]) != {CBSA, DHS}]

    mou = _resigned(ceremony, tmp_path / "no-cbsa-dhs.toml", drop_cbsa_dhs)
    with pytest.raises(MouRefused) as exc:
        Agency.check(
            agency=DHS,
            keys_dir=ceremony.keys[DHS],
            passphrase=PASSPHRASE,
            mou_path=mou,
            peer_bundle_path=ceremony.bundles[CBSA],
            today=_now().date(),
            peer=CBSA,
        )
    assert exc.value.reasons == (f"no-terms:{CBSA}+{DHS}",)
    _, view, _, _ = Agency.check(
        agency=DHS,
        keys_dir=ceremony.keys[DHS],
        passphrase=PASSPHRASE,
        mou_path=mou,
        peer_bundle_path=ceremony.bundles[RCMP],
        today=_now().date(),
        peer=RCMP,
    )
    assert view.agency_ids == (RCMP, DHS)


def test_a_bilateral_mou_opens_with_its_peer_and_refuses_another(tmp_path: Path) -> None:
    c = demo_ceremony(tmp_path / "bilateral", passphrase=PASSPHRASE, now=_now(), rng=system_random)

    def check(peer: str | None) -> tuple[str, ...]:
        _, mou, _, _ = Agency.check(
            agency=RCMP,
            keys_dir=c.keys[RCMP],
            passphrase=PASSPHRASE,
            mou_path=c.mou,
            peer_bundle_path=c.bundles[DHS],
            today=_now().date(),
            peer=peer,
        )
        return mou.agency_ids

    assert check(None) == check(DHS) == (RCMP, DHS)
    with pytest.raises(MouRefused) as exc:
        check(CBSA)
    assert exc.value.reasons == (f"not-a-party:{CBSA}",)


def test_a_pair_exchanges_under_its_view(ceremony: HubCeremonyFiles, tmp_path: Path) -> None:
    """CA-RCMP and US-DHS run a whole PSI exchange in process under the pair view: the
    handshake compares the view's id and digest, derived on each side."""
    files = small_files(tmp_path)  # CA-RCMP and US-DHS watchlist subsets
    ca = ceremony.open_agency(
        RCMP, DHS, tmp_path / "ca", passphrase=PASSPHRASE, clock=_now, rng=DeterministicRandom(1)
    )
    us = ceremony.open_agency(
        DHS, RCMP, tmp_path / "us", passphrase=PASSPHRASE, clock=_now, rng=DeterministicRandom(2)
    )
    with ca, us:
        sides = {RCMP: ca.prepare(files[RCMP]), DHS: us.prepare(files[DHS])}
        first, second = asyncio.run(exchange_in_process((ca, sides[RCMP]), (us, sides[DHS])))
    view_id = f"{load_multilateral(ceremony.mou).mou.id}/{RCMP}/{DHS}"
    assert first.mou_id == second.mou_id == view_id
    assert first.decided == second.decided > 0


def test_different_multilateral_documents_fail_the_handshake(
    ceremony: HubCeremonyFiles, tmp_path: Path
) -> None:
    """US-DHS holds a version of the MOU that differs only in the domestic pair's terms (not
    its own pair's): the RCMP + DHS pair views differ in digest, and the session aborts."""

    def domestic_quota(doc: dict[str, object]) -> None:
        terms = doc["terms"]
        assert isinstance(terms, list)
        for t in terms:
            if set(t["parties"]) == {RCMP, CBSA}:
                t["exchange"]["query_quota_per_day"] += 1

    other = _resigned(ceremony, tmp_path / "other.toml", domestic_quota)
    files = small_files(tmp_path)
    ca = ceremony.open_agency(
        RCMP, DHS, tmp_path / "ca", passphrase=PASSPHRASE, clock=_now, rng=DeterministicRandom(3)
    )
    us = Agency.open(
        tmp_path / "us",
        agency=DHS,
        keys_dir=ceremony.keys[DHS],
        passphrase=PASSPHRASE,
        mou_path=other,
        peer_bundle_path=ceremony.bundles[RCMP],
        clock=_now,
        rng=DeterministicRandom(4),
        peer=RCMP,
    )
    with ca, us:
        assert ca.mou.id == us.mou.id and mou_digest(ca.mou) != mou_digest(us.mou)
        sides = (ca.prepare(files["CA-RCMP"]), us.prepare(files["US-DHS"]))
        with pytest.raises(ProtocolError) as exc:
            asyncio.run(exchange_in_process((ca, sides[0]), (us, sides[1])))
    assert getattr(exc.value, "code", None) is AbortCode.MOU_MISMATCH
