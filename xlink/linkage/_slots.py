"""The values token derivation carries between a field group and the keys that use it
(:mod:`xlink.linkage._derive`, :mod:`xlink.linkage._names`).

A *slot* is what one field group contributes to one key recipe: its distinct value tuples
(those of :func:`~xlink.linkage.keys.group_options`, in order), each one's encoding as
:func:`~xlink.linkage.tokens.token_digest` hashes it (its values' :func:`~xlink.linkage.tokens.
encode_part`, concatenated), and each one's ``(value, encoding)`` pairs, which an ``unordered``
key sorts. An *entry* is a group's slots for every recipe that uses the group.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xlink.linkage.keys import MAX_TOKENS_PER_KEY
from xlink.linkage.tokens import encode_part

# How a recipe's groups combine into the parts it hashes.
SINGLE = 0  # one group: the recipe's tokens are in the group's entry
CONCAT = 1  # ordered, each group's fields consecutive, groups in field order: concatenate
SORTED = 2  # unordered: the values of every group together, sorted
PLACED = 3  # ordered, a group's fields not consecutive: each value at its index

__all__ = [
    "CONCAT",
    "EMPTY_SLOT",
    "MEMO_SIZE",
    "PLACED",
    "SINGLE",
    "SORTED",
    "Entry",
    "FieldSlot",
    "Pairs",
    "Slot",
    "Values",
    "bounded",
    "column_slot",
    "combine",
    "compose",
    "concat",
    "slot_of",
    "union",
]

#: Bound on the entries of each memo of a derivation; a full memo is emptied and starts again.
MEMO_SIZE = 1 << 16

Values = tuple[str, ...]
Pairs = tuple[tuple[str, bytes], ...]
Slot = tuple[tuple[Values, ...], tuple[bytes, ...], tuple[Pairs, ...]]
#: A field's values through a recipe's transforms (:func:`~xlink.linkage.keys.recipe_column`),
#: as the slot of their 1-tuples, from the values an instance gives the field.
FieldSlot = Callable[[Values], Slot]
Entry = tuple[Slot, ...]

EMPTY_SLOT: Slot = ((), (), ())


def bounded(memo: dict[Any, Any], size: int = MEMO_SIZE) -> None:
    """Empty ``memo`` when it holds ``size`` entries (call before adding one)."""
    if len(memo) >= size:
        memo.clear()


def slot_of(options: Iterable[Values]) -> Slot:
    """The slot of distinct value tuples."""
    found = tuple(options)
    pairs = tuple(tuple([(v, encode_part(v)) for v in o]) for o in found)
    return found, tuple(b"".join([e for _, e in p]) for p in pairs), pairs


def column_slot(values: Values) -> Slot:
    """The slot of one field's distinct values (their 1-tuples): :func:`slot_of` of
    ``(v,) for v in values``, with each value encoded once."""
    encodings = tuple([encode_part(v) for v in values])
    return (
        tuple([(v,) for v in values]),
        encodings,
        tuple([((v, e),) for v, e in zip(values, encodings, strict=True)]),
    )


def concat(first: Slot, second: Slot) -> Slot:
    """The slot of the product of two slots' tuples (``first``'s slowest), each pair of tuples
    concatenated: two groups of fields side by side."""
    (o1, e1, p1), (o2, e2, p2) = first, second
    if len(o1) == 1 and len(o2) == 1:
        return (o1[0] + o2[0],), (e1[0] + e2[0],), (p1[0] + p2[0],)
    return (
        tuple([a + b for a in o1 for b in o2]),
        tuple([a + b for a in e1 for b in e2]),
        tuple([a + b for a in p1 for b in p2]),
    )


def union(slots: Sequence[Slot]) -> Slot:
    """The slot of the distinct tuples of ``slots``, in order."""
    if len(slots) == 1:
        return slots[0]
    if len(slots) == 2:  # most often a name and its swap, one tuple each
        (o1, e1, p1), (o2, e2, p2) = slots
        if len(o1) == 1 and len(o2) == 1:
            return slots[0] if o1 == o2 else (o1 + o2, e1 + e2, p1 + p2)
    seen: dict[Values, tuple[bytes, Pairs]] = {}
    for options, encodings, pairs in slots:
        for o, e, p in zip(options, encodings, pairs, strict=True):
            seen.setdefault(o, (e, p))
    return tuple(seen), tuple(e for e, _ in seen.values()), tuple(p for _, p in seen.values())


def compose(field_slots: Sequence[Slot]) -> Slot:
    """The product of the slots of several fields (the first slowest), as one slot; empty when
    one of them is."""
    out = field_slots[0]
    for more in field_slots[1:]:
        if not out[0]:
            break
        out = concat(out, more) if more[0] else EMPTY_SLOT
    return out


def combine(
    kind: int, n_fields: int, places: Sequence[Sequence[int]], parts: Sequence[Slot]
) -> list[bytes]:
    """The encodings of a recipe of several groups (``kind``; ``n_fields`` fields, group ``j``
    holding fields ``places[j]``), as :func:`~xlink.linkage.keys.key_parts` gives its parts:
    the product of the groups' value tuples with the first group slowest, distinct, at most
    :data:`~xlink.linkage.keys.MAX_TOKENS_PER_KEY`."""
    if kind == CONCAT:  # distinct tuples of each group: distinct encodings
        combos = itertools.product(*(part[1] for part in parts))
        return [b"".join(c) for c in itertools.islice(combos, MAX_TOKENS_PER_KEY)]
    out: dict[bytes, None] = {}  # an encoding of a fixed number of values is one tuple
    if kind == SORTED and len(parts) == 2:  # most often a name and a date
        seconds = parts[1][2]
        for first in parts[0][2]:
            for second in seconds:
                out[b"".join([encoded for _, encoded in sorted(first + second)])] = None
                if len(out) >= MAX_TOKENS_PER_KEY:
                    return list(out)
        return list(out)
    if kind == SORTED:
        for combo in itertools.product(*(part[2] for part in parts)):
            merged = sorted(itertools.chain.from_iterable(combo))
            out[b"".join([encoded for _, encoded in merged])] = None
            if len(out) >= MAX_TOKENS_PER_KEY:
                break
        return list(out)
    for combo in itertools.product(*(part[2] for part in parts)):  # PLACED
        placed = [b""] * n_fields
        for indices, pairs in zip(places, combo, strict=True):
            for i, (_, encoded) in zip(indices, pairs, strict=True):
                placed[i] = encoded
        out[b"".join(placed)] = None
        if len(out) >= MAX_TOKENS_PER_KEY:
            break
    return list(out)
