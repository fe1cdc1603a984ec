"""Key objects of xlink.crypto.keys: Ed25519 signing, X25519 sealing, and how they behave.

(Named test_key_objects.py, not test_keys.py: tests/linkage/test_keys.py holds that module name
and the test directories are not packages.)
"""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.keys import (
    KEY_SIZE,
    SIGNATURE_SIZE,
    SealingKey,
    SealingPublicKey,
    SigningKey,
    VerifyKey,
    key_fingerprint,
)
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError

# RFC 8032 §7.1, TEST 1: secret key, public key, empty message, signature.
RFC8032_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector() -> None:
    key = SigningKey(bytes.fromhex(RFC8032_SEED))
    assert bytes(key.verify_key).hex() == RFC8032_PUBLIC
    assert key.sign(b"").hex() == RFC8032_SIGNATURE
    VerifyKey(bytes.fromhex(RFC8032_PUBLIC)).verify(bytes.fromhex(RFC8032_SIGNATURE), b"")
    assert key.seed().hex() == RFC8032_SEED


def test_sign_and_verify() -> None:
    key = SigningKey.generate(DeterministicRandom("sign"))
    signature = key.sign(b"message")
    assert len(signature) == SIGNATURE_SIZE
    key.verify_key.verify(signature, b"message")
    assert key.sign(b"message") == signature  # Ed25519 is deterministic


@settings(max_examples=50)
@given(message=st.binary(max_size=200), data=st.data())
def test_any_tampering_fails_verification(message: bytes, data: st.DataObject) -> None:
    key = SigningKey(bytes(range(32)))
    signature = key.sign(message)
    i = data.draw(st.integers(0, SIGNATURE_SIZE - 1))
    bad_signature = bytearray(signature)
    bad_signature[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DecryptionError):
        key.verify_key.verify(bytes(bad_signature), message)
    with pytest.raises(DecryptionError):
        key.verify_key.verify(signature, message + b"\x00")
    if message:
        j = data.draw(st.integers(0, len(message) - 1))
        altered = bytearray(message)
        altered[j] ^= 1
        with pytest.raises(DecryptionError):
            key.verify_key.verify(signature, bytes(altered))


def test_wrong_key_and_wrong_length_fail_opaquely() -> None:
    a, b = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    signature = a.sign(b"m")
    with pytest.raises(DecryptionError) as info:
        b.verify_key.verify(signature, b"m")
    assert str(info.value) == "decryption or verification failed"
    for bad in (b"", signature[:-1], signature + b"\x00"):
        with pytest.raises(DecryptionError):
            a.verify_key.verify(bad, b"m")


def test_seal_and_open() -> None:
    rng = DeterministicRandom("seal")
    key = SealingKey.generate(rng)
    sealed = key.public_key.seal(b"released record")
    assert sealed != key.public_key.seal(b"released record")  # fresh ephemeral key each time
    assert key.open(sealed) == b"released record"
    assert key.open(key.public_key.seal(b"")) == b""
    assert SealingKey(key.secret()).public_key == key.public_key


def test_tampered_or_misdirected_ciphertext_raises_decryption_error() -> None:
    key, other = SealingKey(b"\x03" * 32), SealingKey(b"\x04" * 32)
    sealed = key.public_key.seal(b"secret")
    for i in (0, 31, 32, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x80
        with pytest.raises(DecryptionError):
            key.open(bytes(tampered))
    for bad in (b"", sealed[:10], sealed[:-1]):
        with pytest.raises(DecryptionError):
            key.open(bad)
    with pytest.raises(DecryptionError):
        other.open(sealed)


def test_repr_hides_secrets() -> None:
    seed = bytes(range(32))
    signing, sealing = SigningKey(seed), SealingKey(seed)
    for key, secret in ((signing, signing.seed()), (sealing, sealing.secret())):
        text = repr(key) + str(key)
        assert "<secret>" in text
        assert secret.hex() not in text and repr(secret) not in text
    assert repr(signing.verify_key) == f"VerifyKey({signing.verify_key.fingerprint()})"
    assert repr(sealing.public_key).startswith("SealingPublicKey(")


def test_private_keys_refuse_pickling_and_copying() -> None:
    for key in (SigningKey(b"\x05" * 32), SealingKey(b"\x05" * 32)):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(key)
        with pytest.raises(TypeError, match="cannot be pickled"):
            copy.copy(key)


def test_public_key_equality_and_hashing() -> None:
    a1, a2 = (
        SigningKey(b"\x06" * 32).verify_key,
        VerifyKey(bytes(SigningKey(b"\x06" * 32).verify_key)),
    )
    b = SigningKey(b"\x07" * 32).verify_key
    assert a1 == a2 and hash(a1) == hash(a2) and a1 != b
    assert len({a1, a2, b}) == 2
    s1, s2 = (
        SealingKey(b"\x06" * 32).public_key,
        SealingPublicKey(bytes(SealingKey(b"\x06" * 32).public_key)),
    )
    assert s1 == s2 and hash(s1) == hash(s2)
    # same bytes, different kinds of key: never equal
    raw = bytes(a1)
    assert VerifyKey(raw) != SealingPublicKey(raw)
    assert VerifyKey(raw).fingerprint() != SealingPublicKey(raw).fingerprint()
    assert a1 != raw


def test_sizes_are_checked() -> None:
    for make in (VerifyKey, SigningKey, SealingPublicKey, SealingKey):
        for bad in (b"", b"\x00" * 31, b"\x00" * 33):
            with pytest.raises(ValueError, match=f"{KEY_SIZE} bytes"):
                make(bad)
        with pytest.raises(ValueError):
            make("00" * 32)  # type: ignore[arg-type]


def test_generation_is_deterministic_with_a_deterministic_rng() -> None:
    assert (
        SigningKey.generate(DeterministicRandom(1)).verify_key
        == SigningKey.generate(DeterministicRandom(1)).verify_key
    )
    assert (
        SealingKey.generate(DeterministicRandom(1)).public_key
        != SealingKey.generate(DeterministicRandom(2)).public_key
    )


def test_fingerprint_is_domain_separated_and_short() -> None:
    raw = bytes(32)
    fp = key_fingerprint("ed25519", raw)
    assert len(fp) == 32 and int(fp, 16) >= 0
    assert fp != key_fingerprint("x25519", raw)
    assert fp == key_fingerprint("ed25519", raw)
