"""Records a release cannot carry, or whose decided pair shares more handles than a label
names, must not stop an exchange. A person both lists copied from a published entry with its
64 aliases shared 366 tokens, and the release transfer failed with a plain ValueError before
anything was sent, on every re-run; a record of 65 aliases failed it the same way."""

from __future__ import annotations

import csv
import io
import random
import shutil
from pathlib import Path

from _two_agencies import CA, DATA, US, TwoAgencies

from xlink.audit import AuditEvent
from xlink.prepare import prepare_side
from xlink.protocol.limits import MAX_PAIR_HANDLES


def _lists(base: Path, aliases: dict[str, int]) -> dict[str, list[Path]]:
    """Each agency's watchlist: the same person with ``aliases[agency]`` of one set of aliases,
    and four people of its own."""
    with (DATA / "ca_watchlist.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    rng = random.Random(5)
    syllables = ["ka", "lo", "mi", "tur", "ben", "sa", "rid", "vo", "zen", "pa", "gor", "li"]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(3)).capitalize()

    names = [f"{word()}, {word()}" for _ in range(max(aliases.values()))]
    files = {}
    for agency, others, rid in ((US, rows[10:14], "USX-1"), (CA, rows[20:24], "CAX-1")):
        person = rows[2][:]
        person[0] = rid
        person[4] = ";".join(names[: aliases[agency]])
        person[9:13] = ["P", "AB1234567", "CAN", "01/01/2030"]
        folder = base / f"{agency}-data"
        folder.mkdir()
        text = io.StringIO()
        csv.writer(text).writerows([rows[0], person, *others])
        (folder / "w.csv").write_text(text.getvalue(), encoding="utf-8")
        shutil.copy(DATA / "ca_watchlist.mapping.json", folder / "w.mapping.json")
        files[agency] = [folder / "w.csv"]
    return files


def test_a_pair_of_many_aliases_is_released_and_one_too_big_is_denied_alone(
    tmp_path: Path,
) -> None:
    files = _lists(tmp_path, {US: 64, CA: 65})
    pair = TwoAgencies(tmp_path, files, passphrase=b"big records, not a secret", timeout=20.0)
    outcomes = pair.run()
    us, ca = outcomes[US], outcomes[CA]
    assert not isinstance(us, BaseException), us
    assert not isinstance(ca, BaseException), ca
    # the decided pair shares more handles than a label names: labelled with the first 255
    decided = [f for k, f in pair.audit(US) if k is AuditEvent.DECIDED]
    assert us.decided == ca.decided == 1 and decided
    assert us.released_total == 1 and ca.received_total == 1  # US's 64 aliases: carried
    assert pair.stored(CA) == 1
    # CA's record has 65 aliases: its release cannot carry them, that match alone is denied
    denials = [f for k, f in pair.audit(CA) if k is AuditEvent.RELEASE_DENIED]
    assert [f["reason"] for f in denials] == ["unreleasable-record"]
    assert ca.released_total == 0 and us.received_total == 0
    # and the pair did share more tokens than a label names
    sides = [prepare_side(files[a], rejects_dir=tmp_path / f"rejects-{a}") for a in (US, CA)]
    values = [
        {side.tokens.value(i) for i in range(len(side.tokens)) if side.tokens.record_of(i) == rid}
        for side, rid in zip(sides, ("USX-1", "CAX-1"), strict=True)
    ]
    assert len(values[0] & values[1]) > MAX_PAIR_HANDLES
