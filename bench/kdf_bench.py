"""Benchmark: what one passphrase guess against a key file costs, now and before.

Prints JSON. An attacker holding a key file tries passphrases; each try costs one key
derivation. Measured in the same run, on the same machine (absolute times drift on shared
machines; the ratio does not):

- ``argon2id``: the envelope's Argon2id with :data:`xlink.crypto.envelope.DEFAULT_KDF`
  (docs/keys.md §2): ``wall_s`` per derivation (what an operator waits to unlock a directory),
  ``cpu_s`` per derivation (all threads: the lanes run in parallel), and ``guesses_per_s_core``
  = 1 / ``cpu_s``, what one core of an attacker's machine like this one achieves;
- ``pbkdf2_2048``: xlink 0.1's key files, PKCS#8 with ``BestAvailableEncryption``
  (PBKDF2-HMAC-SHA256, 2048 iterations): the same figures for one PBKDF2 derivation, and
  ``pem_open_s``, one full try at opening such a file with a wrong passphrase (the guess rate
  is the quicker of the two);
- ``ratio_per_core``: how many PBKDF2 guesses one Argon2id guess costs, per core.

Argon2id's cost is also memory (``memory_kib`` per guess, in flight), which PBKDF2 has none of:
a GPU or ASIC attacker that runs thousands of PBKDF2 guesses in parallel runs few Argon2id ones.
The ratio here is per CPU core and understates that.

Usage::

    python bench/kdf_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from xlink.crypto.envelope import DEFAULT_KDF

PASSPHRASE = b"correct horse battery staple"
WRONG = b"incorrect horse battery staple"
PBKDF2_ITERATIONS = 2048  # what BestAvailableEncryption writes for PKCS#8 (xlink 0.1)


def measure(step: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds of this process, all threads) of ``step``."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def argon2id() -> bytes:
    kdf = Argon2id(
        salt=os.urandom(16),
        length=32,
        iterations=DEFAULT_KDF.iterations,
        lanes=DEFAULT_KDF.lanes,
        memory_cost=DEFAULT_KDF.memory_kib,
        ad=b"xlink-sealed-key-v1",
    )
    return kdf.derive(WRONG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (best is kept)")
    args = parser.parse_args()

    argon_wall, argon_cpu = measure(argon2id, args.repeat)
    salt = os.urandom(16)
    batch = 50  # PBKDF2-2048 is quick: time a batch for a steady figure

    def pbkdf2_batch() -> None:
        for _ in range(batch):
            hashlib.pbkdf2_hmac("sha256", WRONG, salt, PBKDF2_ITERATIONS, 32)

    pbkdf2_wall, pbkdf2_cpu = (t / batch for t in measure(pbkdf2_batch, args.repeat))
    pem = Ed25519PrivateKey.from_private_bytes(bytes(32)).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )

    def pem_open_batch() -> None:
        for _ in range(batch):
            with contextlib.suppress(ValueError):
                serialization.load_pem_private_key(pem, WRONG)

    pem_wall, pem_cpu = (t / batch for t in measure(pem_open_batch, args.repeat))
    old_guess = min(pbkdf2_cpu, pem_cpu)  # the attacker takes the quicker way
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "argon2id": {
            "params": {
                "memory_kib": DEFAULT_KDF.memory_kib,
                "iterations": DEFAULT_KDF.iterations,
                "lanes": DEFAULT_KDF.lanes,
            },
            "wall_s": round(argon_wall, 4),
            "cpu_s": round(argon_cpu, 4),
            "guesses_per_s_core": round(1 / argon_cpu, 2),
        },
        "pbkdf2_2048": {
            "wall_s": round(pbkdf2_wall, 6),
            "cpu_s": round(pbkdf2_cpu, 6),
            "pem_open_s": round(pem_wall, 6),
            "pem_open_cpu_s": round(pem_cpu, 6),
            "guesses_per_s_core": round(1 / old_guess, 1),
        },
        "ratio_per_core": round(argon_cpu / old_guess),
        "repeat": args.repeat,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
