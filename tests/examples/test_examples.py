"""Every script in examples/ runs, as a user would run it, and says something true."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from xlink.cli.cmd_demo import bundled_path

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
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "bilateral_watchlist_match.py",
        "embed_in_service.py",
        "sex_offender_travel_notice.py",
    ]


def test_bilateral_watchlist_match() -> None:
    out = json.loads(_run("bilateral_watchlist_match.py", "--json"))
    ca, us = out["canada"], out["usa"]
    assert ca["records"] == 300 and us["records"] == 300
    # Both sides decide the same number of pairs, and each side sees only its own ids.
    assert len(ca["matches"]) == len(us["matches"]) > 0
    assert all(rid.startswith("CAWL-") for rid, _ in ca["matches"])
    assert all(rid.startswith("USWL-") for rid, _ in us["matches"])


# The sample MOU's releasable fields for the sex_offender category (xlink/data/mou/ca-us-demo.toml).
SEX_OFFENDER_RELEASABLE = {
    "given_name",
    "middle_name",
    "family_name",
    "full_name",
    "birth_date",
    "payload.offence",
    "payload.offense",
}


def _column(name: str, column: str) -> set[str]:
    with bundled_path(name).open(encoding="utf-8-sig", newline="") as f:
        return {row[column] for row in csv.DictReader(f) if row[column]}


def test_sex_offender_travel_notice() -> None:
    text = _run("sex_offender_travel_notice.py")
    raw = _run("sex_offender_travel_notice.py", "--json")
    out = json.loads(raw)
    manifest = _column("us_travellers.csv", "pax_id")
    assert out["registry_size"] == 200 and out["manifest_size"] == 500
    notices = out["notices"]
    # One notice per decided match (none denied), each about a traveller of the US manifest.
    assert out["decided_matches"] > 0 and out["denied"] == 0
    assert len(notices) == out["decided_matches"]
    ids = [n["traveller_id"] for n in notices]
    assert len(set(ids)) == len(ids) and set(ids) <= manifest
    for n in notices:
        assert n["category"] == "sex_offender" and n["tlp"] == "AMBER+STRICT"
        assert {"family_name", "birth_date", "payload.offence"} <= set(n["fields"])
        assert set(n["fields"]) <= SEX_OFFENDER_RELEASABLE
    # The human-readable notices name only the matched travellers: every traveller id printed
    # is one of the notices', and every notice is printed with its caveats.
    assert set(re.findall(r"USTR-\d+", text)) == set(ids)
    assert text.count("TRAVEL NOTICE") == len(ids)
    assert "TLP:AMBER+STRICT" in text and "child-protection screening" in text
    # Nothing of the registry's own identifiers reaches the US, in either output.
    registry_ids = _column("ca_sex_offenders.csv", "Registry No")
    source_ids = _column("ca_sex_offenders.csv", "Source Ref")
    assert registry_ids and source_ids
    for output in (text, raw):
        assert "CASO-" not in output and "RCMP-SRC" not in output
        assert not any(secret in output for secret in registry_ids | source_ids)


def test_embed_in_service() -> None:
    out = json.loads(_run("embed_in_service.py", "--json"))
    ca, us = out["canada"], out["usa"]
    assert (ca["agency"], us["agency"]) == ("CA-RCMP", "US-DHS")
    assert ca["records"] == 500 and us["records"] == 500
    # Both services ran the same session over TLS 1.3 and reached the same decisions.
    assert ca["session_id"] == us["session_id"] and len(ca["session_id"]) == 32
    assert ca["matched"] == us["matched"] > 0
    assert ca["candidates"] == us["candidates"] >= ca["matched"]
    assert ca["tls_version"] == us["tls_version"] == "TLSv1.3"
    # Each side lists only its own record ids, and each audit log verifies.
    assert all(rid.startswith(("CAWL-", "CASO-")) for rid in ca["first_matches"])
    assert all(rid.startswith("USTR-") for rid in us["first_matches"])
    for side in (ca, us):
        assert side["audit_ok"] is True and side["audit_entries"] >= 3
