"""The strength check a passphrase passes before any key is sealed under it
(xlink/crypto/_strength.py, docs/keys.md §2 "The strength check")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xlink.crypto.envelope import (
    MIN_PASSPHRASE_BITS,
    MIN_PASSPHRASE_BYTES,
    check_passphrase_strength,
)
from xlink.errors import InputError, WeakPassphrase

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("passphrase", "reason"),
    [
        ("short", "too-short"),
        ("eleven char", "too-short"),
        ("password1234", "common-password"),
        ("Password1234!", "common-password"),
        ("P@ssw0rd2024!!", "common-password"),
        ("iloveyou1234", "common-password"),
        ("passwordpassword", "common-password"),
        ("monkeymonkeymonkey", "common-password"),
        ("qwerty123456", "common-password"),
        ("Summer2024!!", "common-password"),
        ("aaaaaaaaaaaa", "repeated"),
        ("abcabcabcabcabc", "repeated"),
        ("wrongwrongwrongwrong", "repeated"),
        ("abcdefghijkl", "sequence"),
        ("12345678901234567890", "sequence"),
        ("zyxwvutsrqponm", "sequence"),
        ("1qaz2wsx3edc", "keyboard-walk"),
        ("1q2w3e4r5t6y", "keyboard-walk"),
        ("zaq12wsxcde3", "keyboard-walk"),
        ("CA-RCMP12345", "agency-id"),
        ("ca-rcmp-123456789", "agency-id"),
        ("CARCMP2024CARCMP", "agency-id"),
    ],
)
def test_refuses_the_common_and_the_trivial(passphrase: str, reason: str) -> None:
    with pytest.raises(WeakPassphrase) as exc:
        check_passphrase_strength(passphrase.encode(), context=["CA-RCMP"])
    assert reason in exc.value.reasons
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)
    message = str(exc.value)
    assert passphrase not in message and passphrase.lower() not in message.lower()
    assert "openssl rand" in message


def test_the_agency_id_counts_only_as_context() -> None:
    """Without the agency id as context its letters are priced as random; with it, a
    passphrase made of it and digits is refused."""
    check_passphrase_strength(b"XQ-RCMPZ-2931-8817")
    with pytest.raises(WeakPassphrase, match="the agency id"):
        check_passphrase_strength(b"XQ-RCMPZ-2931-8817", context=["XQ-RCMPZ"])


@pytest.mark.parametrize(
    "passphrase",
    [
        "correct horse battery staple",
        "vZ3k9-Qp7Lm2-Rt8Wx",  # 18 random characters
        "Yp0mK8fT3qLs9xW2aB7eR4nU",  # openssl rand -base64 18
        "glacier orbit pepper lantern",  # four diceware words
        "xqzjvkwpflmr",  # twelve random letters: 56 bits
        "8392017465831792",  # sixteen random digits
    ],
)
def test_accepts_strong_passphrases(passphrase: str) -> None:
    check_passphrase_strength(passphrase.encode(), context=["CA-RCMP"])


def test_every_passphrase_the_tests_docs_and_demo_seal_keys_with_passes() -> None:
    """A passphrase literal anywhere in tests/, examples/, bench/, docs/ or xlink/ that keys are
    saved under passes the check (those only used as the WRONG passphrase are listed apart)."""
    wrong_ones = {
        "not the passphrase",
        "not the passphrase at all",
        "not the right passphrase",
        "wrong" * 5,
        "short",
    }
    pattern = re.compile(
        r"""(?:PASS(?:PHRASE)?|_PASS|passphrase)(?::\s*Final)?\s*=\s*b?["']([^"'\n]{12,})["']"""
        r"""|XLINK_PASSPHRASE=['"]([^'"\n]+)['"]"""
    )
    found = set()
    for folder in ("tests", "examples", "bench", "docs", "xlink"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md"}:
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                for m in pattern.finditer(line):
                    value = m.group(1) or m.group(2)
                    if "noqa: S105" in line and re.fullmatch(r"[\w-]+", value):
                        continue  # a variable or option name, not a passphrase
                    found.add(value)
    found -= wrong_ones
    assert {"correct horse battery staple", "xlink conformance kit: test keys, not secret"} <= found
    assert len(found) >= 10
    for passphrase in sorted(found):
        check_passphrase_strength(passphrase.encode(), context=["CA-RCMP", "US-DHS"])


def test_the_thresholds_are_the_documented_ones() -> None:
    assert MIN_PASSPHRASE_BYTES == 12
    assert MIN_PASSPHRASE_BITS == 40.0
    check_passphrase_strength(b"Vq8#mT2!zR5k")
    with pytest.raises(WeakPassphrase, match="at least 12 bytes"):
        check_passphrase_strength(b"Vq8#mT2!zR5")


def test_bytes_only_and_any_bytes() -> None:
    with pytest.raises(TypeError):
        check_passphrase_strength("a str passphrase")  # type: ignore[arg-type]
    check_passphrase_strength(bytes(range(128, 160)))  # not UTF-8: still judged, no crash
    with pytest.raises(WeakPassphrase):
        check_passphrase_strength(b"\xff" * 40)
