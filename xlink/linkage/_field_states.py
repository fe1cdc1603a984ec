"""The field-state model of the label-free estimate (:mod:`xlink.linkage.estimate`, steps 1
and 2 of its docstring): each key as tests on fields, the tests grouped into slots, each
slot's states (the sets of its tests that can hold together), every combination of slot
states, and what each combination says about each key. :class:`FieldStateModel` computes a
pattern's likelihood under a class and one EM step of a class's slot distributions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xlink.errors import EstimationError
from xlink.linkage.fields import Field
from xlink.linkage.schema import KeyRecipe, LinkageSchema

__all__ = ["MAX_COMBINATIONS", "MAX_SLOT_TESTS", "NOISE", "FieldStateModel", "key_tests"]

#: Probability that a key's observed agreement differs from what its fields' states imply.
NOISE = 0.02
#: Most slot-state combinations the model enumerates (a schema with more is refused), and most
#: tests in one slot.
MAX_COMBINATIONS = 100_000
MAX_SLOT_TESTS = 12
#: Pseudo-count added to every state of a slot in each EM update (no state is ever impossible).
_SMOOTHING = 0.5

# Fields that share a slot: the tests on them are about one part of the record.
_SLOT_OF: dict[Field, str] = {
    Field.GIVEN: "given",
    Field.GIVEN_FIRST: "given",
    Field.FAMILY: "family",
    Field.FAMILY_PART: "family",
    Field.BIRTH_DATE: "birth",
    Field.BIRTH_YEAR: "birth",
    Field.BIRTH_YEAR_MONTH: "birth",
}
# What a date test compares, by field and transform: the full date, year and month, year, or
# the date with day and month sorted.
_DATE_PRECISION = {
    ("birth_date", ""): "full",
    ("birth_date", "year_month"): "year_month",
    ("birth_date", "year"): "year",
    ("birth_date", "day_month_sorted"): "day_month_sorted",
    ("birth_year_month", ""): "year_month",
    ("birth_year_month", "year"): "year",
    ("birth_year", ""): "year",
}
_DATE_IMPLIES = {
    "full": {"full", "year_month", "year", "day_month_sorted"},
    "year_month": {"year_month", "year"},
    "day_month_sorted": {"day_month_sorted", "year"},
    "year": {"year"},
}
# An identity test on the first field implies any test on the second.
_COARSER = {(Field.GIVEN, Field.GIVEN_FIRST), (Field.FAMILY, Field.FAMILY_PART)}


@dataclass(frozen=True, slots=True)
class _Test:
    field: Field
    chain: str  # the transform chain as written in the schema, "" for identity

    @property
    def slot(self) -> str:
        return _SLOT_OF.get(self.field, self.field.value)

    def __str__(self) -> str:
        return self.field.value + (f":{self.chain}" if self.chain else "")

    def implies(self, other: _Test) -> bool:
        """Whether this test holding for a pair means ``other`` holds too."""
        if self == other:
            return True
        mine = _DATE_PRECISION.get((self.field.value, self.chain))
        theirs = _DATE_PRECISION.get((other.field.value, other.chain))
        if mine is not None and theirs is not None:
            return theirs in _DATE_IMPLIES[mine]
        if self.chain:
            return False
        return self.field is other.field or (self.field, other.field) in _COARSER


def key_tests(key: KeyRecipe) -> tuple[_Test, ...]:
    """The field tests a key's agreement is made of."""
    return tuple(
        _Test(field, ".".join(str(step) for step in chain))
        for field, chain in zip(key.fields, key.transforms, strict=True)
    )


def _states(tests: Sequence[_Test]) -> tuple[frozenset[_Test], ...]:
    """Every subset of ``tests`` closed under implication, smallest first."""
    out = []
    for size in range(len(tests) + 1):
        for subset in itertools.combinations(tests, size):
            held = set(subset)
            if all(b in held for a in held for b in tests if a.implies(b)):
                out.append(frozenset(held))
    return tuple(out)


