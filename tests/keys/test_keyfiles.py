"""Agency key directories: generate, save sealed, load, public bundle (docs/keys.md). Key
directories here are sealed with the cheap TEST_KDF; the real parameters are tested in
tests/crypto/."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import stat
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xlink.crypto.envelope import (
    PURPOSE_AUDIT,
    PURPOSE_SEALING,
    PURPOSE_SIGNING,
    PURPOSE_TLS,
    TEST_KDF,
    open_secret,
)
from xlink.crypto.keyfiles import (
    AUDIT_ENDORSEMENT_FILE,
    AUDIT_KEY_FILE,
    KEY_DIR_FILES,
    KEY_PURPOSES,
    PRIVATE_KEY_FILES,
    PUBLIC_BUNDLE_FILE,
    PUBLIC_BUNDLE_FORMAT,
    SEALING_KEY_FILE,
    SIGNING_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    AgencyKeys,
    load_public_bundle,
    parse_public_bundle,
)
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.tls_certs import load_certificate
from xlink.errors import DecryptionError, InputError, SchemaError, WeakPassphrase
from xlink.policy import PartyKeys

NOW = datetime(2025, 3, 1, 12, 30, 15, 999, tzinfo=UTC)
PASSPHRASE = b"correct horse battery staple"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _keys(agency: str = "CA-RCMP", seed: str = "ca") -> AgencyKeys:
    return AgencyKeys.generate(agency, rng=DeterministicRandom(seed), now=NOW, valid_days=365)


def _secrets(keys: AgencyKeys) -> list[bytes]:
    """Every representation of private key material a leak could take."""
    tls_body = b"".join(keys.tls.key_pem.splitlines()[1:-1])
    raw = [keys.signing_key.seed(), keys.sealing_key.secret(), keys.audit_key.seed()]
    return [*raw, *(r.hex().encode() for r in raw), tls_body, PASSPHRASE]


@pytest.fixture
def saved(tmp_path: Path) -> tuple[AgencyKeys, Path]:
    keys = _keys()
    keys.save(tmp_path / "ca", PASSPHRASE, params=TEST_KDF)
    return keys, tmp_path / "ca"


def test_round_trip_generate_save_load(saved: tuple[AgencyKeys, Path]) -> None:
    keys, directory = saved
    loaded = AgencyKeys.load(directory, PASSPHRASE)
    assert loaded.agency_id == "CA-RCMP"
    assert loaded.signing_key.seed() == keys.signing_key.seed()
    assert loaded.sealing_key.secret() == keys.sealing_key.secret()
    assert loaded.tls.cert_pem == keys.tls.cert_pem
    assert loaded.tls.fingerprint == keys.tls.fingerprint
    assert loaded.tls.key_pem == keys.tls.key_pem
    assert loaded.created == datetime(2025, 3, 1, 12, 30, 15, tzinfo=UTC)
    # The loaded keys work: a signature verifies, a sealed box opens.
    keys.signing_key.verify_key.verify(loaded.signing_key.sign(b"m"), b"m")
    assert loaded.sealing_key.open(keys.sealing_key.public_key.seal(b"r")) == b"r"


def test_generation_is_deterministic_under_a_fixed_rng() -> None:
    assert _keys().public_bundle().to_json() == _keys().public_bundle().to_json()
    assert _keys().public_bundle() != _keys(seed="other").public_bundle()


def test_files_are_0600_and_exactly_the_expected_ones(tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not loosen the modes
    try:
        _keys().save(tmp_path / "ca", PASSPHRASE, params=TEST_KDF)
    finally:
        os.umask(old)
    directory = tmp_path / "ca"
    assert sorted(p.name for p in directory.iterdir()) == sorted(KEY_DIR_FILES)
    if os.name == "posix":
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for name in KEY_DIR_FILES:
            assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name


def test_private_keys_are_sealed_envelopes_of_their_purpose(
    saved: tuple[AgencyKeys, Path],
) -> None:
    keys, directory = saved
    salts = set()
    for name in PRIVATE_KEY_FILES:
        doc = json.loads((directory / name).read_bytes())
        assert doc["format"] == "xlink-sealed-key-v1", name
        assert doc["purpose"] == KEY_PURPOSES[name]
        salts.add(doc["kdf"]["salt"])
    assert len(salts) == 1  # one derivation opens the directory
    signing = open_secret(
        (directory / SIGNING_KEY_FILE).read_bytes(), PASSPHRASE, purpose=PURPOSE_SIGNING
    )
    sealing = open_secret(
        (directory / SEALING_KEY_FILE).read_bytes(), PASSPHRASE, purpose=PURPOSE_SEALING
    )
    tls = open_secret((directory / TLS_KEY_FILE).read_bytes(), PASSPHRASE, purpose=PURPOSE_TLS)
    audit = open_secret(
        (directory / AUDIT_KEY_FILE).read_bytes(), PASSPHRASE, purpose=PURPOSE_AUDIT
    )
    assert signing == keys.signing_key.seed()
    assert sealing == keys.sealing_key.secret()
    assert audit == keys.audit_key.seed() != signing
    tls_key = serialization.load_der_private_key(tls, None)  # PKCS#8 DER inside
    assert isinstance(tls_key, ec.EllipticCurvePrivateKey)
    assert (
        tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        == keys.tls.key_pem
    )
    assert (directory / TLS_CERT_FILE).read_bytes() == keys.tls.cert_pem


def test_wrong_passphrase_is_one_opaque_error(saved: tuple[AgencyKeys, Path]) -> None:
    _, directory = saved
    with pytest.raises(DecryptionError) as exc:
        AgencyKeys.load(directory, b"not the passphrase at all")
    assert str(exc.value) == "decryption or verification failed"
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


@posix_only
@pytest.mark.parametrize("name", PRIVATE_KEY_FILES)
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_refuses_key_files_others_can_read(
    saved: tuple[AgencyKeys, Path], name: str, mode: int
) -> None:
    _, directory = saved
    (directory / name).chmod(mode)
    with pytest.raises(InputError) as exc:
        AgencyKeys.load(directory, PASSPHRASE)
    message = str(exc.value)
    assert str(directory / name) in message
    assert f"{mode:04o}" in message and "too open" in message


@posix_only
def test_owner_only_modes_stricter_than_0600_load(saved: tuple[AgencyKeys, Path]) -> None:
    _, directory = saved
    for name in PRIVATE_KEY_FILES:
        (directory / name).chmod(0o400)
    assert AgencyKeys.load(directory, PASSPHRASE).agency_id == "CA-RCMP"


def test_refuses_to_overwrite_unless_asked(saved: tuple[AgencyKeys, Path]) -> None:
    _, directory = saved
    before = {name: (directory / name).read_bytes() for name in KEY_DIR_FILES}
    other = _keys(seed="replacement")
    with pytest.raises(InputError, match="refusing to overwrite"):
        other.save(directory, PASSPHRASE, params=TEST_KDF)
    assert {name: (directory / name).read_bytes() for name in KEY_DIR_FILES} == before
    other.save(directory, PASSPHRASE, overwrite=True, params=TEST_KDF)
    assert sorted(p.name for p in directory.iterdir()) == sorted(KEY_DIR_FILES)
    reloaded = AgencyKeys.load(directory, PASSPHRASE)
    assert reloaded.signing_key.verify_key == other.signing_key.verify_key


def test_one_existing_file_stops_the_whole_save(tmp_path: Path) -> None:
    (tmp_path / TLS_CERT_FILE).write_bytes(b"someone else's")
    with pytest.raises(InputError, match=TLS_CERT_FILE):
        _keys().save(tmp_path, PASSPHRASE, params=TEST_KDF)
    assert [p.name for p in tmp_path.iterdir()] == [TLS_CERT_FILE]


def test_passphrase_rules(tmp_path: Path) -> None:
    for weak in (b"short", b"password1234", b"CA-RCMP-123456789"):
        with pytest.raises(WeakPassphrase):
            _keys().save(tmp_path / "unused", weak, params=TEST_KDF)
    with pytest.raises(TypeError):
        _keys().save(tmp_path / "unused", "a str passphrase", params=TEST_KDF)  # type: ignore[arg-type]
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    ("agency", "now", "days"),
    [
        ("", NOW, 1),
        ("CA RCMP", NOW, 1),
        ("CA-RCMP", datetime(2025, 1, 1), 1),  # naive
        ("CA-RCMP", NOW, 0),
    ],
)
def test_generate_rejects_bad_arguments(agency: str, now: datetime, days: int) -> None:
    with pytest.raises(ValueError):
        AgencyKeys.generate(agency, rng=DeterministicRandom(1), now=now, valid_days=days)


def test_bundle_validates_and_matches_the_keys(saved: tuple[AgencyKeys, Path]) -> None:
    keys, directory = saved
    bundle = load_public_bundle(directory / PUBLIC_BUNDLE_FILE)
    assert bundle == keys.public_bundle()
    assert bundle.agency_id == "CA-RCMP"
    assert bundle.verify_key == keys.signing_key.verify_key
    assert bundle.sealing_key == keys.sealing_key.public_key
    assert bundle.tls_cert_sha256 == keys.tls.fingerprint
    doc = json.loads((directory / PUBLIC_BUNDLE_FILE).read_text())
    assert doc["format"] == PUBLIC_BUNDLE_FORMAT
    assert doc["created"] == "2025-03-01T12:30:15Z"
    assert doc["tls_cert_sha256"] == keys.tls.fingerprint.hex()
    PartyKeys(bundle.verify_key, bundle.sealing_key, bundle.tls_cert_sha256)


def test_nothing_secret_in_public_files_or_reprs(saved: tuple[AgencyKeys, Path]) -> None:
    keys, directory = saved
    public_files = (PUBLIC_BUNDLE_FILE, TLS_CERT_FILE, AUDIT_ENDORSEMENT_FILE)
    public = [(directory / n).read_bytes() for n in public_files]
    shown = [repr(keys).encode(), repr(keys.public_bundle()).encode(), str(keys).encode()]
    for blob in public + shown:
        for secret in _secrets(keys):
            assert secret not in blob
    assert b"PRIVATE KEY" not in public[0]
    with pytest.raises(TypeError):
        pickle.dumps(keys)


def _bundle_doc(keys: AgencyKeys) -> dict[str, object]:
    return dict(keys.public_bundle().to_document())


def test_bundle_errors_are_all_listed() -> None:
    doc = _bundle_doc(_keys())
    doc.update(
        format="xlink-public-keys-v0",
        agency_id="bad id",
        verify_key="AB" * 32,
        sealing_key="00" * 32,  # low order
        tls_cert_sha256="11" * 32,  # not the certificate's
        created="2025-03-01T12:30:15",  # no offset
        extra=1,
    )
    with pytest.raises(SchemaError) as exc:
        parse_public_bundle(json.dumps(doc))
    assert [e.split(":")[0] for e in exc.value.errors] == [
        "extra",
        "format",
        "agency_id",
        "verify_key",
        "sealing_key",
        "tls_cert_sha256",
        "created",
    ]


@pytest.mark.parametrize(
    ("member", "value", "reason"),
    [
        ("verify_key", "01" + "00" * 31, "prime order"),  # the identity point
        ("tls_cert_pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM"),
        ("tls_cert_pem", 7, "PEM"),
        ("created", None, "ISO 8601"),
    ],
)
def test_bundle_rejects_bad_members(member: str, value: object, reason: str) -> None:
    doc = _bundle_doc(_keys())
    doc[member] = value
    with pytest.raises(SchemaError, match=reason):
        parse_public_bundle(json.dumps(doc))


def _pem(der: bytes) -> str:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


_CERT_DER = x509.load_pem_x509_certificate(_keys().tls.cert_pem).public_bytes(
    serialization.Encoding.DER
)
_VERSION_AT = _CERT_DER.index(b"\xa0\x03\x02\x01") + 4  # tbsCertificate's version INTEGER
_SERIAL_AT = _VERSION_AT + 3  # the serial number INTEGER's first content byte


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_CERT_DER) - 1), st.integers(0, 255)), max_size=4))
@example([(_VERSION_AT, 3)]).via("version field 3: cryptography's InvalidVersion")
@example([(_VERSION_AT, 0xFF)]).via("version field -1")
def test_mutated_certificates_raise_only_schema_errors(changes: list[tuple[int, int]]) -> None:
    """A partner's bundle may carry any certificate bytes (issue 11: a version field of 3 made
    cryptography raise InvalidVersion). The pin is made to match, so only the certificate
    itself is judged."""
    der = bytearray(_CERT_DER)
    for at, value in changes:
        der[at] = value
    doc = _bundle_doc(_keys())
    doc.update(tls_cert_pem=_pem(bytes(der)), tls_cert_sha256=hashlib.sha256(der).hexdigest())
    try:
        parse_public_bundle(json.dumps(doc))
    except SchemaError as exc:
        assert all(e.startswith(("tls_cert_pem:", "tls_cert_sha256:")) for e in exc.errors)


def test_a_certificate_with_a_negative_serial_number_is_refused_not_warned_about() -> None:
    """RFC 5280 wants a positive serial; cryptography only warns (CryptographyDeprecationWarning)
    and will refuse it later. A partner's bundle carrying one is refused now, as a schema error,
    with no warning escaping."""
    der = bytearray(_CERT_DER)
    assert der[_SERIAL_AT - 2] == 0x02 and der[_SERIAL_AT - 1] > 1  # INTEGER, several bytes
    der[_SERIAL_AT] = 0x80  # the sign bit: a negative serial number
    doc = _bundle_doc(_keys())
    doc.update(tls_cert_pem=_pem(bytes(der)), tls_cert_sha256=hashlib.sha256(der).hexdigest())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SchemaError) as exc:
            parse_public_bundle(json.dumps(doc))
        with pytest.raises(ValueError, match="serial number not positive"):
            load_certificate(bytes(der))
    assert exc.value.errors == ("tls_cert_pem: must be one PEM X.509 certificate",)


def test_bundle_syntax_and_missing_members(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="public bundle"):
        parse_public_bundle(b'{"format": 1, "format": 2}')
    with pytest.raises(SchemaError, match="JSON object"):
        parse_public_bundle(b"[]")
    path = tmp_path / "b.json"
    path.write_text('{"format": "xlink-public-keys-v1"}')
    with pytest.raises(SchemaError) as exc:
        load_public_bundle(path)
    assert all(e.startswith(f"{path}: ") and e.endswith("missing") for e in exc.value.errors)
    assert len(exc.value.errors) == 6


def test_load_refuses_files_that_do_not_belong_together(
    saved: tuple[AgencyKeys, Path], tmp_path: Path
) -> None:
    _, directory = saved
    other = tmp_path / "us"
    _keys("US-DHS", "us").save(other, PASSPHRASE, params=TEST_KDF)
    (directory / PUBLIC_BUNDLE_FILE).write_bytes((other / PUBLIC_BUNDLE_FILE).read_bytes())
    with pytest.raises(InputError, match="does not match"):
        AgencyKeys.load(directory, PASSPHRASE)


def test_load_names_a_missing_or_foreign_key_file(saved: tuple[AgencyKeys, Path]) -> None:
    _, directory = saved
    (directory / SEALING_KEY_FILE).unlink()
    with pytest.raises(InputError, match="missing key file"):
        AgencyKeys.load(directory, PASSPHRASE)
    fd = os.open(directory / SEALING_KEY_FILE, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, (directory / SIGNING_KEY_FILE).read_bytes())
    os.close(fd)
    with pytest.raises(InputError, match="holds a secret for 'xlink/v1/key/signing'"):
        AgencyKeys.load(directory, PASSPHRASE)
    (directory / SEALING_KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(SchemaError, match="not an xlink-sealed-key-v1 file"):
        AgencyKeys.load(directory, PASSPHRASE)
