"""A hub's signing key file (xlink/crypto/hub_key.py): sealed with the passphrase envelope for
its own purpose, owner-only, and the hub id sealed with the key. Sealed with the cheap TEST_KDF;
the envelope's real parameters are tested in test_envelope.py."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import pytest

from xlink.crypto.envelope import (
    PURPOSE_HUB_SIGNING,
    PURPOSE_SIGNING,
    TEST_KDF,
    open_secret,
    seal_secret,
    sealed_kdf_params,
)
from xlink.crypto.hub_key import HUB_KEY_FILE, HubKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError, IdentifierError, InputError, SchemaError, WeakPassphrase

PASSPHRASE = b"correct horse battery staple"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def saved(tmp_path: Path) -> tuple[HubKey, Path]:
    key = HubKey.generate("CA-PS-HUB", rng=DeterministicRandom("hub"))
    path = key.save(tmp_path / "keys" / HUB_KEY_FILE, PASSPHRASE, params=TEST_KDF, rng=key_rng())
    return key, path


def key_rng() -> DeterministicRandom:
    return DeterministicRandom("hub-seal")


def test_round_trip(saved: tuple[HubKey, Path]) -> None:
    key, path = saved
    loaded = HubKey.load(path, PASSPHRASE)
    assert loaded.hub_id == "CA-PS-HUB"
    assert loaded.verify_key == key.verify_key
    assert loaded.signing_key.seed() == key.signing_key.seed()
    signature = loaded.signing_key.sign(b"checkpoint")
    key.verify_key.verify(signature, b"checkpoint")


def test_wrong_passphrase_is_one_opaque_error(saved: tuple[HubKey, Path]) -> None:
    _, path = saved
    with pytest.raises(DecryptionError) as exc:
        HubKey.load(path, b"correct horse battery stapler")
    assert str(exc.value) == "decryption or verification failed"


def test_a_changed_file_is_the_same_opaque_error(saved: tuple[HubKey, Path]) -> None:
    _, path = saved
    doc = json.loads(path.read_bytes())
    last = doc["ciphertext"][-1]
    doc["ciphertext"] = doc["ciphertext"][:-1] + ("0" if last != "0" else "1")
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DecryptionError):
        HubKey.load(path, PASSPHRASE)


@posix_only
def test_the_file_is_owner_only_and_refused_otherwise(saved: tuple[HubKey, Path]) -> None:
    _, path = saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o640)
    with pytest.raises(InputError, match="too open"):
        HubKey.load(path, PASSPHRASE)


def test_sealed_for_its_own_purpose_with_the_id(saved: tuple[HubKey, Path]) -> None:
    key, path = saved
    data = path.read_bytes()
    assert json.loads(data)["purpose"] == PURPOSE_HUB_SIGNING == "xlink/v1/key/hub-signing"
    assert sealed_kdf_params(data) == TEST_KDF
    secret = open_secret(data, PASSPHRASE, purpose=PURPOSE_HUB_SIGNING)
    assert secret == key.signing_key.seed() + b"CA-PS-HUB"
    with pytest.raises(InputError):
        open_secret(data, PASSPHRASE, purpose=PURPOSE_SIGNING)


def test_an_agency_signing_key_file_is_not_a_hub_key(tmp_path: Path) -> None:
    path = tmp_path / HUB_KEY_FILE
    sealed = seal_secret(
        b"\x01" * 32, PASSPHRASE, purpose=PURPOSE_SIGNING, rng=key_rng(), params=TEST_KDF
    )
    path.write_bytes(sealed)
    path.chmod(0o600)
    with pytest.raises(InputError, match=str(path)):
        HubKey.load(path, PASSPHRASE)


def test_a_sealed_secret_without_an_id_is_not_a_hub_key(tmp_path: Path) -> None:
    path = tmp_path / HUB_KEY_FILE
    sealed = seal_secret(
        b"\x01" * 32, PASSPHRASE, purpose=PURPOSE_HUB_SIGNING, rng=key_rng(), params=TEST_KDF
    )
    path.write_bytes(sealed)
    path.chmod(0o600)
    with pytest.raises(InputError, match="not a hub key"):
        HubKey.load(path, PASSPHRASE)


def test_not_an_envelope_is_a_schema_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / HUB_KEY_FILE
    path.write_text('{"format": "something else"}', encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(SchemaError) as exc:
        HubKey.load(path, PASSPHRASE)
    assert all(e.startswith(str(path)) for e in exc.value.errors)


def test_refuses_to_overwrite_unless_asked(saved: tuple[HubKey, Path]) -> None:
    key, path = saved
    other = HubKey.generate("CA-PS-HUB", rng=DeterministicRandom("other hub"))
    with pytest.raises(InputError, match="already exists"):
        other.save(path, PASSPHRASE, params=TEST_KDF, rng=key_rng())
    assert HubKey.load(path, PASSPHRASE).verify_key == key.verify_key
    other.save(path, PASSPHRASE, params=TEST_KDF, rng=key_rng(), overwrite=True)
    assert HubKey.load(path, PASSPHRASE).verify_key == other.verify_key


def test_a_weak_passphrase_or_bad_id_is_refused(tmp_path: Path) -> None:
    key = HubKey.generate("CA-PS-HUB", rng=DeterministicRandom("hub"))
    with pytest.raises(WeakPassphrase):
        key.save(tmp_path / HUB_KEY_FILE, b"short", params=TEST_KDF, rng=key_rng())
    assert not (tmp_path / HUB_KEY_FILE).exists()
    with pytest.raises(IdentifierError):
        HubKey.generate("not an id!", rng=DeterministicRandom("hub"))


def test_nothing_secret_in_repr_and_no_pickling(saved: tuple[HubKey, Path]) -> None:
    key, _ = saved
    assert key.signing_key.seed().hex() not in repr(key)
    assert "CA-PS-HUB" in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