class FieldStateModel:
    """The slots, states and state combinations of a schema, and what each combination says
    about each key."""

    def __init__(self, schema: LinkageSchema) -> None:
        by_slot: dict[str, set[_Test]] = {}
        self.key_tests = [key_tests(k) for k in schema.keys]
        for tests in self.key_tests:
            for test in tests:
                by_slot.setdefault(test.slot, set()).add(test)
        self.slots = tuple(sorted(by_slot))
        crowded = [s for s in self.slots if len(by_slot[s]) > MAX_SLOT_TESTS]
        if crowded:
            raise EstimationError(
                f"slot {crowded[0]!r} has {len(by_slot[crowded[0]])} field tests; at most "
                f"{MAX_SLOT_TESTS} can be estimated"
            )
        self.states = tuple(_states(sorted(by_slot[s], key=str)) for s in self.slots)
        size = math.prod(len(s) for s in self.states)
        if size > MAX_COMBINATIONS:
            raise EstimationError(
                f"the schema's keys make {size} field-state combinations; at most "
                f"{MAX_COMBINATIONS} can be estimated"
            )
        self.combos = np.array(
            list(itertools.product(*(range(len(s)) for s in self.states))), dtype=np.int64
        ).reshape(size, len(self.slots))
        implied = np.ones((size, len(schema.keys)), dtype=np.bool_)
        index = {slot: i for i, slot in enumerate(self.slots)}
        for k, tests in enumerate(self.key_tests):
            for test in tests:
                i = index[test.slot]
                holds = np.array([test in state for state in self.states[i]], dtype=np.bool_)
                implied[:, k] &= holds[self.combos[:, i]]
        self.implied = implied.astype(np.float64)

    def loglik(
        self, agree: npt.NDArray[np.float64], disagree: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``log P(pattern | combination)``, patterns by combinations."""
        same = agree @ self.implied.T + disagree @ (1.0 - self.implied).T
        observed = (agree + disagree).sum(axis=1)[:, None]
        loglik: npt.NDArray[np.float64] = math.log1p(-NOISE) * same + math.log(NOISE) * (
            observed - same
        )
        return loglik

    def log_prior(self, dist: Sequence[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        out = np.zeros(len(self.combos))
        for i, p in enumerate(dist):
            out += np.log(p)[self.combos[:, i]]
        return out

    def log_class(
        self, loglik: npt.NDArray[np.float64], dist: Sequence[npt.NDArray[np.float64]]
    ) -> npt.NDArray[np.float64]:
        """``log P(pattern | class)`` for each pattern."""
        joint = loglik + self.log_prior(dist)[None, :]
        top = joint.max(axis=1, keepdims=True)
        result: npt.NDArray[np.float64] = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
        return result

    def update(
        self,
        loglik: npt.NDArray[np.float64],
        dist: Sequence[npt.NDArray[np.float64]],
        weight: npt.NDArray[np.float64],
    ) -> list[npt.NDArray[np.float64]]:
        """One EM step of a class's slot distributions, each pattern counted ``weight`` times."""
        joint = loglik + self.log_prior(dist)[None, :]
        joint -= joint.max(axis=1, keepdims=True)
        resp = np.exp(joint)
        resp *= (weight / resp.sum(axis=1))[:, None]
        per_combo = resp.sum(axis=0)
        out = []
        for i, states in enumerate(self.states):
            counts = (
                np.bincount(self.combos[:, i], weights=per_combo, minlength=len(states))
                + _SMOOTHING
            )
            out.append(counts / counts.sum())
        return out

    def start(self, confident: float) -> list[npt.NDArray[np.float64]]:
        """A start: ``confident`` on each slot's fullest state, the rest spread evenly."""
        out = []
        for states in self.states:
            fullest = max(len(s) for s in states)
            rest = (1.0 - confident) / max(len(states) - 1, 1)
            out.append(np.array([confident if len(s) == fullest else rest for s in states]))
        return out
