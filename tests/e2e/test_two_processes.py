"""End to end: `xlink serve` and `xlink match` as two processes over TLS on 127.0.0.1.

Keys and a signed MOU are made with the library (xlink.ceremony.demo_ceremony: AgencyKeys,
MouTemplate.fill, sign_mou); each agency runs the bundled files of its side.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from xlink.audit import verify_log
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli.main import main
from xlink.crypto.keyfiles import load_audit_verify_key
from xlink.crypto.rand import system_random

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
FILES = {
    "CA-RCMP": [DATA / "ca_watchlist.csv", DATA / "ca_sex_offenders.csv"],
    "US-DHS": [DATA / "us_watchlist.csv", DATA / "us_travellers.csv"],
}
PASSPHRASE = "e2e passphrase, not secret"
ENV_VAR = "XLINK_E2E_PASS"

pytestmark = pytest.mark.slow


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xlink.cli.main", *args]


def _common(c: CeremonyFiles, agency: str, peer: str, work: Path) -> list[str]:
    return [
        "--agency", agency,
        "--keys", str(c.keys[agency]),
        "--mou", str(c.mou),
        "--peer-bundle", str(c.bundles[peer]),
        "--workdir", str(work / agency),
        "--passphrase-env", ENV_VAR,
        "--timeout", "20",
        "--json",
        *(str(f) for f in FILES[agency]),
    ]  # fmt: skip


def _run_pair(
    tmp_path: Path, c: CeremonyFiles, serve_options: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Start `serve` (US-DHS) on an ephemeral port, then `match` (CA-RCMP); wait for both."""
    env = {**os.environ, ENV_VAR: PASSPHRASE}
    port_file = tmp_path / "port"
    serve_args = [*serve_options, *_common(c, "US-DHS", "CA-RCMP", tmp_path)]
    server = subprocess.Popen(
        _cmd("serve", "--listen", "127.0.0.1:0", "--port-file", str(port_file), *serve_args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "serve never listened"
            time.sleep(0.05)
        port = int(port_file.read_text())
        client = subprocess.run(
            _cmd(
                "match", "--peer", f"127.0.0.1:{port}", *_common(c, "CA-RCMP", "US-DHS", tmp_path)
            ),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    served = subprocess.CompletedProcess(server.args, server.returncode, out, err)
    return served, client


def _ceremony(tmp_path: Path) -> CeremonyFiles:
    """Keys and a signed MOU for both agencies, releases straight through (no approval)."""
    return demo_ceremony(
        tmp_path / "ceremony",
        passphrase=PASSPHRASE.encode(),
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
    )


def test_success_path(tmp_path: Path) -> None:
    start = time.monotonic()
    c = _ceremony(tmp_path)
    served, matched = _run_pair(tmp_path, c)
    assert served.returncode == 0, served.stderr
    assert matched.returncode == 0, matched.stderr
    us, ca = json.loads(served.stdout), json.loads(matched.stdout)
    assert (ca["agency"], us["agency"]) == ("CA-RCMP", "US-DHS")
    assert ca["session_id"] == us["session_id"]
    assert ca["matched_tokens"] == us["matched_tokens"] > 0
    assert ca["candidates"] == us["candidates"]
    assert ca["decided"] == us["decided"] > 0
    # Straight-through release: each side's releases are the other's receipts.
    assert ca["released"] == us["received"] and ca["released_total"] > 0
    assert us["released"] == ca["received"] and us["released_total"] > 0
    assert ca["receipts_verified"] == ca["released_total"]
    assert us["receipts_verified"] == us["released_total"]
    assert ca["refused_by_peer"] == us["refused_by_peer"] == 0
    assert ca["released_total"] + ca["denied"] == ca["decided"]
    assert ca["audit_ok"] and us["audit_ok"]
    # The audit logs verify independently, with each agency's own audit verify key.
    for agency in ("CA-RCMP", "US-DHS"):
        key = load_audit_verify_key(c.keys[agency])
        assert verify_log(tmp_path / agency / "audit.db", key).ok
    assert time.monotonic() - start < 40


def test_a_party_on_a_dask_cluster_decides_what_it_decides_alone(tmp_path: Path) -> None:
    """`xlink serve --dask local`: US-DHS hashes and blinds on a local Dask cluster, CA-RCMP on
    its own processes; both decide what two plain parties decide."""
    c = _ceremony(tmp_path)
    figures = {}
    for run, options in (("alone", ()), ("dask", ("--dask", "local"))):
        (tmp_path / run).mkdir()
        served, matched = _run_pair(tmp_path / run, c, options)
        assert served.returncode == matched.returncode == 0, (served.stderr, matched.stderr)
        us, ca = json.loads(served.stdout), json.loads(matched.stdout)
        figures[run] = [
            (side["matched_tokens"], side["candidates"], side["decided"], side["released"])
            for side in (us, ca)
        ]
        assert us["audit_ok"] and ca["audit_ok"]
        assert "dask" not in ca
        if run == "dask":
            assert us["dask"]["address"] == "local" and us["dask"]["workers"] >= 1
            assert us["dask"]["slices"] > 0  # the cluster did the work
        else:
            assert "dask" not in us
    assert figures["dask"] == figures["alone"]


def test_approval_required_queues_instead_of_releasing(tmp_path: Path) -> None:
    c = demo_ceremony(
        tmp_path / "ceremony",
        passphrase=PASSPHRASE.encode(),
        now=datetime.now(UTC),
        rng=system_random,
    )  # the bundled template requires approval
    served, matched = _run_pair(tmp_path, c)
    assert served.returncode == matched.returncode == 0, (served.stderr, matched.stderr)
    us, ca = json.loads(served.stdout), json.loads(matched.stdout)
    for side in (us, ca):
        assert side["approval_required"] is True
        assert side["released_total"] == side["received_total"] == 0
        # A record in two decided pairs is queued once, and counted for each pair.
        assert side["queued"] + side["pending"] + side["denied"] == side["decided"] > 0
        assert side["queued"] > 0
        assert side["audit_ok"]


def test_refusals_exit_codes(tmp_path: Path) -> None:
    c = _ceremony(tmp_path)
    env = {**os.environ, ENV_VAR: PASSPHRASE}
    # A peer bundle whose certificate the MOU does not pin: refused before listening (3).
    other = demo_ceremony(
        tmp_path / "other", passphrase=PASSPHRASE.encode(), now=datetime.now(UTC), rng=system_random
    )
    args = _common(c, "US-DHS", "CA-RCMP", tmp_path)
    args[args.index("--peer-bundle") + 1] = str(other.bundles["CA-RCMP"])
    served = subprocess.run(
        _cmd("serve", "--listen", "127.0.0.1:0", *args), env=env, capture_output=True, text=True
    )
    assert served.returncode == 3, served.stderr
    assert "pins" in served.stderr
    # Nobody listening: the peer is refused (4).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    quick = _common(c, "CA-RCMP", "US-DHS", tmp_path)
    quick[quick.index("--timeout") + 1] = "2"  # it retries until then
    matched = subprocess.run(
        _cmd("match", "--peer", f"127.0.0.1:{port}", *quick),
        env=env,
        capture_output=True,
        text=True,
    )
    assert matched.returncode == 4, matched.stderr
    assert "nobody listening at 127.0.0.1:" in matched.stderr


@pytest.mark.parametrize("command", ["serve", "match"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: xlink " + command in text and "Exit codes" in text


def test_network_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "network"
    assert summary["both_sides_agree"] is True and summary["audit_ok"] is True
    ca, us = summary["agencies"]
    # Not the manifest's 500/7 and 800/5: by default (--bad-field drop-field) the rows whose
    # only fault is a field a record may lack (impossible dates, year 1700, a handling code C
    # without conditions) load without it.
    assert (ca["agency"], ca["records"], ca["rejected"]) == ("CA-RCMP", 503, 4)
    assert (us["agency"], us["records"], us["rejected"]) == ("US-DHS", 802, 3)
    assert ca["decided"] == us["decided"] > 0
    assert ca["released"] == us["received"] and ca["released_total"] > 0
    rejects = sorted(p.name for p in tmp_path.rglob("*.rejects.csv"))
    assert len(rejects) == 4
    assert time.monotonic() - start < 60
