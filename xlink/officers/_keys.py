"""An officer's own key: an Ed25519 signing key the officer alone unlocks, and the public file
the agency enrols (docs/store.md, "Officers").

An officer key directory holds two files::

    officer.key    the signing seed in the passphrase envelope (xlink.crypto.envelope)  0600
    officer.json   the public half: format, name, verify key                            0600

The officer's passphrase is not the agency's: an operator who runs exchanges cannot sign as an
officer, and an officer cannot run exchanges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from xlink.crypto.envelope import (
    DEFAULT_KDF,
    KdfParams,
    check_passphrase_strength,
    open_secret,
    seal_secret,
)
from xlink.crypto.keyfiles import read_private_file, write_file
from xlink.crypto.keys import KEY_SIZE, SigningKey, VerifyKey
from xlink.crypto.rand import RandomSource
from xlink.documents import DocumentError, parse_document, read_document
from xlink.errors import InputError, SchemaError
from xlink.officers._acts import OfficerAct, OfficerAction

__all__ = [
    "OFFICER_KEY_FILE",
    "OFFICER_PUBLIC_FILE",
    "OFFICER_PUBLIC_FORMAT",
    "OfficerKey",
    "OfficerPublic",
    "check_officer_name",
    "load_officer_public",
]

OFFICER_KEY_FILE: Final = "officer.key"
OFFICER_PUBLIC_FILE: Final = "officer.json"
OFFICER_PUBLIC_FORMAT: Final = "xlink-officer-key-v1"
#: The envelope purpose of an officer's seed (domain separation from the agency's keys).
PURPOSE_OFFICER: Final = "xlink/v1/key/officer"
MAX_NAME_CHARS: Final = 64


def check_officer_name(name: object) -> str:
    """A badge number or name as the agency knows the officer: 1 to 64 printable characters,
    no control characters. It stays in the enrolment file and never reaches the audit log,
    which names the officer's key fingerprint instead."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_NAME_CHARS
        or not name.isprintable()
        or name != name.strip()
    ):
        raise InputError(
            f"officer name: 1 to {MAX_NAME_CHARS} printable characters, no leading or "
            "trailing space"
        )
    return name


@dataclass(frozen=True, slots=True)
class OfficerPublic:
    """The public half of an officer's key, as the agency enrols it."""

    name: str
    verify_key: VerifyKey

    def to_json(self) -> str:
        doc = {
            "format": OFFICER_PUBLIC_FORMAT,
            "name": self.name,
            "verify_key": bytes(self.verify_key).hex(),
        }
        return json.dumps(doc, indent=2) + "\n"


def _parse_public(text: bytes, where: str) -> OfficerPublic:
    try:
        data = parse_document(text, "json")
    except DocumentError as exc:
        raise SchemaError([f"{where}: {exc.reason}"]) from None
    if not isinstance(data, dict) or set(data) != {"format", "name", "verify_key"}:
        raise SchemaError([f"{where}: must be an object with format, name and verify_key"])
    errors = []
    if data["format"] != OFFICER_PUBLIC_FORMAT:
        errors.append(f"{where}: format must be {OFFICER_PUBLIC_FORMAT!r}")
    try:
        name = check_officer_name(data["name"])
    except InputError as exc:
        errors.append(f"{where}: {exc}")
    raw = data["verify_key"]
    key = None
    try:
        if not isinstance(raw, str) or len(raw) != 2 * KEY_SIZE or raw != raw.lower():
            raise ValueError
        key = VerifyKey(bytes.fromhex(raw))
    except ValueError:
        errors.append(f"{where}: verify_key must be an Ed25519 public key in 64 hex digits")
    if errors:
        raise SchemaError(errors)
    assert key is not None
    return OfficerPublic(name, key)


def load_officer_public(path: str | Path) -> OfficerPublic:
    """Read an ``officer.json`` (or the directory holding it). ``InputError`` if unreadable,
    :class:`~xlink.errors.SchemaError` if invalid."""
    p = Path(path)
    if p.is_dir():
        p = p / OFFICER_PUBLIC_FILE
    try:
        text = read_document(p)
    except OSError:
        raise InputError(f"{p}: cannot read the officer's public key file") from None
    return _parse_public(text, str(p))


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class OfficerKey:
    """An officer's signing key and name."""

    name: str
    signing_key: SigningKey

    @classmethod
    def generate(cls, name: str, *, rng: RandomSource) -> OfficerKey:
        return cls(check_officer_name(name), SigningKey.generate(rng))

    @property
    def public(self) -> OfficerPublic:
        return OfficerPublic(self.name, self.signing_key.verify_key)

    @property
    def fingerprint(self) -> str:
        return self.signing_key.verify_key.fingerprint()

    def sign_act(
        self,
        action: OfficerAction,
        *,
        agency: str,
        target: bytes,
        detail: str,
        now: datetime,
    ) -> OfficerAct:
        """Sign one act (:mod:`xlink.officers._acts`) addressed to ``agency``'s store or
        queue, dated ``now``."""
        act = OfficerAct(agency, action, target, detail, now, self.signing_key.verify_key, b"")
        signature = self.signing_key.sign(act.message())
        return OfficerAct(agency, action, target, detail, now, act.officer, signature)

    def save(
        self,
        directory: str | Path,
        passphrase: bytes,
        *,
        rng: RandomSource,
        params: KdfParams = DEFAULT_KDF,
        overwrite: bool = False,
    ) -> Path:
        """Write ``officer.key`` (sealed with ``passphrase``) and ``officer.json``; return the
        public file's path. ``InputError`` if a file exists and not ``overwrite``, or for a
        weak passphrase."""
        check_passphrase_strength(passphrase, context=(self.name,))
        out = Path(directory)
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        sealed = seal_secret(
            self.signing_key.seed(), passphrase, purpose=PURPOSE_OFFICER, rng=rng, params=params
        )
        write_file(out / OFFICER_KEY_FILE, sealed, overwrite=overwrite)
        public = self.public.to_json().encode("utf-8")
        write_file(out / OFFICER_PUBLIC_FILE, public, overwrite=overwrite)
        return out / OFFICER_PUBLIC_FILE

    @classmethod
    def load(cls, directory: str | Path, passphrase: bytes) -> OfficerKey:
        """Unlock an officer key directory. :class:`~xlink.errors.DecryptionError` for a wrong
        passphrase or a damaged key; ``InputError`` for a missing or too-open file or a
        public file that is not this key's."""
        src = Path(directory)
        public = load_officer_public(src / OFFICER_PUBLIC_FILE)
        seed = open_secret(
            read_private_file(src / OFFICER_KEY_FILE), passphrase, purpose=PURPOSE_OFFICER
        )
        key = SigningKey(seed)
        if key.verify_key != public.verify_key:
            raise InputError(f"{src / OFFICER_PUBLIC_FILE}: is not the key in {OFFICER_KEY_FILE}")
        return cls(public.name, key)

    def __repr__(self) -> str:
        return f"OfficerKey({self.fingerprint})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("private keys cannot be pickled")
