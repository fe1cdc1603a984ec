"""A hub's signing key, sealed at rest in one file (docs/keys.md §10, docs/mou.md §8).

The information-sharing hub named in a multilateral MOU (``[hub]``) holds one Ed25519 key: it
cosigns audit checkpoints and authenticates the hub to the agencies; the MOU names its public
half (``hub.verify_key``). The key file::

    hub.key   xlink-sealed-key-v1, purpose xlink/v1/key/hub-signing      mode 0600

is sealed like an agency's key files (:mod:`xlink.crypto.keyfiles`): the passphrase envelope
of :mod:`xlink.crypto.envelope` (Argon2id, then ChaCha20-Poly1305, bound to its own purpose),
written all or nothing, owner-only, by :mod:`xlink.crypto._secret_files`, and refused on
reading when its group or others may read it. The sealed secret is the 32-byte Ed25519 seed
followed by the hub id in ASCII, so the id is authenticated together with the key and nothing
else needs to be kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from xlink.crypto._secret_files import DIR_MODE, fsync_dir, read_private_file, write_file
from xlink.crypto.envelope import (
    DEFAULT_KDF,
    PURPOSE_HUB_SIGNING,
    KdfParams,
    check_passphrase_strength,
    open_secret,
    seal_secret,
)
from xlink.crypto.keys import KEY_SIZE, SigningKey, VerifyKey
from xlink.crypto.rand import RandomSource
from xlink.errors import IdentifierError, InputError, SchemaError
from xlink.identifiers import check_agency_id

__all__ = ["HUB_KEY_FILE", "HubKey"]

#: The usual name of a hub's key file (``hub_ceremony`` writes it there).
HUB_KEY_FILE: Final = "hub.key"


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class HubKey:
    """A hub's id (an agency id, as the MOU's ``hub.hub_id``) and its Ed25519 signing key."""

    hub_id: str
    signing_key: SigningKey

    @classmethod
    def generate(cls, hub_id: str, *, rng: RandomSource) -> HubKey:
        """A fresh key for ``hub_id``. Raises :class:`~xlink.errors.IdentifierError` (a
        ``ValueError``) for an id an MOU could not name (:data:`xlink.identifiers.AGENCY_ID`)."""
        return cls(check_agency_id(hub_id, what="hub_id"), SigningKey.generate(rng))

    @property
    def verify_key(self) -> VerifyKey:
        """The public half: the MOU's ``hub.verify_key``."""
        return self.signing_key.verify_key

    def save(
        self,
        path: str | Path,
        passphrase: bytes,
        *,
        params: KdfParams = DEFAULT_KDF,
        rng: RandomSource,
        overwrite: bool = False,
    ) -> Path:
        """Write the sealed key file at ``path`` (its directory created mode 0700 if missing);
        return ``path``. ``params`` lighter than the default are for tests
        (:data:`~xlink.crypto.envelope.TEST_KDF`). Raises
        :class:`~xlink.errors.WeakPassphrase` (an ``InputError``) for a passphrase the strength
        check refuses, :class:`~xlink.errors.InputError` if the file exists and not
        ``overwrite``."""
        check_passphrase_strength(passphrase, context=(self.hub_id,))
        out = Path(path)
        out.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        secret = self.signing_key.seed() + self.hub_id.encode("ascii")
        sealed = seal_secret(
            secret, passphrase, purpose=PURPOSE_HUB_SIGNING, rng=rng, params=params
        )
        write_file(out, sealed, overwrite=overwrite)
        fsync_dir(out.parent)
        return out

    @classmethod
    def load(cls, path: str | Path, passphrase: bytes) -> HubKey:
        """Open a key file written by :meth:`save`. Raises
        :class:`~xlink.errors.DecryptionError` (and nothing more specific) for a wrong
        passphrase or a changed file; :class:`~xlink.errors.InputError` naming the file when it
        is missing, readable by group or others, sealed for another purpose or holds no hub
        key; :class:`~xlink.errors.SchemaError` when it is not a sealed-key file."""
        if not isinstance(passphrase, bytes):
            raise TypeError("passphrase must be bytes")
        src = Path(path)
        data = read_private_file(src)
        try:
            secret = open_secret(data, passphrase, purpose=PURPOSE_HUB_SIGNING)
        except SchemaError as exc:
            raise SchemaError([f"{src}: {e}" for e in exc.errors]) from None
        except InputError as exc:  # sealed for another purpose: not a hub key
            raise InputError(f"{src}: {exc}") from None
        seed, raw_id = secret[:KEY_SIZE], secret[KEY_SIZE:]
        try:
            hub_id = check_agency_id(raw_id.decode("ascii"), what="hub_id")
        except (UnicodeDecodeError, IdentifierError):
            raise InputError(f"{src}: not a hub key (no hub id sealed with the key)") from None
        return cls(hub_id, SigningKey(seed))

    def __repr__(self) -> str:
        return f"HubKey({self.hub_id!r}, {self.signing_key!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("private keys cannot be pickled")
