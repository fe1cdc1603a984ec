"""Independent, pure-Python reference for ciphersuite 2's hash to group (spec xlink-psi-v2 §4.6).

Slow (Python big integers) and written from the spec's text and RFC 9496, not from xlink's code:
ristretto255's one-way map (RFC 9496 §4.3.4: two MAPs of §4.3.4, an addition, the encoding of
§4.3.2), then the element ``u = s² mod p``. It exists so that implementers can compare their
intermediate values step by step (``steps()``) and so that the tests can check the spec's
description against libsodium. Not used by the library.
"""

from __future__ import annotations

import hashlib

from hash_to_group import SQRT_M1, D, P, expand_message_xmd_sha512

VECTOR_DST = b"xlink-psi-v1:XLINK-PSI-X25519-SHA512-R255:" + bytes(range(32))


def _is_negative(x: int) -> bool:
    return x % P % 2 == 1


def _abs(x: int) -> int:
    x %= P
    return P - x if _is_negative(x) else x


def sqrt_ratio_m1(u: int, v: int) -> tuple[bool, int]:
    """RFC 9496 §4.2 ``SQRT_RATIO_M1``: (whether u/v is square, the non-negative root)."""
    v3 = v * v % P * v % P
    v7 = v3 * v3 % P * v % P
    r = u * v3 % P * pow(u * v7 % P, (P - 5) // 8, P) % P
    check = v * r % P * r % P
    correct = check == u % P
    flipped = check == (-u) % P
    flipped_i = check == (-u) * SQRT_M1 % P
    if flipped or flipped_i:
        r = r * SQRT_M1 % P
    return correct or flipped, _abs(r)


# RFC 9496 §4.1's constants: SQRT_AD_MINUS_ONE is the negative (odd) root of a·d - 1 (a = -1),
# INVSQRT_A_MINUS_D the non-negative root of 1/(a - d).
SQRT_AD_MINUS_ONE = P - sqrt_ratio_m1((-1 * D - 1) % P, 1)[1]
INVSQRT_A_MINUS_D = sqrt_ratio_m1(1, (-1 - D) % P)[1]
assert SQRT_AD_MINUS_ONE == (
    25063068953384623474111414158702152701244531502492656460079210482610430750235
)
assert INVSQRT_A_MINUS_D == (
    54469307008909316920995813868745141605393597292927456921205312896311721017578
)
ONE_MINUS_D_SQ = (1 - D * D) % P
D_MINUS_ONE_SQ = (D - 1) * (D - 1) % P

Extended = tuple[int, int, int, int]  # (X : Y : Z : T), x = X/Z, y = Y/Z, x·y = T/Z


def ristretto_map(t: int) -> Extended:
    """RFC 9496 §4.3.4 ``MAP``: one field element to a point (extended coordinates)."""
    r = SQRT_M1 * t % P * t % P
    u = (r + 1) * ONE_MINUS_D_SQ % P
    v = (-1 - r * D) * (r + D) % P
    was_square, s = sqrt_ratio_m1(u, v)
    s_prime = (-_abs(s * t)) % P
    s = s if was_square else s_prime
    c = (P - 1) if was_square else r
    n = (c * (r - 1) % P * D_MINUS_ONE_SQ - v) % P
    w0 = 2 * s * v % P
    w1 = n * SQRT_AD_MINUS_ONE % P
    w2 = (1 - s * s) % P
    w3 = (1 + s * s) % P
    return (w0 * w3 % P, w2 * w1 % P, w1 * w3 % P, w0 * w2 % P)


def add(p: Extended, q: Extended) -> Extended:
    """Point addition on edwards25519 (a = -1), extended coordinates (unified formula)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 % P * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def encode(p: Extended) -> bytes:
    """RFC 9496 §4.3.2 ``ENCODE``."""
    x0, y0, z0, t0 = p
    u1 = (z0 + y0) * (z0 - y0) % P
    u2 = x0 * y0 % P
    _, invsqrt = sqrt_ratio_m1(1, u1 * u2 % P * u2 % P)
    den1 = invsqrt * u1 % P
    den2 = invsqrt * u2 % P
    z_inv = den1 * den2 % P * t0 % P
    rotate = _is_negative(t0 * z_inv)
    if rotate:
        x, y = y0 * SQRT_M1 % P, x0 * SQRT_M1 % P
        den_inv = den1 * INVSQRT_A_MINUS_D % P
    else:
        x, y, den_inv = x0, y0, den2
    if _is_negative(x * z_inv):
        y = (-y) % P
    return _abs(den_inv * (z0 - y)).to_bytes(32, "little")


def one_way_map(uniform: bytes) -> bytes:
    """RFC 9496 §4.3.4: 64 bytes to a ristretto255 encoding (libsodium's
    ``crypto_core_ristretto255_from_hash``)."""
    mask = (1 << 255) - 1
    t1 = int.from_bytes(uniform[:32], "little") & mask
    t2 = int.from_bytes(uniform[32:], "little") & mask
    return encode(add(ristretto_map(t1 % P), ristretto_map(t2 % P)))


def steps(token: bytes, dst: bytes) -> dict[str, str]:
    """Every intermediate value of suite 2's hash to group, hex-encoded (spec §4.6)."""
    uniform = expand_message_xmd_sha512(token, dst, 64)
    s = one_way_map(uniform)
    u = int.from_bytes(s, "little") ** 2 % P
    return {
        "token": token.hex(),
        "uniform": uniform.hex(),
        "point": s.hex(),
        "element": u.to_bytes(32, "little").hex(),
    }


def vectors() -> dict[str, object]:
    """The step-by-step vectors of ``protocols/vectors/psi-v2/hash_to_group_suite2.json``."""
    tokens = [bytes(32), bytes([0xFF]) * 32] + [
        hashlib.sha256(b"xlink hash-to-group vector %d" % i).digest() for i in range(6)
    ]
    return {
        "description": "xlink-psi-v2 ciphersuite 2 hash to group (spec §4.6), step by step",
        "dst": VECTOR_DST.hex(),
        "cases": [steps(t, VECTOR_DST) for t in tokens],
    }


if __name__ == "__main__":
    import json
    import sys

    text = json.dumps(vectors(), indent=2) + "\n"
    if sys.argv[1:] == ["--check"]:
        with open("protocols/vectors/psi-v2/hash_to_group_suite2.json", encoding="utf-8") as f:
            sys.exit(0 if f.read() == text else 1)
    sys.stdout.write(text)
