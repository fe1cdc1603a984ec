"""The passphrase envelope ``xlink-sealed-key-v1`` and the wrapped envelope
``xlink-wrapped-key-v1`` (xlink/crypto/envelope.py, docs/keys.md §2)."""

from __future__ import annotations

import contextlib
import json
import pickle
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlink.crypto import envelope
from xlink.crypto.envelope import (
    DEFAULT_KDF,
    PURPOSE_AUDIT,
    PURPOSE_SEALING,
    PURPOSE_SIGNING,
    PURPOSE_SOURCE_HANDLE,
    SEALED_FORMAT,
    TEST_KDF,
    WRAPPED_FORMAT,
    KdfParams,
    PassphraseOpener,
    PassphraseSealer,
    is_envelope,
    open_secret,
    seal_secret,
    sealed_kdf_params,
    unwrap_secret,
    wrap_secret,
)
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError, InputError, SchemaError, XlinkError

PASSPHRASE = b"correct horse battery staple"
SECRET = bytes(range(32))
WRAPPING = b"\x42" * 32


def _sealed(params: KdfParams = TEST_KDF, purpose: str = PURPOSE_SIGNING) -> bytes:
    return seal_secret(
        SECRET, PASSPHRASE, purpose=purpose, rng=DeterministicRandom("env"), params=params
    )


def _doc(data: bytes) -> dict[str, Any]:
    parsed = json.loads(data)
    assert isinstance(parsed, dict)
    return parsed


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_round_trip_and_the_documented_format() -> None:
    data = _sealed()
    assert open_secret(data, PASSPHRASE, purpose=PURPOSE_SIGNING) == SECRET
    doc = _doc(data)
    assert list(doc) == ["format", "purpose", "kdf", "aead", "ciphertext"]
    assert doc["format"] == SEALED_FORMAT and doc["purpose"] == PURPOSE_SIGNING
    assert doc["kdf"] == {
        "name": "argon2id",
        "memory_kib": TEST_KDF.memory_kib,
        "iterations": TEST_KDF.iterations,
        "lanes": TEST_KDF.lanes,
        "salt": doc["kdf"]["salt"],
    }
    assert len(bytes.fromhex(doc["kdf"]["salt"])) == 16
    assert doc["aead"]["name"] == "chacha20-poly1305"
    assert len(bytes.fromhex(doc["aead"]["nonce"])) == 12
    assert len(bytes.fromhex(doc["ciphertext"])) == len(SECRET) + 16
    assert SECRET.hex() not in data.decode() and PASSPHRASE not in data
    assert is_envelope(data) and sealed_kdf_params(data) == TEST_KDF


def test_the_default_parameters_are_the_documented_ones() -> None:
    """RFC 9106 grade: 256 MiB, 3 passes, 4 lanes (docs/keys.md §2)."""
    assert KdfParams(memory_kib=262144, iterations=3, lanes=4) == DEFAULT_KDF
    assert str(DEFAULT_KDF) == "argon2id 256 MiB, t=3, p=4"
    assert TEST_KDF.weaker_than(DEFAULT_KDF) and not DEFAULT_KDF.weaker_than(DEFAULT_KDF)


def test_seal_secret_uses_the_default_parameters_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real parameters are what seal_secret writes when no params are given (derivation
    replaced by a recorder: the cost is bench/kdf_bench.py's business)."""
    seen: list[tuple[int, int, int]] = []

    def recording(passphrase: bytes, params: KdfParams, salt: bytes) -> Any:
        seen.append((params.memory_kib, params.iterations, params.lanes))
        return real(passphrase, TEST_KDF, salt)

    real = envelope._argon2
    monkeypatch.setattr(envelope, "_argon2", recording)
    data = seal_secret(SECRET, PASSPHRASE, purpose=PURPOSE_SIGNING, rng=DeterministicRandom(1))
    assert seen == [(262144, 3, 4)]
    assert sealed_kdf_params(data) == DEFAULT_KDF


def test_the_key_is_argon2id_of_the_passphrase_with_the_file_parameters() -> None:
    """An independent derivation with cryptography's Argon2id opens the file (the format is
    what docs/keys.md says: key = Argon2id(passphrase, salt, m, t, p, ad=format name))."""
    doc = _doc(_sealed())
    kdf = Argon2id(
        salt=bytes.fromhex(doc["kdf"]["salt"]),
        length=32,
        iterations=doc["kdf"]["iterations"],
        lanes=doc["kdf"]["lanes"],
        memory_cost=doc["kdf"]["memory_kib"],
        ad=SEALED_FORMAT.encode(),
    )
    key = kdf.derive(PASSPHRASE)
    parts = [
        b"xlink/v1/key-envelope/associated-data",
        SEALED_FORMAT.encode(),
        PURPOSE_SIGNING.encode(),
        b"argon2id",
        str(doc["kdf"]["memory_kib"]).encode(),
        str(doc["kdf"]["iterations"]).encode(),
        str(doc["kdf"]["lanes"]).encode(),
        bytes.fromhex(doc["kdf"]["salt"]),
        b"chacha20-poly1305",
    ]
    ad = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    plain = ChaCha20Poly1305(key).decrypt(
        bytes.fromhex(doc["aead"]["nonce"]), bytes.fromhex(doc["ciphertext"]), ad
    )
    assert plain == SECRET


def test_wrong_passphrase_is_one_opaque_error() -> None:
    with pytest.raises(DecryptionError) as exc:
        open_secret(_sealed(), b"correct horse battery stapler", purpose=PURPOSE_SIGNING)
    assert str(exc.value) == "decryption or verification failed"
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("kdf", "memory_kib"), 16),  # cheaper parameters: the attack this binding stops
        (("kdf", "iterations"), 1),
        (("kdf", "lanes"), 1),
        (("kdf", "salt"), "00" * 16),
        (("aead", "nonce"), "00" * 12),
        (("ciphertext",), None),  # one bit of the ciphertext flipped
    ],
)
def test_any_change_to_the_file_fails_as_decryption(where: tuple[str, ...], value: object) -> None:
    doc = _doc(_sealed(KdfParams(memory_kib=32, iterations=2, lanes=2)))
    if where == ("ciphertext",):
        raw = bytearray(bytes.fromhex(doc["ciphertext"]))
        raw[0] ^= 1
        doc["ciphertext"] = raw.hex()
    else:
        doc[where[0]][where[1]] = value
    with pytest.raises(DecryptionError):
        open_secret(_dump(doc), PASSPHRASE, purpose=PURPOSE_SIGNING)


