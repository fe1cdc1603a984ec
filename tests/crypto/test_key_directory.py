"""The key directory on the envelope: the audit key and its endorsement, the upgrade in place of
a directory written by xlink 0.1, and the source-handle key wrapped under the sealing key
(xlink/crypto/keyfiles.py, Agency._handle_key; docs/keys.md §1, §2, §6, §7)."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.crypto.envelope import (
    PURPOSE_SOURCE_HANDLE,
    TEST_KDF,
    WRAPPED_FORMAT,
    KdfParams,
    sealed_kdf_params,
    unwrap_secret,
)
from xlink.crypto.keyfiles import (
    AUDIT_ENDORSEMENT_FILE,
    AUDIT_ENDORSEMENT_FORMAT,
    AUDIT_KEY_FILE,
    KEY_DIR_FILES,
    PRIVATE_KEY_FILES,
    PUBLIC_BUNDLE_FILE,
    SEALING_KEY_FILE,
    SIGNING_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    AgencyKeys,
    load_audit_verify_key,
    parse_audit_endorsement,
)
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.errors import DecryptionError, InputError, SchemaError, WeakPassphrase
from xlink.release import SourceHandleKey

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = b"correct horse battery staple"
OLD_WEAK = b"password1234"  # xlink 0.1 accepted it (12 bytes)
#: One step up from TEST_KDF: an upgrade to it re-seals TEST_KDF files, in microseconds.
LIGHT = KdfParams(memory_kib=16, iterations=2, lanes=1)


def _keys(agency: str = "CA-RCMP", seed: str = "ca") -> AgencyKeys:
    return AgencyKeys.generate(agency, rng=DeterministicRandom(seed), now=NOW, valid_days=30)


def _saved(tmp_path: Path, name: str = "ca") -> tuple[AgencyKeys, Path]:
    keys = _keys()
    keys.save(tmp_path / name, PASSPHRASE, params=TEST_KDF, rng=DeterministicRandom("s"))
    return keys, tmp_path / name


def _write_legacy(keys: AgencyKeys, directory: Path, passphrase: bytes) -> None:
    """A key directory exactly as xlink 0.1 wrote it: PKCS#8 PEM under cryptography's
    BestAvailableEncryption (PBKDF2, 2048 iterations), no audit key."""

    def pem(key: PrivateKeyTypes) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    directory.mkdir(mode=0o700)
    files = {
        SIGNING_KEY_FILE: pem(Ed25519PrivateKey.from_private_bytes(keys.signing_key.seed())),
        SEALING_KEY_FILE: pem(X25519PrivateKey.from_private_bytes(keys.sealing_key.secret())),
        TLS_KEY_FILE: pem(serialization.load_pem_private_key(keys.tls.key_pem, None)),
        TLS_CERT_FILE: keys.tls.cert_pem,
        PUBLIC_BUNDLE_FILE: keys.public_bundle().to_json().encode(),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# -- the audit key -----------------------------------------------------------------------------


def test_the_audit_key_is_a_fourth_key_endorsed_by_the_signing_key(tmp_path: Path) -> None:
    keys, directory = _saved(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == sorted(KEY_DIR_FILES)
    assert AUDIT_KEY_FILE in PRIVATE_KEY_FILES
    loaded = AgencyKeys.load(directory, PASSPHRASE)
    assert loaded.audit_key.seed() == keys.audit_key.seed()
    audit = loaded.audit_key.verify_key
    assert audit not in (loaded.signing_key.verify_key,) and audit == keys.audit_key.verify_key
    assert load_audit_verify_key(directory) == audit  # no passphrase needed
    doc = json.loads((directory / AUDIT_ENDORSEMENT_FILE).read_text())
    assert set(doc) == {"format", "agency_id", "audit_key", "signature"}
    assert doc["format"] == AUDIT_ENDORSEMENT_FORMAT and doc["agency_id"] == "CA-RCMP"
    assert doc["audit_key"] == bytes(audit).hex()
    # The signature is the signing key's over the domain-separated message.
    message = b"".join(
        len(p).to_bytes(4, "big") + p
        for p in (b"xlink/v1/audit-key-endorsement", b"CA-RCMP", bytes(audit))
    )
    keys.signing_key.verify_key.verify(bytes.fromhex(doc["signature"]), message)


def test_an_endorsement_that_does_not_verify_is_refused(tmp_path: Path) -> None:
    keys, directory = _saved(tmp_path)
    path = directory / AUDIT_ENDORSEMENT_FILE
    doc = json.loads(path.read_text())
    intruder = _keys(seed="intruder").audit_key.verify_key
    path.write_text(json.dumps({**doc, "audit_key": bytes(intruder).hex()}))
    with pytest.raises(InputError, match="is not signed by CA-RCMP's signing key"):
        load_audit_verify_key(directory)
    with pytest.raises(InputError, match=AUDIT_ENDORSEMENT_FILE):
        AgencyKeys.load(directory, PASSPHRASE)
    # Another agency's endorsement, genuinely signed, does not stand for ours.
    us = _keys("US-DHS", "us")
    with pytest.raises(InputError, match="another agency"):
        parse_audit_endorsement(
            us.audit_endorsement(), keys.signing_key.verify_key, agency_id="CA-RCMP"
        )
    path.unlink()
    with pytest.raises(InputError, match="missing: run `xlink keygen --upgrade"):
        load_audit_verify_key(directory)


def test_an_endorsement_of_another_audit_key_does_not_load(tmp_path: Path) -> None:
    """A valid endorsement (signed by our signing key) of an audit key that is not audit.key
    means the files do not belong together."""
    keys, directory = _saved(tmp_path)
    other = AgencyKeys(
        keys.agency_id,
        keys.signing_key,
        keys.sealing_key,
        keys.tls,
        _keys(seed="other").audit_key,
        keys.created,
    )
    (directory / AUDIT_ENDORSEMENT_FILE).write_text(other.audit_endorsement())
    assert load_audit_verify_key(directory) == other.audit_key.verify_key
    with pytest.raises(InputError, match=f"does not match {AUDIT_KEY_FILE}"):
        AgencyKeys.load(directory, PASSPHRASE)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"format": "xlink-audit-key-v0"}, "format"),
        ({"audit_key": "01" + "00" * 31}, "prime order"),
        ({"signature": "zz"}, "signature"),
        ({"extra": 1}, "extra"),
    ],
)
def test_endorsement_schema(tmp_path: Path, change: dict[str, object], error: str) -> None:
    keys, directory = _saved(tmp_path)
    doc = {**json.loads(keys.audit_endorsement()), **change}
    (directory / AUDIT_ENDORSEMENT_FILE).write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=error):
        load_audit_verify_key(directory)


# -- upgrade in place --------------------------------------------------------------------------


def test_an_old_directory_does_not_load_but_says_how_to_upgrade(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    _write_legacy(_keys(), directory, PASSPHRASE)
    with pytest.raises(InputError) as exc:
        AgencyKeys.load(directory, PASSPHRASE)
    message = str(exc.value)
    assert f"xlink keygen --upgrade --out {directory}" in message
    assert "signing.key, sealing.key, tls.key, audit.key" in message
    assert _snapshot(directory).keys() == {
        SIGNING_KEY_FILE,
        SEALING_KEY_FILE,
        TLS_KEY_FILE,
        TLS_CERT_FILE,
        PUBLIC_BUNDLE_FILE,
    }  # fmt: skip  (load never writes)


def test_upgrade_reseals_the_old_files_and_adds_the_audit_key(tmp_path: Path) -> None:
    keys = _keys()
    directory = tmp_path / "old"
    _write_legacy(keys, directory, PASSPHRASE)
    before = _snapshot(directory)
    changed = AgencyKeys.upgrade(
        directory, PASSPHRASE, rng=DeterministicRandom("up"), params=TEST_KDF
    )
    assert [line.split(":")[0] for line in changed] == [
        SIGNING_KEY_FILE, SEALING_KEY_FILE, TLS_KEY_FILE, AUDIT_KEY_FILE, AUDIT_ENDORSEMENT_FILE
    ]  # fmt: skip
    assert "PKCS#8 PEM (PBKDF2, 2048 iterations) re-sealed" in changed[0]
    assert "generated" in changed[3] and "written" in changed[4]
    assert sorted(p.name for p in directory.iterdir()) == sorted(KEY_DIR_FILES)  # no temp left
    for name in KEY_DIR_FILES:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    after = _snapshot(directory)
    assert after[TLS_CERT_FILE] == before[TLS_CERT_FILE]
    assert after[PUBLIC_BUNDLE_FILE] == before[PUBLIC_BUNDLE_FILE]
    loaded = AgencyKeys.load(directory, PASSPHRASE)
    assert loaded.signing_key.seed() == keys.signing_key.seed()
    assert loaded.sealing_key.secret() == keys.sealing_key.secret()
    assert loaded.tls.key_pem == keys.tls.key_pem
    assert load_audit_verify_key(directory) == loaded.audit_key.verify_key
    # Idempotent: the second run changes nothing, byte for byte.
    assert AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=TEST_KDF) == []
    assert _snapshot(directory) == after


def test_upgrade_with_the_wrong_passphrase_changes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    _write_legacy(_keys(), directory, PASSPHRASE)
    before = _snapshot(directory)
    with pytest.raises(DecryptionError):
        AgencyKeys.upgrade(
            directory, b"not the passphrase at all", rng=system_random, params=TEST_KDF
        )
    assert _snapshot(directory) == before


def test_upgrade_refuses_a_weak_old_passphrase_unless_given_a_new_one(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    _write_legacy(_keys(), directory, OLD_WEAK)
    before = _snapshot(directory)
    with pytest.raises(WeakPassphrase):
        AgencyKeys.upgrade(directory, OLD_WEAK, rng=system_random, params=TEST_KDF)
    assert _snapshot(directory) == before
    with pytest.raises(WeakPassphrase):
        AgencyKeys.upgrade(
            directory, OLD_WEAK, rng=system_random, params=TEST_KDF, new_passphrase=b"CA-RCMP-1"
        )
    changed = AgencyKeys.upgrade(
        directory, OLD_WEAK, rng=system_random, params=TEST_KDF, new_passphrase=PASSPHRASE
    )
    assert len(changed) == 5
    AgencyKeys.load(directory, PASSPHRASE)
    with pytest.raises(DecryptionError):
        AgencyKeys.load(directory, OLD_WEAK)


def test_upgrade_reseals_lighter_parameters_and_then_nothing(tmp_path: Path) -> None:
    keys, directory = _saved(tmp_path)
    endorsement = (directory / AUDIT_ENDORSEMENT_FILE).read_bytes()
    changed = AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=LIGHT)
    assert [line.split(":")[0] for line in changed] == list(PRIVATE_KEY_FILES)
    assert all(f"{TEST_KDF} -> {LIGHT}" in line for line in changed)
    for name in PRIVATE_KEY_FILES:
        assert sealed_kdf_params((directory / name).read_bytes()) == LIGHT
    assert (directory / AUDIT_ENDORSEMENT_FILE).read_bytes() == endorsement
    assert AgencyKeys.load(directory, PASSPHRASE).audit_key.seed() == keys.audit_key.seed()
    assert AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=LIGHT) == []
    # Heavier files are not made lighter.
    assert AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=TEST_KDF) == []


def test_upgrade_finishes_a_directory_left_half_done(tmp_path: Path) -> None:
    """A crash between two renames leaves some files sealed and some in the old format: a
    second run reads both and finishes."""
    keys = _keys()
    directory = tmp_path / "old"
    _write_legacy(keys, directory, PASSPHRASE)
    done = tmp_path / "done"
    keys.save(done, PASSPHRASE, params=TEST_KDF)
    os.replace(done / SIGNING_KEY_FILE, directory / SIGNING_KEY_FILE)
    with pytest.raises(InputError, match=re.escape("sealing.key, tls.key, audit.key")):
        AgencyKeys.load(directory, PASSPHRASE)
    changed = AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=TEST_KDF)
    assert changed[0] == f"{SIGNING_KEY_FILE}: re-sealed with the others ({TEST_KDF})"
    assert AgencyKeys.load(directory, PASSPHRASE).signing_key.seed() == keys.signing_key.seed()


def test_upgrade_checks_everything_before_writing(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    _write_legacy(_keys(), directory, PASSPHRASE)
    us = tmp_path / "us"
    _keys("US-DHS", "us").save(us, PASSPHRASE, params=TEST_KDF)
    (directory / PUBLIC_BUNDLE_FILE).write_bytes((us / PUBLIC_BUNDLE_FILE).read_bytes())
    before = _snapshot(directory)
    with pytest.raises(InputError, match="does not match the keys beside it"):
        AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=TEST_KDF)
    assert _snapshot(directory) == before


# -- the source-handle key ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> CeremonyFiles:
    return demo_ceremony(
        tmp_path_factory.mktemp("ceremony"),
        passphrase=PASSPHRASE,
        now=datetime.now(UTC),
        rng=system_random,
        kdf=TEST_KDF,
    )


def _handle_key(ceremony: CeremonyFiles, workdir: Path, agency: str = "CA-RCMP") -> SourceHandleKey:
    with ceremony.open_agency(
        agency, workdir, passphrase=PASSPHRASE, clock=lambda: datetime.now(UTC), rng=system_random
    ) as me:
        return me._handle_key()


def test_the_source_handle_key_is_wrapped_under_the_sealing_key(
    ceremony: CeremonyFiles, tmp_path: Path
) -> None:
    work = tmp_path / "ca"
    key = _handle_key(ceremony, work)
    path = work / "source-handle.key"
    data = path.read_bytes()
    doc = json.loads(data)
    assert doc["format"] == WRAPPED_FORMAT and doc["purpose"] == PURPOSE_SOURCE_HANDLE
    assert doc["kdf"]["name"] == "hkdf-sha256"
    assert key.secret().hex().encode() not in data and key.secret() not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealing = AgencyKeys.load(ceremony.keys["CA-RCMP"], PASSPHRASE).sealing_key.secret()
    assert unwrap_secret(data, sealing, purpose=PURPOSE_SOURCE_HANDLE) == key.secret()
    assert _handle_key(ceremony, work) == key  # the same key the next time
    assert path.read_bytes() == data  # and not rewritten


def test_a_plain_hex_source_handle_key_is_wrapped_in_place(
    ceremony: CeremonyFiles, tmp_path: Path
) -> None:
    old = SourceHandleKey(bytes(range(7, 39)))
    work = tmp_path / "ca"
    work.mkdir()
    path = work / "source-handle.key"
    path.write_text(old.secret().hex() + "\n", encoding="ascii")  # as xlink 0.1 wrote it
    path.chmod(0o600)
    assert _handle_key(ceremony, work) == old
    data = path.read_bytes()
    assert json.loads(data)["format"] == WRAPPED_FORMAT
    assert old.secret().hex().encode() not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in work.iterdir() if p.name.endswith(".tmp")) == []
    assert _handle_key(ceremony, work) == old
    assert path.read_bytes() == data


def test_a_source_handle_key_under_other_keys_or_damaged_is_refused(
    ceremony: CeremonyFiles, tmp_path: Path
) -> None:
    ca_work, us_work = tmp_path / "ca", tmp_path / "us"
    _handle_key(ceremony, ca_work)
    us_work.mkdir()
    theirs = us_work / "source-handle.key"
    theirs.write_bytes((ca_work / "source-handle.key").read_bytes())
    with pytest.raises(InputError, match="does not open with this agency's sealing key"):
        _handle_key(ceremony, us_work, "US-DHS")
    theirs.write_text("not hex at all\n")
    with pytest.raises(InputError, match="not a 32-byte source handle key"):
        _handle_key(ceremony, us_work, "US-DHS")
    theirs.write_text('{"format": "xlink-wrapped-key-v1"}')
    with pytest.raises(InputError, match="ciphertext: missing"):
        _handle_key(ceremony, us_work, "US-DHS")


# -- upgrades that stop half-way, or would orphan the audit log -------------------------------


def test_an_upgrade_to_a_new_passphrase_that_stopped_half_way_is_finished_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, directory = _saved(tmp_path)
    new = b"a new passphrase for the upgrade 42"
    import xlink.crypto.keyfiles as keyfiles

    real = keyfiles.write_file
    writes: list[str] = []

    def failing(path: Path, data: bytes, *, overwrite: bool) -> None:
        writes.append(path.name)
        if len(writes) == 3:
            raise OSError("disk full")
        real(path, data, overwrite=overwrite)

    monkeypatch.setattr(keyfiles, "write_file", failing)
    with pytest.raises(OSError, match="disk full"):
        AgencyKeys.upgrade(
            directory, PASSPHRASE, rng=system_random, params=TEST_KDF, new_passphrase=new
        )
    monkeypatch.setattr(keyfiles, "write_file", real)
    with pytest.raises(DecryptionError):  # two files under each passphrase now
        AgencyKeys.load(directory, PASSPHRASE)
    AgencyKeys.upgrade(
        directory, PASSPHRASE, rng=system_random, params=TEST_KDF, new_passphrase=new
    )
    loaded = AgencyKeys.load(directory, new)
    assert loaded.signing_key.verify_key == keys.signing_key.verify_key
    assert loaded.audit_key.verify_key == keys.audit_key.verify_key


def test_an_upgrade_never_replaces_an_endorsed_audit_key(tmp_path: Path) -> None:
    _, directory = _saved(tmp_path)
    (directory / AUDIT_KEY_FILE).unlink()
    before = _snapshot(directory)
    with pytest.raises(InputError, match="restore the file from a backup"):
        AgencyKeys.upgrade(directory, PASSPHRASE, rng=system_random, params=TEST_KDF)
    assert _snapshot(directory) == before


def test_a_ceremony_for_large_lists_sets_both_parties_set_size(tmp_path: Path) -> None:
    """A benchmark's lists need more than the sample's 65,536 padded tokens a side:
    ``max_set_size`` sets both parties' bound, with a daily budget of 16 sessions at it."""
    from xlink.policy.document import load_mou

    files = demo_ceremony(
        tmp_path, passphrase=PASSPHRASE, now=datetime.now(UTC), rng=system_random, kdf=TEST_KDF,
        max_set_size=1 << 20,
    )  # fmt: skip
    mou = load_mou(files.mou).mou
    assert [p.max_set_size for p in mou.parties] == [1 << 20, 1 << 20]
    assert mou.set_size_budget_per_day == 16 << 20
