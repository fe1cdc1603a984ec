"""The key and MOU ceremony of docs/keys.md §5 in one call, for the demo and the end-to-end
tests: keys for both agencies of the bundled sample MOU, the template filled and signed by both
(:func:`demo_ceremony`); or keys for the three agencies and the hub of the bundled multilateral
sample, its template filled and signed by all three (:func:`hub_ceremony`, docs/mou.md §8).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from xlink.agency import Agency
from xlink.crypto.envelope import DEFAULT_KDF, KdfParams
from xlink.crypto.hub_key import HUB_KEY_FILE, HubKey
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import RandomSource
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import (
    PartyKeys,
    SignedMultilateralMou,
    dump_mou,
    dump_multilateral,
    load_hub_template,
    load_sample_template,
    parse_mou_template,
    sign_mou,
    sign_multilateral,
)
from xlink.prepare import StrPath

__all__ = ["HUB_MOU_FILE", "CeremonyFiles", "HubCeremonyFiles", "demo_ceremony", "hub_ceremony"]

#: Where :func:`hub_ceremony` writes the signed multilateral MOU, in its directory.
HUB_MOU_FILE = "hub-mou.toml"


@dataclass(frozen=True, slots=True)
class CeremonyFiles:
    """What :func:`demo_ceremony` wrote: a key directory and public bundle per agency (by
    agency id), and the MOU both signed."""

    keys: dict[str, Path]
    bundles: dict[str, Path]
    mou: Path

    def open_agency(
        self,
        agency: str,
        workdir: StrPath,
        *,
        passphrase: bytes,
        clock: Callable[[], datetime],
        rng: RandomSource,
    ) -> Agency:
        """:meth:`Agency.open <xlink.agency.Agency.open>` for ``agency`` with its keys, the
        signed MOU and the other agency's bundle, in ``workdir``."""
        (peer,) = (other for other in self.bundles if other != agency)
        return Agency.open(
            workdir,
            agency=agency,
            keys_dir=self.keys[agency],
            passphrase=passphrase,
            mou_path=self.mou,
            peer_bundle_path=self.bundles[peer],
            clock=clock,
            rng=rng,
        )

    @contextlib.contextmanager
    def open_agencies(
        self,
        workdirs: Mapping[str, StrPath],
        *,
        passphrase: bytes,
        clock: Callable[[], datetime],
        rng_of: Callable[[str], RandomSource],
    ) -> Iterator[dict[str, Agency]]:
        """:meth:`open_agency` for each agency of ``workdirs`` (agency id -> workdir), its
        randomness from ``rng_of(agency)``; all closed on leaving."""
        with contextlib.ExitStack() as stack:
            yield {
                agency: stack.enter_context(
                    self.open_agency(
                        agency, work, passphrase=passphrase, clock=clock, rng=rng_of(agency)
                    )
                )
                for agency, work in workdirs.items()
            }