def test_the_purpose_is_bound() -> None:
    """A secret sealed for one key cannot be passed off as another: asked for another purpose
    it is refused by name; relabelled to the asked purpose it does not open."""
    data = _sealed(purpose=PURPOSE_AUDIT)
    with pytest.raises(InputError, match="for 'xlink/v1/key/audit-signing', not for"):
        open_secret(data, PASSPHRASE, purpose=PURPOSE_SIGNING)
    doc = _doc(data)
    doc["purpose"] = PURPOSE_SIGNING
    with pytest.raises(DecryptionError):
        open_secret(_dump(doc), PASSPHRASE, purpose=PURPOSE_SIGNING)


def test_the_format_name_is_bound() -> None:
    doc = _doc(
        wrap_secret(SECRET, WRAPPING, purpose=PURPOSE_SOURCE_HANDLE, rng=DeterministicRandom(2))
    )
    with pytest.raises(SchemaError, match="format: must be 'xlink-sealed-key-v1'"):
        open_secret(_dump(doc), PASSPHRASE, purpose=PURPOSE_SOURCE_HANDLE)


def test_malformed_files_list_every_problem_without_quoting_values() -> None:
    doc = _doc(_sealed())
    doc["extra"] = "x"
    doc["kdf"]["memory_kib"] = 1 << 40
    doc["kdf"]["name"] = "scrypt"
    doc["aead"] = {"name": "aes-128-cbc", "nonce": "ABCD"}
    del doc["purpose"]
    with pytest.raises(SchemaError) as exc:
        open_secret(_dump(doc), PASSPHRASE, purpose=PURPOSE_SIGNING)
    assert [e.split(":")[0] for e in exc.value.errors] == [
        "extra",
        "purpose",
        "kdf.name",
        "kdf.memory_kib",
        "aead.name",
        "aead.nonce",
    ]
    assert "ABCD" not in str(exc.value) and str(1 << 40) not in str(exc.value)
    for text in (b"", b"[]", b"{", b'{"format": 1, "format": 2}', b"\xff\xfe", b"NaN"):
        with pytest.raises(SchemaError, match="not an xlink-sealed-key-v1 file"):
            open_secret(text, PASSPHRASE, purpose=PURPOSE_SIGNING)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("memory_kib", 7),  # under 8 * lanes
        ("memory_kib", True),
        ("memory_kib", 65536.0),
        ("iterations", 0),
        ("iterations", 33),
        ("lanes", 17),
        ("salt", "00" * 8),  # too short
        ("salt", "AB" * 16),  # upper case
    ],
)
def test_kdf_parameters_out_of_range_are_refused(member: str, value: object) -> None:
    doc = _doc(_sealed())
    doc["kdf"][member] = value
    with pytest.raises(SchemaError, match=f"kdf.{member}"):
        open_secret(_dump(doc), PASSPHRASE, purpose=PURPOSE_SIGNING)


def test_kdf_params_validate() -> None:
    with pytest.raises(ValueError, match="lanes"):
        KdfParams(memory_kib=64, iterations=1, lanes=0)
    with pytest.raises(ValueError, match="memory_kib"):
        KdfParams(memory_kib=4 * 1024 * 1024, iterations=1, lanes=1)
    with pytest.raises(ValueError, match="iterations"):
        KdfParams(memory_kib=64, iterations=True, lanes=1)


