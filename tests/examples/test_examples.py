"""Every script in examples/ runs, as a user would run it, and says something true."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xlink.samples import sample_path

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


# The sample MOU's releasable fields for the watchlist category (xlink/data/mou/ca-us-demo.toml).
WATCHLIST_RELEASABLE = {
    "given_name",
    "middle_name",
    "family_name",
    "full_name",
    "aliases",
    "birth_date",
    "nationalities",
    "documents",
    "payload.risk_level",
    "payload.threat_level",
}


def test_bilateral_watchlist_match() -> None:
    raw = _run("bilateral_watchlist_match.py", "--json")
    out = json.loads(raw)
    ca, us = out["canada"], out["usa"]
    assert (ca["agency"], us["agency"]) == ("CA-RCMP", "US-DHS")
    # 301 each, not the manifest's 300: by default (drop-field) each list's row whose only fault
    # is an impossible date of birth loads with what is readable of it
    assert ca["records"] == 301 and us["records"] == 301
    # Both sides decide the same number of pairs, each released to the other and receipted,
    # and each side's matches name only its own records.
    assert ca["decided"] == us["decided"] == len(ca["matches"]) == len(us["matches"]) > 0
    assert ca["released"] == us["received"] == ca["receipts_verified"] == ca["decided"]
    assert us["released"] == ca["received"] == us["receipts_verified"] == us["decided"]
    assert all(m["own_record_id"].startswith("CAWL-") for m in ca["matches"])
    assert all(m["own_record_id"].startswith("USWL-") for m in us["matches"])
    # Every match came with the partner's release: a watchlist record cut to what the MOU
    # allows for the category, under its caveats.
    for side in (ca, us):
        assert side["audit_ok"] is True
        ids = [m["partner_release"]["release_id"] for m in side["matches"]]
        assert len(set(ids)) == len(ids)
        for m in side["matches"]:
            got = m["partner_release"]
            assert got["category"] == "watchlist" and got["tlp"] == "AMBER"
            assert got["retention_days"] == 365
            assert got["fields"] and set(got["fields"]) <= WATCHLIST_RELEASABLE
        released = {name for m in side["matches"] for name in m["partner_release"]["fields"]}
        assert {"family_name", "birth_date", "documents"} <= released
    # Neither side learns the partner's record ids, in either output.
    text = _run("bilateral_watchlist_match.py")
    assert "USWL-" not in json.dumps(ca) and "CAWL-" not in json.dumps(us)
    ca_text, us_text = text.split("\nUS-DHS:")
    assert "CAWL-" in ca_text and "USWL-" not in ca_text
    assert "USWL-" in us_text and "CAWL-" not in us_text
    assert "TLP:AMBER" in text


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
    with sample_path(name).open(encoding="utf-8-sig", newline="") as f:
        return {row[column] for row in csv.DictReader(f) if row[column]}


def test_sex_offender_travel_notice() -> None:
    text = _run("sex_offender_travel_notice.py")
    raw = _run("sex_offender_travel_notice.py", "--json")
    out = json.loads(raw)
    manifest = _column("us_travellers.csv", "pax_id")
    # 202 and 501, not the manifest's 200 and 500: by default (drop-field) the rows whose only
    # fault is a field (an impossible date, a year 1700, a handling code C without
    # conditions) load without it, or a date with what is readable of it
    assert out["registry_size"] == 202 and out["manifest_size"] == 501
    notices = out["notices"]
    # The first query found the hits and Canada queued their releases (pending, nothing
    # received); Canada's officer approved every one, and the next query delivered them: one
    # notice per decided match (none denied), each about a traveller of the US manifest.
    assert out["decided_matches"] > 0 and out["denied"] == 0
    assert out["queued_for_approval"] == out["approved"] == out["decided_matches"]
    assert out["received_first"] == 0
    assert out["sent"] == out["received"] == out["receipts_verified"] == out["decided_matches"]
    assert len(notices) == out["decided_matches"]
    # What Canada learns of a query: how many evaluations (within the MOU's daily quota) and
    # the records whose release was asked; nothing of the travellers without a hit.
    learned = out["canada_learned"]
    assert 0 < learned["evaluations_per_query"] <= out["quota_per_day"]
    assert learned["releases_asked_per_query"] == out["decided_matches"]
    assert out["table_entries"] > out["registry_size"]
    assert out["audit_ok"] is True
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
    assert (ca["role"], us["role"]) == ("match", "serve")
    # 503 and 501, not 500 and 500: the rows whose only fault is a field load without it
    assert ca["records"] == 503 and us["records"] == 501
    # Both services ran the same exchange over TLS and reached the same decisions.
    assert ca["session_id"] == us["session_id"] and len(ca["session_id"]) == 32
    assert ca["matched"] == us["matched"] > 0
    assert ca["candidates"] == us["candidates"] >= ca["matched"]
    # Each side released its matched records to the other, receipted, and what it received
    # waits in its store: Canada's registry and watchlist records, the US's travellers.
    assert ca["released"] == us["received"] == us["inbox"]
    assert us["released"] == ca["received"] == ca["inbox"] == {"traveller": ca["matched"]}
    assert set(ca["released"]) <= {"watchlist", "sex_offender"}
    assert sum(ca["released"].values()) == ca["receipts_verified"] == ca["matched"]
    assert us["receipts_verified"] == us["matched"]
    # Each side lists only its own record ids, and each audit log verifies.
    assert ca["first_matches"] and us["first_matches"]
    assert all(rid.startswith(("CAWL-", "CASO-")) for rid in ca["first_matches"])
    assert all(rid.startswith("USTR-") for rid in us["first_matches"])
    for side in (ca, us):
        assert side["audit_ok"] is True and side["audit_entries"] >= 3


def test_the_examples_use_only_the_public_api_for_the_sample_data() -> None:
    """The examples found the bundled lists through ``xlink.cli.cmd_demo``, a command's
    module an integrator should not need (found in an integrator's trial):
    ``xlink.samples.sample_path`` is the public home, and names the files when one is not
    there."""
    from xlink.errors import InputError
    from xlink.samples import sample_names, sample_path

    for example in EXAMPLES.glob("*.py"):
        assert "xlink.cli" not in example.read_text(encoding="utf-8"), example.name
    assert "ca_watchlist.csv" in sample_names() and "mou/ca-us-demo.toml" in sample_names()
    assert sample_path("mou/ca-us-demo.toml").is_file()
    with pytest.raises(InputError, match=r"no bundled sample 'nope\.csv'; there are: "):
        sample_path("nope.csv")
    with pytest.raises(InputError):  # nothing outside xlink/data
        sample_path("../errors.py")
