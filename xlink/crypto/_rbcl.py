"""libsodium's ristretto255, from the ``rbcl`` wheel, imported once and typed.

``rbcl`` ships its libsodium inside the wheel and, on import, writes it to a temporary file and
loads it from there, never removing the file. Once the library is loaded the file is no longer
needed (the mapping stays valid after an unlink on POSIX), so this module removes it: without
that, every process that imports rbcl (each PSI worker among them) would leave 2.8 MB behind in
the temporary directory. On a system that refuses to remove a loaded library the file stays, as
it would have.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Final

import rbcl

__all__ = ["from_hash", "is_valid_point", "scalar_reduce", "scalarmult"]

_loader = sys.modules.get("rbcl._sodium")
_path = getattr(_loader, "lib_path", None)
if isinstance(_path, str):
    with contextlib.suppress(OSError):
        os.unlink(_path)

# rbcl ships no type information: typed names for the few functions used.
from_hash: Final[Callable[[bytes], bytes]] = rbcl.crypto_core_ristretto255_from_hash
"""RFC 9496 §4.3.4 one-way map: 64 bytes to a ristretto255 encoding."""
is_valid_point: Final[Callable[[bytes], bool]] = rbcl.crypto_core_ristretto255_is_valid_point
"""Whether 32 bytes decode as ristretto255 (libsodium 1.0.18 ignores bit 255: check it too)."""
scalar_reduce: Final[Callable[[bytes], bytes]] = rbcl.crypto_core_ristretto255_scalar_reduce
scalarmult: Final[Callable[[bytes, bytes], bytes]] = rbcl.crypto_scalarmult_ristretto255
"""``[s]P`` with ``s`` taken as is (no clamping); raises if the product is the identity."""
