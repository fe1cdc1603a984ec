"""How many guesses a passphrase would take, estimated, and the check that refuses the easy
ones (docs/keys.md §2, "The strength check"). Re-exported by :mod:`xlink.crypto.envelope`.

The estimate is the cheapest way to write the passphrase as a sequence of pieces an attacker's
cracking rules would try, each piece costed in bits, in the spirit of zxcvbn (Wheeler, USENIX
Security 2016) but small: a bundled list of the most common passwords (also capitalised and in
"leet"), the agency id and its parts, runs of one character, sequences (``abcd``, ``4321``,
keyboard rows), keyboard walks (``1qaz2wsx``), years, and copies of an earlier piece; anything
else is priced as brute force over its character class. It knows no natural-language
dictionary, so for a sentence it is an upper bound: it refuses the trivial and the common, it
does not prove a passphrase strong.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Final

from xlink.errors import WeakPassphrase

__all__ = ["MIN_PASSPHRASE_BITS", "MIN_PASSPHRASE_BYTES", "check_passphrase_strength", "estimate"]

#: Below this length no estimate is made: the passphrase is refused.
MIN_PASSPHRASE_BYTES: Final = 12
#: The estimate a passphrase must reach. With the default Argon2id parameters one guess costs
#: about 0.7 CPU-seconds (docs/keys.md §2), so 2**40 guesses are about 24,000 CPU-years.
MIN_PASSPHRASE_BITS: Final = 40.0

# The most common passwords of the public breach corpora, most common first (their rank is
# their cost), lower case, letters only where the original had digits appended: the digits are
# priced as a piece of their own.
_COMMON: Final = (
    "password", "123456", "qwerty", "iloveyou", "admin", "welcome", "monkey", "dragon",
    "letmein", "football", "baseball", "sunshine", "master", "shadow", "princess", "trustno1",
    "abc123", "superman", "batman", "starwars", "whatever", "freedom", "hello", "charlie",
    "michael", "jennifer", "jordan", "hunter", "ranger", "buster", "soccer", "harley", "hockey",
    "killer", "george", "andrew", "thomas", "tigger", "robert", "access", "love", "cheese",
    "secret", "summer", "winter", "spring", "autumn", "flower", "computer", "internet",
    "changeme", "default", "login", "guest", "root", "test", "pass", "passphrase", "passwd",
    "mustang", "michelle", "daniel", "ashley", "bailey", "pepper", "maggie", "ginger", "joshua",
    "matthew", "jessica", "amanda", "nicole", "taylor", "austin", "yankees", "dallas", "orange",
    "banana", "chocolate", "cookie", "purple", "silver", "golden", "diamond", "matrix",
    "corvette", "ferrari", "mercedes", "porsche", "samsung", "apple", "google", "facebook",
    "linkedin", "microsoft", "pokemon", "naruto", "blink", "zxcvbn", "asdfgh", "qazwsx",
    "qwertyuiop", "asdfghjkl", "zxcvbnm", "lovely", "angel", "family", "friends", "forever",
    "nothing", "anything", "soleil", "bonjour", "canada", "america", "mexico", "police",
    "security", "xlink", "agency", "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december", "monday", "friday",
    "open", "sesame", "opensesame", "admin123", "root123", "p4ssw0rd", "azerty",
    "hallo", "passport", "dragonball", "princesa", "contrasena", "motdepasse", "passwort",
    "senha", "parola", "salasana", "haslo", "wachtwoord", "losenord", "adgangskode",
)  # fmt: skip
_RANK: Final = {word: rank for rank, word in reversed(list(enumerate(_COMMON, start=1)))}
_UNLEET: Final = str.maketrans({"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o",
                                "$": "s", "5": "s", "7": "t", "+": "t", "|": "l"})  # fmt: skip
_KEYBOARD_ROWS: Final = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "azertyuiop")
# A QWERTY keyboard, each row half a key right of the one above: keys next to each other in a
# row, or touching across rows, are one step of a "keyboard walk" (1qaz2wsx, zaq12wsx).
_QWERTY_ROWS: Final = ("1234567890-=", "qwertyuiop[]", "asdfghjkl;'", "zxcvbnm,./")
_KEY_AT: Final = {key: (r, c) for r, row in enumerate(_QWERTY_ROWS) for c, key in enumerate(row)}
_MAX_WORD: Final = max(map(len, _COMMON))
_MAX_ESTIMATED_CHARS: Final = 256  # beyond this, only the first 256 count (ample either way)


def _char_bits(char: str) -> float:
    if char.isascii():
        if char.isdigit():
            return math.log2(10)
        if char.isalpha():
            return math.log2(26)
        return math.log2(33)  # printable ASCII symbols and space
    return math.log2(100)


def _word_cost(piece: str) -> float | None:
    lower = piece.lower()
    variants = {lower, lower.translate(_UNLEET), lower.translate(_UNLEET).replace("i", "l")}
    ranks = [_RANK[v] for v in variants if v in _RANK]
    if not ranks:
        return None
    cost = math.log2(min(ranks)) + 1.0
    if piece != lower:
        cost += 1.0  # capitalised, or all upper case
    if lower.translate(_UNLEET) != lower:
        cost += 1.0
    return cost


def _sequence_cost(piece: str) -> float | None:
    lower = piece.lower()
    if any(lower in row or lower in row[::-1] for row in _KEYBOARD_ROWS):
        return math.log2(len(_KEYBOARD_ROWS) * 10) + 1.0 + math.log2(len(piece))
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(piece)}
    if len(steps) == 1 and steps <= {-1, 1} and (piece.isdigit() or piece.isalpha()):
        return math.log2(26) + 1.0 + math.log2(len(piece))
    return None


def _walk_step(a: str, b: str) -> tuple[int, int] | None:
    """The direction from key ``a`` to key ``b`` if they touch on the keyboard, else None."""
    if a not in _KEY_AT or b not in _KEY_AT:
        return None
    (ra, ca), (rb, cb) = _KEY_AT[a], _KEY_AT[b]
    # Row r+1 sits half a key right of row r: key c of row r touches keys c-1 and c of r+1.
    touching = (
        (rb == ra and abs(cb - ca) == 1)
        or (rb == ra + 1 and cb in (ca - 1, ca))
        or (rb == ra - 1 and cb in (ca, ca + 1))
    )
    return (rb - ra, cb - ca) if touching else None


def _walk_cost(piece: str) -> float | None:
    """A keyboard walk: every key touches the one before. Priced as its starting key, its
    length and each change of direction (six directions), as cracking rules enumerate them."""
    lower = piece.lower()
    steps = [_walk_step(a, b) for a, b in itertools.pairwise(lower)]
    if len(steps) < 2 or any(step is None for step in steps):
        return None
    if all(step is not None and step[0] == 0 for step in steps):
        return None  # along one row: a sequence (_sequence_cost)
    turns = sum(1 for x, y in itertools.pairwise(steps) if x != y)
    return math.log2(len(_KEY_AT)) + math.log2(len(piece)) + turns * math.log2(6) + 1.0


def _context_parts(context: Iterable[str]) -> set[str]:
    parts: set[str] = set()
    for word in context:
        lower = word.lower()
        parts |= {lower, lower.replace("-", ""), lower.replace("_", "")}
        parts |= {p for p in lower.replace("_", "-").split("-") if len(p) >= 2}
    return {p for p in parts if p}


def estimate(passphrase: str, context: Iterable[str] = ()) -> tuple[float, frozenset[str]]:
    """Estimated bits of guessing work for ``passphrase`` and the kinds of pieces the cheapest
    reading of it is made of (``common-password``, ``agency-id``, ``repeated``, ``sequence``,
    ``keyboard-walk``, ``year``; brute-forced characters add none). ``context`` are words an
    attacker would try first (the agency id)."""
    text = passphrase[:_MAX_ESTIMATED_CHARS]
    parts = _context_parts(context)
    n = len(text)
    nothing: frozenset[str] = frozenset()
    best = [(0.0, nothing)] + [(math.inf, nothing)] * n
    for j in range(1, n + 1):
        options: list[tuple[float, int, str | None]] = [(_char_bits(text[j - 1]), j - 1, None)]
        for i in range(max(0, j - max(_MAX_WORD, 64)), j - 1):
            piece = text[i:j]
            if j - i <= _MAX_WORD and (cost := _word_cost(piece)) is not None:
                options.append((cost, i, "common-password"))
            if piece.lower() in parts:
                options.append((2.0, i, "agency-id"))
            if j - i >= 3:
                if len(set(piece)) == 1:
                    options.append((_char_bits(piece[0]) + math.log2(j - i), i, "repeated"))
                elif (cost := _sequence_cost(piece)) is not None:
                    options.append((cost, i, "sequence"))
                if (cost := _walk_cost(piece)) is not None:
                    options.append((cost, i, "keyboard-walk"))
                offset = text.find(piece, max(0, i - 64), j - 1)
                if 0 <= offset < i:  # a copy of earlier text (overlapping allowed)
                    cost = 1.0 + math.log2(i - offset) + math.log2(j - i)
                    options.append((cost, i, "repeated"))
            if j - i == 4 and piece.isdigit() and 1900 <= int(piece) <= 2099:
                options.append((math.log2(200), i, "year"))
        for cost, i, kind in options:
            total = best[i][0] + cost
            if total < best[j][0]:
                best[j] = (total, best[i][1] | ({kind} if kind else set()))
    return best[n]


def check_passphrase_strength(passphrase: bytes, *, context: Iterable[str] = ()) -> None:
    """Refuse a passphrase that is too easy to guess to protect keys at rest.

    Raises :class:`~xlink.errors.WeakPassphrase` (an ``InputError``) when it is shorter than
    :data:`MIN_PASSPHRASE_BYTES`, or when :func:`estimate` puts it under
    :data:`MIN_PASSPHRASE_BITS`: a common password or a trivial variant of one
    (``password1234``, ``P@ssw0rd!``), runs and sequences (``aaaa...``, ``abcd...``,
    ``qwerty...``), or only ``context`` words (the agency id) and digits. The message says why,
    never the passphrase. ``TypeError`` if it is not bytes.
    """
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    advice = "use a long random passphrase, e.g. the output of `openssl rand -base64 24`"
    if len(passphrase) < MIN_PASSPHRASE_BYTES:
        raise WeakPassphrase(
            ["too-short"],
            f"the passphrase must be at least {MIN_PASSPHRASE_BYTES} bytes long; {advice}",
        )
    try:
        text = passphrase.decode("utf-8")
    except UnicodeDecodeError:
        text = passphrase.decode("latin-1")  # each byte a character: judged all the same
    bits, kinds = estimate(text, context)
    if bits >= MIN_PASSPHRASE_BITS:
        return
    reasons = sorted(kinds) or ["guessable"]
    what = {
        "common-password": "a common password",
        "agency-id": "the agency id",
        "repeated": "repetition",
        "sequence": "a sequence (abcd, 1234, a keyboard row)",
        "keyboard-walk": "a walk over neighbouring keys (1qaz2wsx)",
        "year": "a year",
        "guessable": "too few characters of too few kinds",
    }
    raise WeakPassphrase(
        reasons,
        f"the passphrase is too easy to guess (about {bits:.0f} bits by xlink's estimate, at "
        f"least {MIN_PASSPHRASE_BITS:.0f} needed): it is built from "
        f"{', '.join(what[r] for r in reasons)}; {advice}",
    )
