"""The spec and the code say the same thing (spec: xlink-psi-v1 §5.5, §8)."""

from __future__ import annotations

import re
from pathlib import Path

from xlink.protocol._state import TRANSITIONS, State, Trigger
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import Role

SPEC = (Path(__file__).resolve().parents[2] / "protocols" / "xlink-psi-v1.md").read_text()


def _table(name: str) -> list[list[str]]:
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", SPEC, re.S)
    assert match, f"table {name} not found in the spec"
    rows = [line.strip().strip("|").split("|") for line in match.group(1).splitlines()]
    return [[c.strip() for c in row] for row in rows[2:] if row]


def test_transition_table_matches_code() -> None:
    roles = {"initiator": Role.INITIATOR, "responder": Role.RESPONDER}
    from_spec = {
        (State[state], Trigger(event)): (
            frozenset(roles[r.strip()] for r in who.split(",")),
            State[nxt],
        )
        for state, event, who, nxt in _table("transitions")
    }
    assert from_spec == TRANSITIONS


def test_abort_code_table_matches_code() -> None:
    from_spec = {int(code): name.strip() for code, name, _ in _table("abort-codes")}
    assert from_spec == {int(c): c.name for c in AbortCode}
