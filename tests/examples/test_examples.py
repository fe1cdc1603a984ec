"""Every script in examples/ runs, as a user would run it, and says something true."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["bilateral_watchlist_match.py"]


def test_bilateral_watchlist_match() -> None:
    out = json.loads(_run("bilateral_watchlist_match.py", "--json"))
    ca, us = out["canada"], out["usa"]
    assert ca["records"] == 300 and us["records"] == 300
    # Both sides decide the same number of pairs, and each side sees only its own ids.
    assert len(ca["matches"]) == len(us["matches"]) > 0
    assert all(rid.startswith("CAWL-") for rid, _ in ca["matches"])
    assert all(rid.startswith("USWL-") for rid, _ in us["matches"])
