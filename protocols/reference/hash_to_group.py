"""Independent, pure-Python reference for ciphersuite 1's hash to group (spec xlink-psi-v1 §4.1).

Slow (Python big integers) and written from the spec's text, not from xlink's code: it exists so
that the spec's description can be checked against libsodium and so that implementers can
compare their intermediate values step by step (``steps()``). Not used by the library.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
A = 486662
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)  # a square root of -1
# sqrt(-486664), the scale factor of the birational map to edwards25519 (RFC 7748 §4.1),
# the root whose canonical encoding is even.
_S = pow((-486664) % P, (P + 3) // 8, P)
if _S * _S % P != (-486664) % P:
    _S = _S * SQRT_M1 % P
SQRT_M486664 = _S if _S % 2 == 0 else P - _S


def _inv(x: int) -> int:
    return pow(x, P - 2, P)  # inv(0) = 0, as in libsodium's fe25519_invert


def _is_square(x: int) -> bool:
    return x == 0 or pow(x, (P - 1) // 2, P) == 1


def _sqrt(x: int) -> int:
    r = pow(x, (P + 3) // 8, P)
    if r * r % P != x % P:
        r = r * SQRT_M1 % P
    assert r * r % P == x % P
    return r


def expand_message_xmd_sha512(msg: bytes, dst: bytes, n: int) -> bytes:
    """RFC 9380 §5.3.1 with SHA-512."""
    ell = -(-n // 64)
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + n.to_bytes(2, "big") + b"\0" + dst_prime).digest()
    out = [hashlib.sha512(b0 + b"\1" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(a ^ b for a, b in zip(b0, out[-1], strict=True))
        out.append(hashlib.sha512(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(out)[:n]


Point = tuple[int, int]  # affine edwards25519 (x, y)


def _add(p: Point, q: Point) -> Point:
    (x1, y1), (x2, y2) = p, q
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * _inv(1 + t) % P,
        (y1 * y2 + x1 * x2) * _inv(1 - t) % P,
    )


def _encode(p: Point) -> bytes:
    x, y = p
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def from_uniform(r: bytes) -> Point:
    """libsodium's ``crypto_core_ed25519_from_uniform``, as spec §4.1 describes it."""
    sign = r[31] >> 7
    t = int.from_bytes(r, "little") & ((1 << 255) - 1)
    t %= P
    # Elligator 2 on Curve25519 with the non-square Z = 2.
    u = (-A * _inv(1 + 2 * t * t)) % P
    if not _is_square((u * u * u + A * u * u + u) % P):
        u = (-u - A) % P
    v = _sqrt((u * u * u + A * u * u + u) % P)
    # Birational map to edwards25519 (RFC 7748 §4.1): x = sqrt(-486664) u / v, y = (u-1)/(u+1).
    x = SQRT_M486664 * u * _inv(v) % P
    y = (u - 1) * _inv(u + 1) % P
    if (x & 1) != sign:
        x = (P - x) % P
    q = (x, y)
    for _ in range(3):  # clear the cofactor: multiply by 8
        q = _add(q, q)
    return q


def steps(token: bytes, dst: bytes) -> dict[str, str]:
    """Every intermediate value of hash to group, hex-encoded (spec §4.1 steps 1-4)."""
    uniform = expand_message_xmd_sha512(token, dst, 64)
    p0, p1 = from_uniform(uniform[:32]), from_uniform(uniform[32:])
    q = _add(p0, p1)
    u = (1 + q[1]) * _inv(1 - q[1]) % P
    return {
        "token": token.hex(),
        "uniform": uniform.hex(),
        "p0": _encode(p0).hex(),
        "p1": _encode(p1).hex(),
        "q": _encode(q).hex(),
        "element": u.to_bytes(32, "little").hex(),
    }


VECTOR_DST = b"xlink-psi-v1:XLINK-PSI-X25519-SHA512-ELL2RO:" + bytes(range(32))


def vectors() -> dict[str, object]:
    """The step-by-step vectors of ``protocols/vectors/psi-v2/hash_to_group.json``."""
    tokens = [bytes(32), bytes([0xFF]) * 32] + [
        hashlib.sha256(b"xlink hash-to-group vector %d" % i).digest() for i in range(6)
    ]
    return {
        "description": "xlink-psi-v1 ciphersuite 1 hash to group (spec §4.1), step by step",
        "dst": VECTOR_DST.hex(),
        "cases": [steps(t, VECTOR_DST) for t in tokens],
    }


if __name__ == "__main__":
    import json
    import sys

    text = json.dumps(vectors(), indent=2) + "\n"
    if sys.argv[1:] == ["--check"]:
        with open("protocols/vectors/psi-v2/hash_to_group.json", encoding="utf-8") as f:
            sys.exit(0 if f.read() == text else 1)
    sys.stdout.write(text)
