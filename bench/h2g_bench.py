"""Benchmark: where the hash to group's time goes, and what each way of making it cheaper gives.

Ciphersuite 1 hashes a token to the group with ``expand_message_xmd`` (SHA-512), two
Elligator 2 maps (libsodium's ``crypto_core_ed25519_from_uniform``), one point addition
(``crypto_core_ed25519_add``) and a conversion to the Montgomery u-coordinate, one field
inversion per batch (xlink-psi-v2 §4.1). The options measured here, each as microseconds per
token and as a ratio to one X25519 scalar multiplication measured in the same run:

- ``parts``: each step on its own, and the whole hash as xlink runs it;
- ``suite2``: ciphersuite 2's hash (xlink-psi-v2 §4.6): the same ``expand_message_xmd``, then
  ristretto255's one-way map through rbcl (``crypto_core_ristretto255_from_hash``) and a
  squaring modulo ``p``: its parts and the whole hash as xlink runs it;
- ``x25519_openssl`` (what the session blinds with) and ``x25519_libsodium`` (the same
  function through PyNaCl) for the floor;
- ``python_field_pow``: one 255-bit modular exponentiation in Python, the least a map written
  in Python needs per token (Elligator 2 takes a square root or a Legendre symbol, which no
  batching shares): what a direct map to the Montgomery curve would cost without a library
  that exposes one;
- ``cache_lookup``: a token's element read back from the cache of a previous exchange
  (:func:`xlink.protocol.hashed.hash_tokens` with every token cached, file read included);
- ``pool``: the hash on a :class:`~xlink.crypto.workers.GroupWorkers` of each size in
  ``--workers``: wall time per token (divide the 1-worker figure by it for the speed-up).

Usage::

    python bench/h2g_bench.py --n 50000 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl import bindings as sodium

from xlink.crypto import _rbcl
from xlink.crypto.suite import SUITE_R255, SUITE_X25519, edwards_to_u, expand_message_xmd_sha512
from xlink.crypto.workers import GroupWorkers
from xlink.linkage.tokens import TokenSet
from xlink.protocol._keys import hash_to_group_dst
from xlink.protocol.hashed import hash_tokens

MOU_DIGEST = hashlib.sha256(b"h2g bench mou").digest()
P = 2**255 - 19


def _per_op(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="tokens")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="pool sizes")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    n = args.n
    dst = hash_to_group_dst(SUITE_X25519.name, MOU_DIGEST)
    tokens = os.urandom(32 * n)
    rows = [tokens[32 * i : 32 * (i + 1)] for i in range(n)]
    uniforms = [expand_message_xmd_sha512(t, dst, 64) for t in rows]
    halves = [u[:32] for u in uniforms]
    from_uniform, add = sodium.crypto_core_ed25519_from_uniform, sodium.crypto_core_ed25519_add
    pts = [from_uniform(h) for h in halves]
    summed = b"".join(add(pts[i], pts[i - 1]) for i in range(n))
    elements = SUITE_X25519.hash_to_group(dst, tokens)
    els = [elements[32 * i : 32 * (i + 1)] for i in range(n)]
    key = X25519PrivateKey.generate()
    scalar = os.urandom(32)
    parts = {
        "expand_message_xmd": _per_op(
            lambda: [expand_message_xmd_sha512(t, dst, 64) for t in rows], n
        ),
        "from_uniform": _per_op(lambda: [from_uniform(h) for h in halves], n),
        "edwards_add": _per_op(lambda: [add(pts[i], pts[i - 1]) for i in range(n)], n),
        "to_montgomery_batched": _per_op(lambda: edwards_to_u(summed), n),
        "whole_hash_to_group": _per_op(lambda: SUITE_X25519.hash_to_group(dst, tokens), n),
    }
    dst2 = hash_to_group_dst(SUITE_R255.name, MOU_DIGEST)
    uniforms2 = [expand_message_xmd_sha512(t, dst2, 64) for t in rows]
    encodings = [int.from_bytes(_rbcl.from_hash(u), "little") for u in uniforms2]
    suite2 = {
        "one_way_map": _per_op(lambda: [_rbcl.from_hash(u) for u in uniforms2], n),
        "square": _per_op(lambda: [(e * e % P).to_bytes(32, "little") for e in encodings], n),
        "whole_hash_to_group": _per_op(lambda: SUITE_R255.hash_to_group(dst2, tokens), n),
    }
    x_openssl = _per_op(
        lambda: [key.exchange(X25519PublicKey.from_public_bytes(e)) for e in els], n
    )
    x_sodium = _per_op(lambda: [sodium.crypto_scalarmult(scalar, e) for e in els], n)
    bases = [int.from_bytes(e, "little") for e in els[: min(n, 5000)]]
    py_pow = _per_op(lambda: [pow(b, (P - 5) // 8, P) for b in bases], len(bases))
    token_set = TokenSet(
        key_names=("k",),
        record_ids=tuple(str(i) for i in range(n)),
        values=tokens,
        record_index=array("I", range(n)),
        key_index=array("B", bytes(n)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        hash_tokens(token_set, suite_id=1, mou_digest=MOU_DIGEST, cache_dir=cache)
        lookup = _per_op(
            lambda: hash_tokens(token_set, suite_id=1, mou_digest=MOU_DIGEST, cache_dir=cache), n
        )
    pool: dict[str, float] = {}
    for count in args.workers:
        with GroupWorkers(count, start_after=0) as workers:
            workers.hash_to_group(SUITE_X25519, dst, tokens[: 32 * 2048])  # start them
            pool[str(count)] = _per_op(
                lambda w=workers: w.hash_to_group(SUITE_X25519, dst, tokens), n
            )
    x = x_openssl

    def entry(us: float) -> dict[str, float]:
        return {"us": round(us, 3), "x25519": round(us / x, 3)}

    figures: dict[str, Any] = {
        "n": n,
        "cores": os.cpu_count(),
        "parts": {k: entry(v) for k, v in parts.items()},
        "suite2": {k: entry(v) for k, v in suite2.items()},
        "x25519_openssl": entry(x_openssl),
        "x25519_libsodium": entry(x_sodium),
        "python_field_pow": entry(py_pow),
        "cache_lookup": entry(lookup),
        "pool": {k: entry(v) for k, v in pool.items()},
    }
    print(json.dumps(figures, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
