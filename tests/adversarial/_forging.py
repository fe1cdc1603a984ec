"""A partner that decides honestly (the same decided-pairs digest) and then builds each of its
releases, signed with its real key in the real session, for random handles instead of the
decided pair's, labelling them with made-up outputs: no honest party sends one, so the first
ends the recipient's transfer (``BAD_RELEASE``, ``not-decided``)."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any

import pytest

import xlink.agency._releasing as releasing
from xlink.decide import Decision
from xlink.release import release_decided
from xlink.release.label import seal_labelled

__all__ = ["forge_releases_of"]


def forge_releases_of(agency: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``agency`` build and label its releases for handles it never matched."""

    def forging(decision: Decision, *args: Any, **kwargs: Any) -> Any:
        if kwargs["originator"] == agency:
            kwargs["day_claims"] = None  # a forger keeps no day of claims for handles it made up
            rng = random.Random(14)
            matches = tuple(
                dataclasses.replace(m, handles=tuple(rng.randbytes(16) for _ in m.handles))
                for m in decision.matches
            )
            decision = dataclasses.replace(decision, matches=matches)
        return release_decided(decision, *args, **kwargs)

    def label_anyway(data: bytes, handles: Any, **kwargs: Any) -> bytes:
        # It holds no OPRF output for handles it never matched: it labels with made-up ones.
        own = kwargs["outputs_of"]

        def outputs_of(named: tuple[bytes, ...]) -> list[bytes]:
            try:
                return list(own(named))
            except KeyError:
                return [hashlib.sha256(b"".join(named)).digest()]

        return seal_labelled(data, handles, **{**kwargs, "outputs_of": outputs_of})

    monkeypatch.setattr(releasing, "release_decided", forging)
    monkeypatch.setattr(releasing, "seal_labelled", label_anyway)
