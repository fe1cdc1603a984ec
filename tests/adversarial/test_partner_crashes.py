"""Partner-reachable crashes become xlink errors (issue 11, item 8).

A partner controls the bytes of its receipts, its consent tokens and its public bundle. Before
this change, a correctly signed receipt or a consent token dated past year 9999 raised
``OverflowError`` (``xlink serve`` exited 70 after its releases were delivered), and a bundle
whose X.509 certificate has version field 3 raised cryptography's ``InvalidVersion`` (``xlink
mou fill`` exited 70). Each test below fails on that code.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.keyfiles import AgencyKeys, load_public_bundle, parse_public_bundle
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.tls_certs import certificate_fingerprint, load_certificate
from xlink.errors import SchemaError
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import Mou, PartyKeys, load_sample_template
from xlink.release import ReleaseRejected, SealedRelease, verify_receipt
from xlink.release.codec import lp, pack
from xlink.release.receipt import DST_RECEIPT
from xlink.store.consent import DST_CONSENT, ConsentToken

CA, US = "CA-RCMP", "US-DHS"
PAST_9999_US = 2**63 - 1  # the largest time the wire allows: year ~294247
SIGNING = {CA: SigningKey(b"\x0a" * 32), US: SigningKey(b"\x0b" * 32)}
RELEASE_ID, SESSION_ID, DIGEST = b"\x01" * 16, b"\x02" * 16, b"\x03" * 32


def _mou() -> Mou:
    rng = DeterministicRandom("partner crashes")
    keys = {
        agency: PartyKeys(SIGNING[agency].verify_key, SealingKey.generate(rng).public_key, rng(32))
        for agency in (CA, US)
    }
    return load_sample_template().fill(keys, schema_digest=schema_digest(load_default_schema()))


# -- receipts and consent tokens dated past year 9999 ------------------------------------------


def signed_receipt(received_us: int) -> bytes:
    """A receipt (version 2, no checkpoint) from US-DHS for CA-RCMP's release, correctly
    signed, dated ``received_us``."""
    body = pack([RELEASE_ID, SESSION_ID, DIGEST, CA, US, received_us, None], version=2)
    signature = SIGNING[US].sign(hashlib.sha256(lp(DST_RECEIPT) + body).digest())
    return pack([body, signature], version=2)


def signed_consent(expires_us: int) -> bytes:
    """A consent token signed by the originator CA-RCMP, expiring at ``expires_us``."""
    body = pack([RELEASE_ID, "MOU-CA-US", "GB-NCA", "investigation", expires_us])
    return pack([body, SIGNING[CA].sign(hashlib.sha256(lp(DST_CONSENT) + body).digest())])


def test_a_signed_receipt_dated_past_year_9999_is_malformed() -> None:
    mou = _mou()
    release = SealedRelease(RELEASE_ID, SESSION_ID, DIGEST, CA, US, "watchlist", b"")
    with pytest.raises(ReleaseRejected) as exc:
        verify_receipt(signed_receipt(PAST_9999_US), mou=mou, release=release)
    assert exc.value.reason == "malformed"
    # The last microsecond a datetime holds still verifies: the bound is the datetime's.
    end = datetime.max.replace(tzinfo=UTC)
    last_us = (end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    receipt = verify_receipt(signed_receipt(last_us), mou=mou, release=release)
    assert receipt.received_at == end
    with pytest.raises(ReleaseRejected):
        verify_receipt(signed_receipt(last_us + 1), mou=mou, release=release)


def test_a_consent_token_dated_past_year_9999_is_malformed() -> None:
    with pytest.raises(ReleaseRejected) as exc:
        ConsentToken.from_bytes(signed_consent(PAST_9999_US))
    assert exc.value.reason == "malformed"
    assert ConsentToken.from_bytes(signed_consent(10**15)).expires_at.year == 2001


# -- a partner bundle whose certificate has a bad version --------------------------------------


def _bundle_document() -> dict[str, str]:
    keys = AgencyKeys.generate(
        CA, rng=DeterministicRandom("bundle"), now=datetime.now(UTC), valid_days=2
    )
    return keys.public_bundle().to_document()


def _with_version(cert_pem: bytes, version: int) -> bytes:
    """``cert_pem`` with the INTEGER in tbsCertificate's ``[0] EXPLICIT`` version tag set to
    ``version``: SEQUENCE (cert) / SEQUENCE (tbs) / A0 03 02 01 <version>. The signature no
    longer verifies, which does not matter: the parse fails first."""
    der = bytearray(
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    )
    at = der.index(b"\xa0\x03\x02\x01")
    assert at < 10 and der[at + 4] == 2  # v3, the first field of the tbsCertificate
    der[at + 4] = version
    b64 = base64.encodebytes(bytes(der)).replace(b"\n", b"")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def _bad_version_bundle() -> dict[str, str]:
    doc = _bundle_document()
    bad = _with_version(doc["tls_cert_pem"].encode("ascii"), 3)
    doc["tls_cert_pem"] = bad.decode("ascii")
    pem = bad.split(b"-----")[2]
    doc["tls_cert_sha256"] = hashlib.sha256(base64.b64decode(pem)).hexdigest()
    return doc


def test_a_certificate_with_a_bad_version_is_a_schema_error() -> None:
    doc = _bad_version_bundle()
    with pytest.raises(x509.InvalidVersion):  # what cryptography itself raises
        x509.load_pem_x509_certificate(doc["tls_cert_pem"].encode("ascii"))
    with pytest.raises(ValueError):
        load_certificate(doc["tls_cert_pem"].encode("ascii"))
    with pytest.raises(ValueError):
        certificate_fingerprint(doc["tls_cert_pem"].encode("ascii"))
    with pytest.raises(SchemaError) as exc:
        parse_public_bundle(json.dumps(doc))
    assert list(exc.value.errors) == ["tls_cert_pem: must be one PEM X.509 certificate"]


def test_a_bundle_created_past_year_9999_in_utc_is_a_schema_error(tmp_path: Path) -> None:
    doc = _bundle_document()
    doc["created"] = "9999-12-31T23:59:59-05:00"  # a valid ISO time, but not in UTC
    path = tmp_path / "public.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SchemaError) as exc:
        load_public_bundle(path)
    assert list(exc.value.errors) == [
        f"{path}: created: must be an ISO 8601 date and time with a UTC offset"
    ]


def test_mou_fill_with_a_bad_version_bundle_exits_3_not_70(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ca-public.json"
    bad.write_text(json.dumps(_bad_version_bundle()), encoding="utf-8")
    us = AgencyKeys.generate(
        US, rng=DeterministicRandom("us bundle"), now=datetime.now(UTC), valid_days=2
    )
    good = tmp_path / "us-public.json"
    good.write_text(us.public_bundle().to_json(), encoding="utf-8")
    out = tmp_path / "mou.toml"
    code = main(["mou", "fill", "--bundle", str(bad), "--bundle", str(good), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == ExitCode.INPUT, err
    assert "tls_cert_pem: must be one PEM X.509 certificate" in err
    assert "Traceback" not in err and "BEGIN" not in err
    assert not out.exists()


def test_the_reference_certificate_is_v3_and_parses() -> None:
    """The crafted certificate differs from a valid one in one byte: the test's own check."""
    doc = _bundle_document()
    assert _with_version(doc["tls_cert_pem"].encode("ascii"), 2) == doc["tls_cert_pem"].encode()
    assert dataclasses.is_dataclass(parse_public_bundle(json.dumps(doc)))
