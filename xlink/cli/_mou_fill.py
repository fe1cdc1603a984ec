"""What ``xlink mou fill`` reads besides the template (docs/mou.md): the parties' public
bundles, the ``--max-set-size`` values by agency and a multilateral MOU's ``--hub-key-pub``,
each checked with a clear error."""

from __future__ import annotations

import re

from xlink.crypto.keyfiles import PublicBundle, load_public_bundle
from xlink.crypto.keys import VerifyKey
from xlink.documents import DocumentError, parse_document, read_document
from xlink.errors import InputError
from xlink.policy import MouTemplate, MultilateralTemplate, PartyKeys

__all__ = ["bundle_keys", "hub_key", "max_set_sizes", "party_keys"]


def max_set_sizes(
    given: list[tuple[str | None, int]], template: MouTemplate | MultilateralTemplate
) -> dict[str, int]:
    """The ``--max-set-size`` values by agency: ``AGENCY=N`` for that party, a bare ``N`` for
    every other party. A party the template gives no bound must get one here."""
    parties = template.agency_ids
    named: dict[str, int] = {}
    default: int | None = None
    for agency, size in given:
        if agency is None:
            if default is not None:
                raise InputError("--max-set-size: a value without AGENCY= given twice")
            default = size
        elif agency not in parties:
            raise InputError(f"--max-set-size: {agency} is not a party in the template")
        elif agency in named:
            raise InputError(f"--max-set-size: {agency} given twice")
        else:
            named[agency] = size
    sizes = {a: named.get(a, default) for a in parties}
    in_template = template.max_set_sizes
    missing = [a for a, size in sizes.items() if size is None and a not in in_template]
    if missing:
        raise InputError(
            f"--max-set-size: none given for {', '.join(missing)} (the template does not set it)"
        )
    return {a: size for a, size in sizes.items() if size is not None}


def party_keys(bundle: PublicBundle) -> PartyKeys:
    return PartyKeys(bundle.verify_key, bundle.sealing_key, bundle.tls_cert_sha256)


_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def hub_key(value: str, template: MultilateralTemplate) -> VerifyKey:
    """``--hub-key-pub``: 64 hex digits, or a file holding them, or a JSON file with a
    ``verify_key`` member (``hub_id``, when there, must be the template's hub)."""
    text = value
    if not _HEX_KEY.fullmatch(value):
        try:
            raw = read_document(value)
        except OSError as exc:
            raise InputError(f"--hub-key-pub: cannot read {value}: {exc.strerror}") from None
        text = raw.decode("utf-8", errors="replace").strip()
        if text.startswith("{"):
            try:
                doc = parse_document(raw, "json")
            except DocumentError as exc:
                raise InputError(f"--hub-key-pub: {value}: {exc.reason}") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("verify_key"), str):
                raise InputError(f"--hub-key-pub: {value}: no verify_key member")
            if "hub_id" in doc and doc["hub_id"] != template.hub_id:
                raise InputError(
                    f"--hub-key-pub: {value}: the key of another hub, not {template.hub_id}"
                )
            text = doc["verify_key"]
    if not _HEX_KEY.fullmatch(text):
        raise InputError("--hub-key-pub: not 64 hex digits (an Ed25519 public key)")
    try:
        return VerifyKey(bytes.fromhex(text))
    except ValueError:
        raise InputError("--hub-key-pub: not a valid Ed25519 public key") from None


def bundle_keys(paths: list[str], agency_ids: tuple[str, ...]) -> dict[str, PartyKeys]:
    """Each party's keys from its ``--bundle``; every party needs one, no other may be given."""
    bundles = [load_public_bundle(path) for path in paths]
    keys: dict[str, PartyKeys] = {}
    for path, bundle in zip(paths, bundles, strict=True):
        if bundle.agency_id in keys:
            raise InputError(f"{path}: a second bundle for {bundle.agency_id}")
        if bundle.agency_id not in agency_ids:
            raise InputError(f"{path}: {bundle.agency_id} is not a party in the template")
        keys[bundle.agency_id] = party_keys(bundle)
    missing = [a for a in agency_ids if a not in keys]
    if missing:
        raise InputError(f"--bundle: none given for {', '.join(missing)}")
    return keys
