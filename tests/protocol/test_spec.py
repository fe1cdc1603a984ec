"""The spec and the code say the same thing (spec: xlink-psi-v1 §5.5, §8)."""

from __future__ import annotations

import re
from pathlib import Path

from xlink.protocol._state import TRANSITIONS, State, Trigger
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import Role

SPEC = (Path(__file__).resolve().parents[2] / "protocols" / "xlink-psi-v2.md").read_text()


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


SESSION = (Path(__file__).resolve().parents[2] / "xlink" / "protocol" / "session.py").read_text()


def test_every_trigger_is_in_the_table_and_taken_by_the_session() -> None:
    """The table is the single truth: each trigger has a row, the session takes each one through
    ``_step`` (aborts included), and nothing else assigns the state."""
    in_table = {t for _, t in TRANSITIONS}
    assert in_table == set(Trigger)
    for trigger in Trigger:
        assert f"Trigger.{trigger.name}" in SESSION, f"{trigger.name} never taken"
    assigned = re.findall(r"self\._state = (.*)", SESSION)
    assert assigned == ["State.IDLE", "nxt"], "state set outside __init__ and _step"


def test_abort_rows_cover_every_live_state() -> None:
    """Spec §5.5/§6.8: every non-terminal state can fail and can receive an Abort, for each
    role that can be in it; terminal states take neither."""
    live = {(s, r) for (s, _), (roles, _) in TRANSITIONS.items() for r in roles}
    live |= {(n, r) for (roles, n) in TRANSITIONS.values() for r in roles}
    for state, role in live:
        for trigger in (Trigger.FAIL, Trigger.RECV_ABORT):
            entry = TRANSITIONS.get((state, trigger))
            if state in (State.COMPLETE, State.ABORTED):
                assert entry is None
            else:
                assert entry is not None and role in entry[0], (state, role, trigger)
                assert entry[1] is State.ABORTED