def test_bad_arguments_are_programmer_errors() -> None:
    rng = DeterministicRandom(3)
    with pytest.raises(ValueError, match="purpose"):
        seal_secret(SECRET, PASSPHRASE, purpose="Signing Key", rng=rng, params=TEST_KDF)
    with pytest.raises(ValueError, match="secret"):
        seal_secret(b"", PASSPHRASE, purpose=PURPOSE_SIGNING, rng=rng, params=TEST_KDF)
    with pytest.raises(TypeError):
        seal_secret(SECRET, "str", purpose=PURPOSE_SIGNING, rng=rng, params=TEST_KDF)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        open_secret("{}", PASSPHRASE, purpose=PURPOSE_SIGNING)  # type: ignore[arg-type]


def test_one_sealer_derives_once_and_one_opener_once_per_salt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key directory (four files, one salt) costs one derivation to seal and one to open."""
    calls: list[bytes] = []
    real = envelope._argon2

    def counting(passphrase: bytes, params: KdfParams, salt: bytes) -> Any:
        calls.append(salt)
        return real(passphrase, params, salt)

    monkeypatch.setattr(envelope, "_argon2", counting)
    sealer = PassphraseSealer(PASSPHRASE, rng=DeterministicRandom(4), params=TEST_KDF)
    files = {
        p: sealer.seal(SECRET + p.encode(), purpose=p) for p in (PURPOSE_SIGNING, PURPOSE_SEALING)
    }
    other = _sealed(purpose=PURPOSE_AUDIT)
    assert len(calls) == 2
    opener = PassphraseOpener(PASSPHRASE)
    for purpose, data in files.items():
        assert opener.open(data, purpose=purpose) == SECRET + purpose.encode()
    assert opener.open(other, purpose=PURPOSE_AUDIT) == SECRET
    assert len(calls) == 4  # one per distinct salt
    nonces = {_doc(d)["aead"]["nonce"] for d in files.values()}
    assert len(nonces) == 2
    assert "<key>" in repr(sealer) and "passphrase>" in repr(opener)
    with pytest.raises(TypeError):
        pickle.dumps(opener)


def test_wrapped_round_trip_and_binding() -> None:
    data = wrap_secret(SECRET, WRAPPING, purpose=PURPOSE_SOURCE_HANDLE, rng=DeterministicRandom(5))
    doc = _doc(data)
    assert doc["format"] == WRAPPED_FORMAT
    assert doc["kdf"]["name"] == "hkdf-sha256" and set(doc["kdf"]) == {"name", "salt"}
    assert is_envelope(data)
    assert unwrap_secret(data, WRAPPING, purpose=PURPOSE_SOURCE_HANDLE) == SECRET
    with pytest.raises(DecryptionError):
        unwrap_secret(data, b"\x43" * 32, purpose=PURPOSE_SOURCE_HANDLE)
    with pytest.raises(InputError, match="not for"):
        unwrap_secret(data, WRAPPING, purpose=PURPOSE_SEALING)
    doc["kdf"]["salt"] = "11" * 16
    with pytest.raises(DecryptionError):
        unwrap_secret(_dump(doc), WRAPPING, purpose=PURPOSE_SOURCE_HANDLE)
    with pytest.raises(SchemaError, match="format"):
        unwrap_secret(_sealed(), WRAPPING, purpose=PURPOSE_SIGNING)
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_secret(SECRET, b"short", purpose=PURPOSE_SOURCE_HANDLE, rng=DeterministicRandom(6))


# -- fuzzing: garbage in, only xlink's own exceptions out -------------------------------------

_VALID = _sealed()
_WRAPPED = wrap_secret(SECRET, WRAPPING, purpose=PURPOSE_SOURCE_HANDLE, rng=DeterministicRandom(7))


def _open_any(data: bytes) -> None:
    """Both parsers on ``data``: xlink's own exceptions are fine, anything else fails."""
    with contextlib.suppress(XlinkError):
        open_secret(data, PASSPHRASE, purpose=PURPOSE_SIGNING)
    with contextlib.suppress(XlinkError):
        unwrap_secret(data, WRAPPING, purpose=PURPOSE_SOURCE_HANDLE)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_xlink_errors(data: bytes) -> None:
    _open_any(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([_VALID, _WRAPPED]),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_envelopes_raise_only_xlink_errors(
    base: bytes, changes: list[tuple[int, int]]
) -> None:
    data = bytearray(base)
    for at, value in changes:
        data[at % len(data)] = value
    _open_any(bytes(data))


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["format", "purpose", "kdf", "aead", "ciphertext"]),
    st.sampled_from([None, "name", "memory_kib", "iterations", "lanes", "salt", "nonce"]),
    _JSON,
)
def test_members_of_any_json_type_raise_only_xlink_errors(
    member: str, inner: str | None, value: object
) -> None:
    """Any member (or member of kdf/aead) replaced by any JSON value: a SchemaError, an
    InputError or a DecryptionError, never a crash. Memory is capped (2 GiB), so a valid
    file can never ask for more."""
    for base in (_VALID, _WRAPPED):
        doc = _doc(base)
        if inner is not None and isinstance(doc.get(member), dict):
            if inner == "memory_kib" and isinstance(value, int) and value > 1 << 16:
                value = 1 << 16  # keep the test fast: 64 MiB at most
            doc[member][inner] = value
        else:
            doc[member] = value
        _open_any(_dump(doc))
