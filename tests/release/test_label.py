"""Labelled releases: a release in transit opens only with the OPRF outputs of the tokens that
decided it (spec: xlink-release-v1 §10.2; per handle as xlink-query-v1 labels them)."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError
from xlink.release.label import (
    LabelError,
    LabelNotMatched,
    label_key,
    labelled_handles,
    open_labelled,
    per_handle,
    per_pair,
    seal_labelled,
)

SESSION = b"\x11" * 16
H1, H2, H3 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


def _outputs(tag: bytes) -> dict[bytes, bytes]:
    return {h: hashlib.sha256(tag + h).digest() for h in (H1, H2, H3)}


OURS = _outputs(b"held")


def _seal(handles: tuple[bytes, ...], outputs: dict[bytes, bytes] = OURS) -> bytes:
    return seal_labelled(
        b"sealed release",
        handles,
        session_id=SESSION,
        outputs_of=per_handle(outputs.__getitem__),
        rng=DeterministicRandom("label"),
    )


def test_round_trip_with_the_same_outputs() -> None:
    frame = _seal((H2, H1))
    handles, data = open_labelled(
        frame, session_id=SESSION, outputs_of=per_handle(OURS.__getitem__)
    )
    assert handles == (H1, H2) and data == b"sealed release"
    assert labelled_handles(frame) == (H1, H2)


def test_a_partner_missing_one_token_cannot_open_it() -> None:
    frame = _seal((H1, H2))
    guessed = {**OURS, H2: hashlib.sha256(b"guess").digest()}
    with pytest.raises(DecryptionError):
        open_labelled(frame, session_id=SESSION, outputs_of=per_handle(guessed.__getitem__))


def test_other_session_or_altered_handles_do_not_open() -> None:
    frame = _seal((H1, H2))
    with pytest.raises(DecryptionError):
        open_labelled(frame, session_id=b"\x12" * 16, outputs_of=per_handle(OURS.__getitem__))
    swapped = frame[:17] + H3 + frame[33:]  # names H1, H3: the associated data differs
    with pytest.raises(DecryptionError):
        open_labelled(swapped, session_id=SESSION, outputs_of=per_handle(OURS.__getitem__))


def test_handle_we_never_matched_is_refused() -> None:
    frame = _seal((H1,))
    with pytest.raises(LabelNotMatched):
        open_labelled(frame, session_id=SESSION, outputs_of=per_handle({H2: b"x"}.__getitem__))


def test_malformed_frames() -> None:
    for bad in (b"", b"\x00" + b"x" * 40, b"\x01" + H1, b"\x02" + H2 + H1 + b"\x00" * 40):
        with pytest.raises(LabelError):
            open_labelled(bad, session_id=SESSION, outputs_of=per_handle(OURS.__getitem__))
    with pytest.raises(ValueError):
        _seal(())


def test_key_depends_on_every_output_and_the_session() -> None:
    base = label_key(SESSION, [OURS[H1], OURS[H2]])
    assert base != label_key(SESSION, [OURS[H1], OURS[H3]])
    assert base != label_key(b"\x00" * 16, [OURS[H1], OURS[H2]])
    assert base != label_key(SESSION, [OURS[H1] + OURS[H2]])  # length-prefixed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_typed_errors(frame: bytes) -> None:
    with contextlib.suppress(LabelError, DecryptionError):
        open_labelled(frame, session_id=SESSION, outputs_of=per_handle(OURS.__getitem__))
    labelled_handles(frame)


PAIR = (H1, H2)
PAIR_OUTPUT = {PAIR: hashlib.sha256(b"pair").digest()}


def test_a_pair_label_opens_for_that_pair_only() -> None:
    """Release transfer (v2 on): one output per decided pair. The frame must name exactly a pair we
    decided: a subset or a superset of its handles is not one (``not-decided``)."""
    frame = seal_labelled(
        b"sealed release",
        (H2, H1),
        session_id=SESSION,
        outputs_of=per_pair(PAIR_OUTPUT.__getitem__),
        rng=DeterministicRandom("pair"),
    )
    assert open_labelled(
        frame, session_id=SESSION, outputs_of=per_pair(PAIR_OUTPUT.__getitem__)
    ) == (PAIR, b"sealed release")
    other = {PAIR: hashlib.sha256(b"guess").digest()}
    with pytest.raises(DecryptionError):
        open_labelled(frame, session_id=SESSION, outputs_of=per_pair(other.__getitem__))
    for named in ((H1,), (H1, H2, H3)):
        partial = seal_labelled(
            b"x",
            named,
            session_id=SESSION,
            outputs_of=per_handle(OURS.__getitem__),
            rng=DeterministicRandom("p"),
        )
        with pytest.raises(LabelNotMatched):
            open_labelled(partial, session_id=SESSION, outputs_of=per_pair(PAIR_OUTPUT.__getitem__))
