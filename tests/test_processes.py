"""Every worker pool of xlink starts the same way (xlink/_processes.py): the caller's script is
not run again in the workers, and the workers exit when the process that started them is
killed outright."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlink import _processes

# Each script has no ``if __name__ == "__main__"`` guard, as most scripts that embed xlink.
GROUP = """
import os
from xlink.crypto.suite import SUITE_X25519
from xlink.crypto.workers import GroupWorkers
print("top level", flush=True)
tokens = os.urandom(32 * 3000)
with GroupWorkers(2, start_after=0) as w:
    assert w.hash_to_group(SUITE_X25519, b"d", tokens) == SUITE_X25519.hash_to_group(b"d", tokens)
    assert w._pool is not None
"""
DERIVE = """
from xlink.linkage.keys import derive_token_set
from xlink.linkage.schema import load_default_schema
from xlink.records.model import BirthDate, Category, PersonName, PersonRecord
print("top level", flush=True)
records = [
    PersonRecord(
        record_id=f"r{i}",
        category=Category.TRAVELLER,
        name=PersonName(given="Anna", family=f"Family{i}"),
        birth_date=BirthDate(1950 + i % 50, 1 + i % 12, 1 + i % 28),
    )
    for i in range(2500)
]
schema = load_default_schema()
two = derive_token_set(records, schema, workers=2)
one = derive_token_set(records, schema, workers=1)
assert [two.value(i) for i in range(len(two))] == [one.value(i) for i in range(len(one))]
"""


@pytest.mark.parametrize("script", [GROUP, DERIVE], ids=["group-operations", "token-derivation"])
def test_a_script_without_a_main_guard_is_not_run_again(tmp_path: Path, script: str) -> None:
    path = tmp_path / "embed.py"
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("top level") == 1


def test_workers_exit_when_their_owner_is_killed(tmp_path: Path) -> None:
    """A party killed outright cannot stop its pool: the workers notice and exit."""
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal\n"
        "from xlink._processes import start_pool\n"
        "pool = start_pool(2)\n"
        "print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_processes._alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_processes._alive(p) for p in pids)
