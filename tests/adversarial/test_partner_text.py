"""Text that a partner, a hub or anyone on the path wrote, on its way to an officer's terminal:
it is shown as text, never obeyed. Each case was printed raw before: a newline and a line that
reads as xlink's own (a match, an acceptance, a caveat), terminal escape sequences (erase the
line above, write the clipboard with OSC 52) and a right-to-left override."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _hub import PASSPHRASE, HubWorld, make_world

from xlink.ceremony import demo_ceremony
from xlink.cli.main import main
from xlink.conformance.model import Outcome
from xlink.conformance.runner import _next_outcome
from xlink.crypto.rand import DeterministicRandom
from xlink.error_codes import HubReason
from xlink.hub.wire import PREAMBLE_SIZE, Refused, encode
from xlink.protocol.framing import encode_frame
from xlink.samples import sample_path

ERASE_ABOVE = "\x1b[2K\x1b[1A\x1b[2K\r"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"
RAW = ("\x1b", "\x07", "\u202e")


def _obeyable(text: str) -> list[str]:
    return [c for c in RAW if c in text]


def test_a_member_name_in_a_partners_document_is_not_obeyed_in_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The partner's MOU, reviewed before signing, has a member whose name starts a new line
    that says the MOU was accepted, and erases the error above it; the error quoting the
    member went to standard error as it was. (Escaping each line of the message was not
    enough: the newline inside the name still started a line, so each problem of the list is
    escaped whole.)"""
    ceremony = demo_ceremony(
        tmp_path / "c",
        passphrase=b"correct horse battery staple partner text",
        now=datetime.now(UTC),
        rng=DeterministicRandom("partner-text"),
    )
    lie = f"x\nxlink: MOU accepted for US-DHS{ERASE_ABOVE}{CLIPBOARD}\u202e"
    text = Path(ceremony.mou).read_text(encoding="utf-8")
    suffix = Path(ceremony.mou).suffix
    if suffix == ".json":
        doc = json.loads(text)
        doc[lie] = 1
        text = json.dumps(doc)
    else:
        text += "\n" + json.dumps(lie) + " = 1\n"  # a TOML quoted key
    partner = tmp_path / f"partner-mou{suffix}"
    partner.write_text(text, encoding="utf-8")
    assert main(["mou", "verify", str(partner), "--agency", "US-DHS"]) != 0
    err = capsys.readouterr().err
    assert not _obeyable(err)
    # the newline does not start a line of its own: the error's lines are xlink's
    assert not [line for line in err.splitlines() if line.startswith("xlink: MOU accepted")]
    assert "x\\x0axlink: MOU accepted for US-DHS\\x1b[2K" in err  # shown, as text


def _not_the_hub(detail: str) -> int:
    """A listener with no hub key: it reads the preamble and refuses with ``detail``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def refuse() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(PREAMBLE_SIZE)
                conn.sendall(encode_frame(encode(Refused(HubReason.PEER_OFFLINE, detail))))

    threading.Thread(target=refuse, daemon=True).start()
    return int(server.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> HubWorld:
    return make_world(tmp_path_factory.mktemp("partner-text"), now=datetime.now(UTC))


def test_a_refusal_from_whoever_answers_for_the_hub_is_shown_as_text(
    world: HubWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``xlink hub ask`` reads a connection's first frame before the hub has proved who it
    is: anything listening there refused with a detail holding a whole line of a successful
    answer, and the officer read that a partner had matched and released three travellers."""
    monkeypatch.setenv("XLINK_HUB_CLI_PASS", PASSPHRASE.decode())
    fake = "x)\nCA-RCMP: 3 of 50 matched (3 released); 3 new release(s) stored"
    port = _not_the_hub(fake + CLIPBOARD + "\u202e")
    c = world.ceremony
    code = main(
        [
            "hub", "ask", "--agency", "US-DHS", "--keys", str(c.keys["US-DHS"]),
            "--mou", str(c.mou), "--bundle", str(c.bundles["CA-RCMP"]),
            "--bundle", str(c.bundles["CA-CBSA"]), "--hub", f"127.0.0.1:{port}",
            "--workdir", str(tmp_path / "w"), "--passphrase-env", "XLINK_HUB_CLI_PASS",
            str(sample_path("us_travellers.csv")),
        ]
    )  # fmt: skip
    shown = capsys.readouterr()
    assert code != 0
    for text in (shown.out, shown.err):
        assert not _obeyable(text)
        assert not [line for line in text.splitlines() if line.startswith("CA-RCMP: 3 of 50")]


def test_an_outcome_line_holds_only_the_values_the_runner_knows() -> None:
    """The implementation under test writes its own outcome line; its ``code`` went into the
    verdict's reason, the report's table and the JUnit file, so it could add an "ok" row,
    hide a failure and make the JUnit file unreadable."""
    line = {
        "connection": 1, "role": "responder", "outcome": "aborted", "released": 0,
        "stored": 0, "refused": 0,
        "code": "PROTOCOL_VIOLATION\x1b[2K\r  12  some-case  ok  completed\n",
    }  # fmt: skip
    with pytest.raises(ValueError):
        Outcome.from_json(line)
    for field, value in (("outcome", "aborted\n"), ("role", "responder "), ("code", "NOPE")):
        with pytest.raises(ValueError):
            Outcome.from_json({**line, "code": "UNSUPPORTED_SUITE", field: value})
    ok = Outcome.from_json({**line, "code": "UNSUPPORTED_SUITE"})
    assert (ok.outcome, ok.code, ok.role) == ("aborted", "UNSUPPORTED_SUITE", "responder")


@pytest.mark.parametrize(
    "line",
    [
        b'{"outcome":"completed","code":null,"released":1e400,"stored":0,"refused":0,'
        b'"connection":1,"role":"initiator"}',
        b'{"outcome":"completed","code":null,"released":Infinity,"stored":0,"refused":0,'
        b'"connection":1,"role":"initiator"}',
        b'{"outcome":"completed","code":null,"released":"3","stored":true,"refused":0,'
        b'"connection":1,"role":"initiator"}',
        b"[" * 100_000,
        b'{"outcome":"completed","code":null,"released":0,"stored":0,"refused":-1,'
        b'"connection":1,"role":"initiator"}\xff',
    ],
)
def test_an_outcome_line_the_runner_cannot_read_is_reported_not_raised(
    tmp_path: Path, line: bytes
) -> None:
    """A count of ``1e400`` or ``Infinity`` (``int(inf)``: ``OverflowError``) or a line
    nested a hundred thousand deep (``RecursionError``) ended the conformance run with an
    internal error; a count written ``"3"`` or ``true`` was read as a count."""
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(line + b"\n")
    outcome, problem = asyncio.run(_next_outcome(outcomes, 0, 1.0, None))
    assert outcome is None and problem == "outcome line 1 is not an outcome line"
