"""Benchmark: the candidate primitives for the PSI ciphersuite, on one core.

The figures behind the choice of ciphersuite 1 (docs/PERFORMANCE.md, "Choosing the suite"):
scalar multiplication with X25519 (OpenSSL, via cryptography) against edwards25519 (libsodium,
via PyNaCl, the only prime-order-group operation PyNaCl exposes with an invertible scalar), hash to
group, and a 255-bit modular exponentiation in Python (why no per-element field arithmetic is
done in Python). Prints one JSON object of microseconds per operation.

Usage::

    python bench/suite_bench.py --ops 20000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl import bindings as sodium

from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import SUITE_X25519, BlindingKey

P = 2**255 - 19
T = TypeVar("T")


def per_op(fn: Callable[[T], object], items: Sequence[T]) -> float:
    """Microseconds per call of ``fn`` over ``items``."""
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ops", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.ops
    rng = DeterministicRandom(b"suite-bench")

    key = X25519PrivateKey.generate()
    pubs = [X25519PrivateKey.generate().public_key().public_bytes_raw() for _ in range(256)]
    pubs = (pubs * (n // 256 + 1))[:n]
    parsed = [X25519PublicKey.from_public_bytes(p) for p in pubs]

    scalar = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
    points = [
        sodium.crypto_scalarmult_ed25519_base_noclamp(
            sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
        )
        for _ in range(256)
    ]
    points = (points * (n // 256 + 1))[:n]
    uniforms = [os.urandom(32) for _ in range(n)]
    xs = [int.from_bytes(os.urandom(32), "little") % P for _ in range(min(n, 2000))]
    tokens = rng(32 * n)
    elements = SUITE_X25519.hash_to_group(b"bench", tokens)
    blinding = BlindingKey.generate(rng)

    batch = [tokens]  # the suite's own functions take whole buffers: one call, n operations
    figures = {
        "ops": n,
        "x25519_exchange_parsed_us": per_op(key.exchange, parsed),
        "x25519_exchange_from_bytes_us": per_op(
            lambda p: key.exchange(X25519PublicKey.from_public_bytes(p)), pubs
        ),
        "ed25519_scalarmult_noclamp_us": per_op(
            lambda q: sodium.crypto_scalarmult_ed25519_noclamp(scalar, q), points
        ),
        "ed25519_from_uniform_us": per_op(sodium.crypto_core_ed25519_from_uniform, uniforms),
        "python_pow_255bit_us": per_op(lambda x: pow(x, (P - 1) // 2, P), xs),
        "xlink_hash_to_group_us": per_op(lambda t: SUITE_X25519.hash_to_group(b"bench", t), batch)
        / n,
        "xlink_blind_us": per_op(lambda e: SUITE_X25519.blind(blinding, e), [elements]) / n,
    }
    rounded = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()}
    print(json.dumps(rounded, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
