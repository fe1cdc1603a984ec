"""``xlink demo --in-process``: both agencies' :class:`~xlink.agency.Agency` in one process,
one exchange over a memory pair, and the referee's join of the two matches files."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _officers import READER, act, enrol_agency_officers

from xlink.agency import Agency
from xlink.audit import AuditEvent
from xlink.cli.cmd_demo import _referee_pairs
from xlink.cli.exitcodes import ExitCode
from xlink.cli.main import main
from xlink.crypto.rand import system_random
from xlink.officers import OfficerAction
from xlink.policy import load_mou

PASSPHRASE = "in-process demo passphrase"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """One run of the demo for the whole module (it takes seconds), with the user's
    passphrase set so its key directories can be opened afterwards."""
    out = tmp_path_factory.mktemp("demo")
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setenv("XLINK_PASSPHRASE", PASSPHRASE)
        code = main(["demo", "--in-process", "--out", str(out), "--json"])
    assert code == ExitCode.OK
    yield out, json.loads(stdout.getvalue())


def test_both_agencies_release_every_decided_match_with_receipts(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = demo
    assert summary["mode"] == "in-process"
    ex = summary["exchange"]
    decided = ex["decided_matches"]
    assert decided > 0 and ex["both_sides_agree"] is True
    releases = summary["releases"]
    for agency, peer in (("CA-RCMP", "US-DHS"), ("US-DHS", "CA-RCMP")):
        mine = releases[agency]
        assert mine["to"] == peer and mine["denied"] == 0
        assert sum(mine["released"].values()) == mine["receipts_verified"] == decided
        assert mine["released"] == releases[peer]["received"]
    # Each side releases the categories of its own files.
    assert set(releases["CA-RCMP"]["released"]) == {"sex_offender", "watchlist"}
    assert set(releases["US-DHS"]["released"]) == {"traveller", "watchlist"}
    by_category = ex["matches_by_category"]
    assert by_category["CA (RCMP/CBSA)"] == releases["CA-RCMP"]["released"]
    assert by_category["US (DHS/CBP)"] == releases["US-DHS"]["released"]
    # Both audit logs verify; both outcomes are in the JSON, one session.
    assert summary["audit_ok"] is True
    assert all(a["ok"] and a["entries"] > 0 for a in summary["audit"].values())
    outcomes = summary["outcomes"]
    assert [o["agency"] for o in outcomes] == ["CA-RCMP", "US-DHS"]
    assert {o["session_id"] for o in outcomes} == {ex["session_id"]}


def test_the_exchange_runs_under_the_signed_mou_in_the_output_directory(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = demo
    mou = load_mou(summary["mou"]).mou
    assert Path(summary["mou"]).parent == out / "ceremony"
    assert mou.id == summary["mou_id"] and not mou.approval_required
    assert summary["exchange"]["threshold"] == mou.match_threshold
    for workdir in ("ca-rcmp", "us-dhs"):
        for name in ("audit.db", "store.db", "queue.db"):
            assert (out / workdir / name).is_file()
        assert len(list((out / workdir / "matches").glob("*.csv"))) == 1


def test_the_stores_hold_the_partner_releases_cut_to_the_mou(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    """With $XLINK_PASSPHRASE set, the demo's agencies can be opened again: the US store
    holds Canada's releases against US records, each cut to what the MOU allows."""
    out, summary = demo
    ceremony = out / "ceremony"
    now = datetime.now(UTC)
    with Agency.open(
        out / "us-dhs",
        agency="US-DHS",
        keys_dir=ceremony / "us-dhs-keys",
        passphrase=PASSPHRASE.encode(),
        mou_path=ceremony / "mou.toml",
        peer_bundle_path=ceremony / "ca-rcmp-keys" / "public.json",
        clock=lambda: now,
        rng=system_random,
    ) as us:
        held = us.store.list(now)
        outcome = summary["outcomes"][1]
        assert len(held) == outcome["received_total"] - outcome["received_before"] > 0
        assert all(r.originator == "CA-RCMP" for r in held)
        assert {r.category.value for r in held} == {"sex_offender", "watchlist"}
        enrol_agency_officers(us, now)
        for stored in held:
            assert stored.own_record_id is not None
            assert stored.own_record_id.startswith(("USWL-", "USTR-"))
            signed = act(
                READER,
                OfficerAction.READ,
                agency="US-DHS",
                target=stored.release_id,
                now=now,
                detail="border-security",
            )
            record = us.store.read(stored.release_id, act=signed, now=now)
            policy = us.mou.policy_for(record.category)
            assert policy is not None
            assert record.fields and set(record.fields) <= set(policy.releasable_fields)
        # Each read is audited with the enrolled reader's key.
        reads = [e for e in us.audit.entries() if e.kind is AuditEvent.RECORD_READ]
        assert [e.fields["reader"] for e in reads] == [READER.fingerprint] * len(held)


def test_the_referee_joins_the_matches_files_through_the_releases() -> None:
    ca = [
        {"own_record_id": "CA-1", "outbound_release_id": "a1", "inbound_release_id": "b1"},
        {"own_record_id": "CA-2", "outbound_release_id": "a2", "inbound_release_id": ""},
        {"own_record_id": "CA-3", "outbound_release_id": "", "inbound_release_id": "b3"},
    ]
    us = [
        {"own_record_id": "US-1", "outbound_release_id": "b1", "inbound_release_id": "a1"},
        {"own_record_id": "US-2", "outbound_release_id": "", "inbound_release_id": "a2"},
        {"own_record_id": "US-3", "outbound_release_id": "b3", "inbound_release_id": ""},
    ]
    via_ca, via_us = _referee_pairs(ca, us)
    assert via_ca == {("CA-1", "US-1"), ("CA-2", "US-2")}
    assert via_us == {("CA-1", "US-1"), ("CA-3", "US-3")}


def test_the_referee_names_every_decided_pair(demo: tuple[Path, dict[str, Any]]) -> None:
    # Two US records decided with one Canadian record on the same matched tokens share a handle
    # set: each gets its own release (they used to be filed against one of them).
    _, summary = demo
    referee = summary["referee"]
    assert referee["both_joins_agree"] is True
    assert referee["pairs_resolved"] == summary["exchange"]["decided_matches"]


def test_reveal_all_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--in-process", "--reveal-all"])
    assert exc.value.code == ExitCode.USAGE
    assert "--reveal-all" in capsys.readouterr().err