def demo_ceremony(
    directory: StrPath,
    *,
    passphrase: bytes,
    now: datetime,
    rng: RandomSource,
    approval_required: bool | None = None,
    valid_days: int = 2,
    query_quota_per_day: int | None = None,
    padding_bucket: int | None = None,
    kdf: KdfParams = DEFAULT_KDF,
    linkage: Mapping[str, object] | None = None,
    max_set_size: int | None = None,
    reciprocal: bool = False,
) -> CeremonyFiles:
    """The ceremony of docs/keys.md §5 in one call, on the bundled sample template: keys for
    both agencies (TLS certificates valid ``valid_days``), the template filled with both
    bundles and the default schema's digest, valid from ``now``'s date for ``valid_days``, and
    signed by both. ``approval_required``, ``query_quota_per_day`` and ``padding_bucket``
    override the template's (``None``: keep it); ``linkage`` members (``weights``, ``links``,
    ``match_threshold``) are set in the template's ``linkage`` table. ``max_set_size`` sets
    both parties' (the sample's 65,536 padded tokens hold a few thousand records a side; a
    benchmark's lists need more), with a daily budget of 16 sessions at that size.
    ``reciprocal`` sets ``release.reciprocal`` (xlink-release-v1 §10.5).

    ``kdf`` seals the key directories (docs/keys.md §2): the real
    :data:`~xlink.crypto.envelope.DEFAULT_KDF` by default, as ``xlink demo`` uses; the test
    suite makes hundreds of ceremonies and passes (or, in tests/conftest.py, defaults to)
    :data:`~xlink.crypto.envelope.TEST_KDF`, so as not to pay a second per ceremony."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    template = load_sample_template()
    exchange = {"query_quota_per_day": query_quota_per_day, "padding_bucket": padding_bucket}
    if max_set_size is not None:
        exchange["set_size_budget_per_day"] = 16 * max_set_size
    changed = approval_required is not None or reciprocal or linkage
    if changed or any(v is not None for v in exchange.values()):
        doc = json.loads(template.document)
        for party in doc["parties"]:
            party["max_set_size"] = max_set_size or party["max_set_size"]
        if approval_required is not None:
            doc["release"]["approval_required"] = approval_required
        if reciprocal:
            doc["release"]["reciprocal"] = True
        doc["linkage"].update(linkage or {})
        doc["exchange"].update({k: v for k, v in exchange.items() if v is not None})
        template = parse_mou_template(json.dumps(doc), "json")
    generated = {
        agency: AgencyKeys.generate(agency, rng=rng, now=now, valid_days=valid_days)
        for agency in template.agency_ids
    }
    keys_dirs: dict[str, Path] = {}
    bundles: dict[str, Path] = {}
    for agency, agency_keys in generated.items():
        keys_dirs[agency] = base / f"{agency.lower()}-keys"
        bundles[agency] = agency_keys.save(keys_dirs[agency], passphrase, params=kdf, rng=rng)
    mou = template.fill(
        {
            agency: PartyKeys(k.signing_key.verify_key, k.sealing_key.public_key, k.tls.fingerprint)
            for agency, k in generated.items()
        },
        schema_digest=schema_digest(load_default_schema()),
        valid_from=now.date(),
        valid_until=now.date() + _dt.timedelta(days=valid_days),
    )
    signed = None
    for agency, k in generated.items():
        signed = sign_mou(signed if signed is not None else mou, agency, k.signing_key)
    assert signed is not None
    mou_path = base / "mou.toml"
    mou_path.write_text(dump_mou(signed, "toml"), encoding="utf-8")
    return CeremonyFiles(keys_dirs, bundles, mou_path)


@dataclass(frozen=True, slots=True)
class HubCeremonyFiles:
    """What :func:`hub_ceremony` wrote: a key directory and public bundle per agency (by agency
    id), the hub's sealed key file, and the multilateral MOU every agency signed."""

    keys: dict[str, Path]
    bundles: dict[str, Path]
    hub_key: Path
    mou: Path

    def open_agency(
        self,
        agency: str,
        peer: str,
        workdir: StrPath,
        *,
        passphrase: bytes,
        clock: Callable[[], datetime],
        rng: RandomSource,
    ) -> Agency:
        """:meth:`Agency.open <xlink.agency.Agency.open>` for ``agency`` with its keys, under
        the multilateral MOU's view of the pair ``agency`` + ``peer``, with ``peer``'s bundle,
        in ``workdir``."""
        return Agency.open(
            workdir,
            agency=agency,
            keys_dir=self.keys[agency],
            passphrase=passphrase,
            mou_path=self.mou,
            peer_bundle_path=self.bundles[peer],
            clock=clock,
            rng=rng,
            peer=peer,
        )


def hub_ceremony(
    directory: StrPath,
    *,
    passphrase: bytes,
    now: datetime,
    rng: RandomSource,
    valid_days: int = 2,
    approval_required: bool | None = None,
    kdf: KdfParams = DEFAULT_KDF,
) -> HubCeremonyFiles:
    """:func:`demo_ceremony` for the bundled multilateral sample (``hub-demo.toml``): keys and
    a public bundle for each of its agencies (TLS certificates valid ``valid_days``), the hub's
    key sealed as ``hub.key``, the template filled with every bundle, the hub's verify key and
    the default schema's digest, valid from ``now``'s date for ``valid_days``, signed by every
    agency and written as ``hub-mou.toml``. ``approval_required`` overrides every pair's
    ``release.approval_required`` (``None``: keep the template's). All keys are sealed under
    ``passphrase`` with ``kdf`` (the test suite makes it :data:`~xlink.crypto.envelope.TEST_KDF`
    by default, tests/conftest.py)."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    template = load_hub_template()
    generated = {
        agency: AgencyKeys.generate(agency, rng=rng, now=now, valid_days=valid_days)
        for agency in template.agency_ids
    }
    keys_dirs: dict[str, Path] = {}
    bundles: dict[str, Path] = {}
    for agency, agency_keys in generated.items():
        keys_dirs[agency] = base / f"{agency.lower()}-keys"
        bundles[agency] = agency_keys.save(keys_dirs[agency], passphrase, params=kdf, rng=rng)
    hub = HubKey.generate(template.hub_id, rng=rng)
    hub_path = hub.save(base / HUB_KEY_FILE, passphrase, params=kdf, rng=rng)
    mou = template.fill(
        {
            agency: PartyKeys(k.signing_key.verify_key, k.sealing_key.public_key, k.tls.fingerprint)
            for agency, k in generated.items()
        },
        hub_key=hub.verify_key,
        schema_digest=schema_digest(load_default_schema()),
        valid_from=now.date(),
        valid_until=now.date() + _dt.timedelta(days=valid_days),
        approval_required=approval_required,
    )
    signed = SignedMultilateralMou(mou)
    for agency, k in generated.items():
        signed = sign_multilateral(signed, agency, k.signing_key)
    mou_path = base / HUB_MOU_FILE
    mou_path.write_text(dump_multilateral(signed, "toml"), encoding="utf-8")
    return HubCeremonyFiles(keys_dirs, bundles, hub_path, mou_path)
