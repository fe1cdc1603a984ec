"""A process killed (SIGKILL) while it writes the matches file: what an analyst acts on after a
run must be whole or absent, never cut short under its own name, where a CSV cut at a row
boundary reads as a complete list of matches."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROWS = 400  # about 60 KB of CSV: several buffers reach the file before the kill

# Writes a matches file of ROWS decided matches and, with "kill", dies by SIGKILL once half of
# the CSV's rows are written (flushed or not: whatever the buffers let through stays on disk).
VICTIM = """
import csv, os, signal, sys
from pathlib import Path
from xlink.agency._matches import write_matches
from xlink.decide import DecidedMatch, Decision

real = csv.DictWriter.writerows

def writerows(self, rows):
    rows = list(rows)
    real(self, rows[: len(rows) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[3] == "kill":
    csv.DictWriter.writerows = writerows
rows = int(sys.argv[2])
matches = tuple(
    DecidedMatch(
        f"CAWL-{i:05d}", i, frozenset({"name_dob", "document"}), 42.5, (i.to_bytes(16, "big"),),
        disagreeing_keys=frozenset({"address"}), missing_keys=frozenset({"phone"}),
    )
    for i in range(rows)
)
decision = Decision(b"\\x07" * 16, 20.0, rows, matches)
write_matches(Path(sys.argv[1]), decision, (), {}, {})
"""


def test_a_process_killed_while_writing_the_matches_file_leaves_no_torn_file(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "matches"
    done = subprocess.run(
        [sys.executable, "-c", VICTIM, str(directory), str(ROWS), "kill"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr  # killed mid-write, as intended
    csv_path = directory / f"{'07' * 16}.csv"
    if csv_path.exists():  # whole, or not there at all
        lines = csv_path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == ROWS + 1, f"a torn matches file: {len(lines)} of {ROWS + 1} lines"
    assert not csv_path.with_suffix(".jsonl").exists()
    # Nothing else under a name an analyst would open: only a hidden temporary file remains.
    assert [p.name for p in directory.iterdir() if not p.name.startswith(".")] in (
        [],
        [csv_path.name],
    )

    # Written again, whole: the killed writer's temporary file (half of the matches, in
    # plaintext) does not outlive the run that replaces it.
    subprocess.run(
        [sys.executable, "-c", VICTIM, str(directory), str(ROWS), "whole"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(csv_path.read_text(encoding="utf-8").splitlines()) == ROWS + 1
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [csv_path.name, csv_path.with_suffix(".jsonl").name]
    )
