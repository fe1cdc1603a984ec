"""Strategies for the decoder fuzz tests ("random bytes into any decoder raise only our own
exception types"): garbled copies of a VALID encoding, since random bytes alone rarely get past
a decoder's first check (a version byte, a JSON brace, a msgpack array header)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: One decoder fuzz test: a few hundred examples, no deadline (a cold first example builds
#: keys), no health check on the size of what is drawn.
DECODER_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck)
)

#: Values of every JSON type, of sizes and kinds a validator may not expect: huge and negative
#: integers, floats, strings of odd characters, nested containers.
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**400])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "00" * 32, "xx" * 32, "2026-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

#: msgpack values: every type msgpack has, some a canonical decoder refuses.
MSGPACK_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=6,
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (dict keys and list indexes), ``()`` included."""
    out = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*here, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*here, i))
    return out


def _copy(node: Any) -> Any:
    return json.loads(json.dumps(node))


def _mutate_tree(
    draw: st.DrawFn, tree: Any, values: st.SearchStrategy[Any], *, nested: bool = False
) -> Any:
    """``tree`` (changed in place, and returned) with one to three changes: a value replaced by
    one of ``values`` (another type, usually), a member or item removed, or an unknown member
    added. With ``nested`` (a msgpack tree), a bytes value that is itself an encoding (a
    version byte 1 or 2, then msgpack: a body inside a signed envelope) may be garbled inside
    instead."""
    actions = ["replace", "replace", "replace", "remove", "add"] + (["inner"] if nested else [])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        action = draw(st.sampled_from(actions))
        if not path:
            if action == "replace":
                tree = draw(values)
            continue
        parent = tree
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        value = parent[last]
        if action == "inner" and isinstance(value, bytes) and value[:1] in (b"\x01", b"\x02"):
            try:
                inner = msgpack.unpackb(value[1:], raw=False, strict_map_key=False)
            except Exception:
                continue
            changed = _mutate_tree(draw, _msgpack_tree(inner), values, nested=True)
            parent[last] = value[:1] + msgpack.packb(changed, use_bin_type=True)
        elif action in ("replace", "inner"):
            parent[last] = draw(values)
        elif action == "remove":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=6))] = draw(values)
        else:
            parent.append(draw(values))
    return tree


@st.composite
def mutated_json(draw: st.DrawFn, document: Any) -> bytes:
    """``document`` (a parsed JSON document) with a few members changed, as JSON bytes."""
    return json.dumps(_mutate_tree(draw, _copy(document), JSON_VALUES)).encode()


@st.composite
def mutated_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with one to four bytes changed, then maybe cut short or lengthened."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4)) if data else 0):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        data = data[:cut]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))
    if bytes(data) == valid:
        data = data[:-1]
    return bytes(data)


@st.composite
def mutated_text(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` (a text document) with one to three characters replaced by characters that
    matter to JSON or TOML, or a character that is not UTF-8."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.sampled_from(b'0123456789abcdef"[]{},:=-.eE \n\\x\xff'))
    return bytes(data)


@st.composite
def mutated_msgpack(draw: st.DrawFn, valid: bytes, prefix: int) -> bytes:
    """``valid`` — ``prefix`` bytes then one msgpack object — with that object's values
    changed (another type, a value removed or added), packed again after the same prefix."""
    tree = msgpack.unpackb(valid[prefix:], raw=False, strict_map_key=False)
    tree = _msgpack_tree(tree)
    changed = _mutate_tree(draw, tree, MSGPACK_VALUES, nested=True)
    packed: bytes = msgpack.packb(changed, use_bin_type=True)
    return valid[:prefix] + packed


def _msgpack_tree(node: Any) -> Any:
    if isinstance(node, tuple | list):
        return [_msgpack_tree(x) for x in node]
    if isinstance(node, dict):
        return {k: _msgpack_tree(v) for k, v in node.items()}
    return node
