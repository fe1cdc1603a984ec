"""Own tokens hashed before the session and kept across sessions of one MOU (spec §4.1): the
cache returns what hashing returns, never grows with records that left, binds to its MOU and
suite, and a damaged or doctored file is not used."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from _support import MOU_DIGEST, config, token_set
from hypothesis import given, settings
from hypothesis import strategies as st

import xlink.protocol.hashed as hashed_module
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import DEFAULT_SUITE as SUITE
from xlink.crypto.suite import SUITES
from xlink.protocol import Role
from xlink.protocol._keys import hash_to_group_dst
from xlink.protocol.hashed import CACHE_MAGIC, cache_path, hash_tokens
from xlink.protocol.session import PsiSession

DST = hash_to_group_dst(SUITE.name, MOU_DIGEST)
OTHER_MOU = hashlib.sha256(b"another MOU").digest()


def _set(values: list[int]):  # type: ignore[no-untyped-def]
    return token_set([(f"r{i}", [("name_dob", v)]) for i, v in enumerate(values)])


def _expected(tokens) -> bytes:  # type: ignore[no-untyped-def]
    distinct = sorted({tokens.value(i) for i in range(len(tokens))})
    return SUITE.hash_to_group(DST, b"".join(distinct))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=30))
def test_hashes_the_distinct_values_in_ascending_order(values: list[int]) -> None:
    tokens = _set(values)
    hashed = hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST)
    assert hashed.elements == _expected(tokens)
    assert (hashed.cached, hashed.computed) == (0, len(set(values)))


def test_cache_is_reused_replaced_and_private(tmp_path: Path) -> None:
    first = _set(list(range(30)))
    one = hash_tokens(first, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    path = cache_path(tmp_path, SUITE.suite_id, MOU_DIGEST)
    assert (one.cached, one.computed, one.cache_note) == (0, 30, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = path.stat()
    again = hash_tokens(first, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert (again.cached, again.computed) == (30, 0)
    assert again.elements == one.elements
    # Nothing new and nothing gone: the file is left as it was, not written again.
    assert path.stat().st_ino == written.st_ino
    # Ten records leave, five arrive: five hashed now, and the file holds exactly the new set.
    changed = _set(list(range(10, 35)))
    three = hash_tokens(changed, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert (three.cached, three.computed) == (20, 5)
    assert three.elements == _expected(changed)
    assert path.stat().st_size == len(CACHE_MAGIC) + 72 + 25 * 64
    # A subset: nothing to hash, but the file is rewritten to hold only the current tokens.
    fewer = hash_tokens(
        _set(list(range(10, 30))),
        suite_id=SUITE.suite_id,
        mou_digest=MOU_DIGEST,
        cache_dir=tmp_path,
    )
    assert (fewer.cached, fewer.computed) == (20, 0)
    assert path.stat().st_size == len(CACHE_MAGIC) + 72 + 20 * 64
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_an_empty_token_set_is_cached_and_read_back(tmp_path: Path) -> None:
    """Every row rejected: nothing to hash, and the next prepare under the MOU reads the
    (empty) cache back rather than failing."""
    empty = _set([])
    for _ in range(2):
        hashed = hash_tokens(
            empty, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path
        )
        assert (len(hashed), hashed.elements, hashed.cache_note) == (0, b"", None)


def test_a_cache_of_another_mou_is_not_used(tmp_path: Path) -> None:
    tokens = _set(list(range(12)))
    hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    other = cache_path(tmp_path, SUITE.suite_id, OTHER_MOU)
    cache_path(tmp_path, SUITE.suite_id, MOU_DIGEST).rename(
        other
    )  # the file under the other MOU's name
    hashed = hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=OTHER_MOU, cache_dir=tmp_path)
    assert hashed.cached == 0
    assert hashed.cache_note == "cache file of another MOU or suite"


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (lambda b: b[:-7], "cache file truncated"),
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "cache file damaged"),
        # in the elements, the tokens being exactly ours: read in pieces, not whole
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "cache file damaged"),
        (lambda b: b[:60] + bytes([b[60] ^ 1]) + b[61:], "cache file damaged"),  # checksum
        (lambda b: b"not a cache", "cache file not recognised"),
    ],
    ids=["truncated", "bit-flip-token", "bit-flip-element", "checksum", "garbage"],
)
def test_a_damaged_cache_is_not_used(tmp_path: Path, damage, note: str) -> None:  # type: ignore[no-untyped-def]
    tokens = _set(list(range(12)))
    hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    path = cache_path(tmp_path, SUITE.suite_id, MOU_DIGEST)
    path.write_bytes(damage(path.read_bytes()))
    hashed = hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert (hashed.cached, hashed.cache_note) == (0, note)
    assert hashed.elements == _expected(tokens)
    assert (
        hash_tokens(
            tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path
        ).cached
        == 12
    )


def test_doctored_entries_with_a_valid_checksum_are_caught(tmp_path: Path) -> None:
    """Someone who rewrites the file (checksum and all) with other elements for our tokens
    would make them miss their matches: the sample hashed again catches it."""
    tokens = _set(list(range(12)))
    hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    path = cache_path(tmp_path, SUITE.suite_id, MOU_DIGEST)
    data = path.read_bytes()
    head, body = data[: len(CACHE_MAGIC) + 40], data[len(CACHE_MAGIC) + 72 :]
    values, elements = body[: 12 * 32], body[12 * 32 :]
    elements = elements[32:] + elements[:32]  # every token given another's element
    checksum = hashlib.sha256(head + values + elements).digest()
    path.write_bytes(head + checksum + values + elements)
    hashed = hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert hashed.cache_note == "cache entries do not match their tokens"
    assert hashed.elements == _expected(tokens)


def test_a_session_refuses_hashes_of_another_mou_or_token_set() -> None:
    tokens = _set(list(range(5)))
    cfg = config(Role.INITIATOR)
    rng = DeterministicRandom("s")
    other = hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=OTHER_MOU)
    with pytest.raises(ValueError, match="another MOU"):
        PsiSession(cfg, tokens, rng=rng, hashed=other)
    fewer = hash_tokens(_set(list(range(4))), suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST)
    with pytest.raises(ValueError, match="not those of this token set"):
        PsiSession(cfg, tokens, rng=rng, hashed=fewer)


def test_a_cache_of_exactly_our_tokens_is_read_without_a_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual repeated exchange: the file is read straight into the hashes (no copy of it
    in memory, no search); a search would mean the whole file was read."""
    tokens = _set(list(range(40)))
    hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)

    def no_lookup(*_: object) -> None:
        raise AssertionError("the cache was searched, not read in place")

    monkeypatch.setattr(hashed_module, "lookup_sorted", no_lookup)
    hashed = hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert (hashed.cached, hashed.elements) == (40, _expected(tokens))


def test_a_cache_under_another_suite_of_the_same_mou_is_removed(tmp_path: Path) -> None:
    """A party that moved to another suite never reads its old cache again, and that file
    holds its tokens: hashing under the new suite removes it (another MOU's file stays)."""
    tokens = _set(list(range(6)))
    for suite in SUITES:
        hash_tokens(tokens, suite_id=suite.suite_id, mou_digest=OTHER_MOU, cache_dir=tmp_path)
    old = next(s for s in SUITES if s.suite_id != SUITE.suite_id)
    hash_tokens(tokens, suite_id=old.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert cache_path(tmp_path, old.suite_id, MOU_DIGEST).exists()
    hash_tokens(tokens, suite_id=SUITE.suite_id, mou_digest=MOU_DIGEST, cache_dir=tmp_path)
    assert cache_path(tmp_path, SUITE.suite_id, MOU_DIGEST).exists()
    assert not cache_path(tmp_path, old.suite_id, MOU_DIGEST).exists()
    assert cache_path(tmp_path, SUITE.suite_id, OTHER_MOU).exists()
