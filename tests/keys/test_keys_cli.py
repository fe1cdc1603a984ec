"""``xlink keygen`` and ``xlink mou fill|sign|verify``: the key and MOU ceremony end to end."""

from __future__ import annotations

import argparse
import getpass
import io
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import xlink.cli.main as cli_main
from xlink.cli import cmd_keygen, cmd_mou
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.envelope import TEST_KDF
from xlink.crypto.keyfiles import KEY_DIR_FILES, PUBLIC_BUNDLE_FILE, AgencyKeys, PublicBundle
from xlink.crypto.keys import SealingKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import InputError
from xlink.policy import PartyKeys, dump_mou, load_mou, load_sample_template
from xlink.policy.template import SAMPLE_TEMPLATE_RESOURCE

CA_PASS = "ca passphrase, long enough"
US_PASS = "us passphrase, long enough too"
SAMPLE = Path(cli_main.__file__).parents[1] / SAMPLE_TEMPLATE_RESOURCE
Run = Callable[..., int]


@pytest.fixture
def xlink(monkeypatch: pytest.MonkeyPatch) -> Run:
    """``main`` (its real exit-code mapping) with keygen and mou registered, whether or not
    main.py registers them yet."""
    original = cli_main.build_parser

    def build_parser() -> argparse.ArgumentParser:
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for module in (cmd_keygen, cmd_mou):
            if module.__name__.rsplit("_", 1)[1] not in sub.choices:
                module.register(sub)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build_parser)
    monkeypatch.setattr(cmd_keygen, "DEFAULT_KDF", TEST_KDF)  # keygen in microseconds
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: never prompt
    monkeypatch.delenv("XLINK_PASSPHRASE", raising=False)

    def run(*argv: str) -> int:
        return cli_main.main(list(argv))

    return run


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    parsed = json.loads(capsys.readouterr().out)
    assert isinstance(parsed, dict)
    return parsed


def _keygen_both(xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    monkeypatch.setenv("XLINK_PASSPHRASE", CA_PASS)
    monkeypatch.setenv("US_PASS", US_PASS)
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", str(tmp / "ca")) == ExitCode.OK
    assert (
        xlink("keygen", "--agency", "US-DHS", "--out", str(tmp / "us"), "--passphrase-env",
              "US_PASS", "--valid-days", "30")
        == ExitCode.OK
    )  # fmt: skip


def _fill(xlink: Run, tmp: Path, *extra: str) -> Path:
    out = tmp / "ca-us.toml"
    code = xlink(
        "mou", "fill", str(SAMPLE),
        "--bundle", str(tmp / "ca" / PUBLIC_BUNDLE_FILE),
        "--bundle", str(tmp / "us" / PUBLIC_BUNDLE_FILE),
        "--out", str(out), *extra,
    )  # fmt: skip
    assert code == ExitCode.OK
    return out


def _sign(xlink: Run, mou: Path, side: str, agency: str, *extra: str) -> int:
    return xlink(
        "mou", "sign", str(mou), "--keys", str(mou.parent / side), "--agency", agency, *extra
    )


@pytest.mark.parametrize(
    "argv", [["keygen"], ["mou"], ["mou", "fill"], ["mou", "sign"], ["mou", "verify"]]
)
def test_every_command_has_help(
    xlink: Run, argv: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        xlink(*argv, "--help")
    assert exc.value.code == 0
    assert "usage: xlink " + " ".join(argv) in capsys.readouterr().out


def test_ceremony_end_to_end(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _keygen_both(xlink, monkeypatch, tmp_path)
    for side in ("ca", "us"):
        assert sorted(p.name for p in (tmp_path / side).iterdir()) == sorted(KEY_DIR_FILES)
    mou_path = _fill(
        xlink, tmp_path, "--valid-from", "2025-06-01", "--valid-until", "2026-05-31",
        "--today", "2025-06-01",
    )  # fmt: skip
    assert _sign(xlink, mou_path, "ca", "CA-RCMP") == ExitCode.OK
    capsys.readouterr()

    # One signature: refused, naming the missing one.
    assert xlink("mou", "verify", str(mou_path), "--agency", "US-DHS", "--today", "2025-07-01",
                 "--json") == ExitCode.POLICY  # fmt: skip
    refused = _json(capsys)
    assert refused["accepted"] is False
    assert refused["reasons"] == ["signature-missing:US-DHS"]

    monkeypatch.delenv("XLINK_PASSPHRASE")
    assert _sign(xlink, mou_path, "us", "US-DHS", "--passphrase-env", "US_PASS") == ExitCode.OK
    assert list(load_mou(mou_path).signatures) == ["CA-RCMP", "US-DHS"]
    capsys.readouterr()

    for agency in ("CA-RCMP", "US-DHS"):
        code = xlink("mou", "verify", str(mou_path), "--agency", agency, "--today",
                     "2025-07-01", "--json")  # fmt: skip
        assert code == ExitCode.OK
        accepted = _json(capsys)
        assert accepted["accepted"] is True and accepted["reasons"] == []
        assert accepted["signatures"] == ["CA-RCMP", "US-DHS"]
    ca = json.loads((tmp_path / "ca" / PUBLIC_BUNDLE_FILE).read_text())
    parties = accepted["parties"]
    assert isinstance(parties, list)
    assert parties[0]["tls_cert_sha256"] == ca["tls_cert_sha256"]

    # After the validity window: refused as expired.
    code = xlink("mou", "verify", str(mou_path), "--agency", "CA-RCMP", "--today", "2026-06-01")
    assert code == ExitCode.POLICY
    captured = capsys.readouterr()
    assert "expired" in captured.out and "expired" in captured.err


def test_no_secret_is_ever_printed(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _keygen_both(xlink, monkeypatch, tmp_path)
    mou_path = _fill(xlink, tmp_path)
    assert _sign(xlink, mou_path, "ca", "CA-RCMP", "--json") == ExitCode.OK
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", str(tmp_path / "x"), "--json") == 0
    assert _sign(xlink, mou_path, "us", "US-DHS", "--passphrase-env", "US_PASS") == 0
    assert xlink("mou", "verify", str(mou_path), "--agency", "CA-RCMP") == 0
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "verify key" in printed
    for side, passphrase in (("ca", CA_PASS), ("us", US_PASS), ("x", CA_PASS)):
        keys = AgencyKeys.load(tmp_path / side, passphrase.encode())
        tls_body = "".join(keys.tls.key_pem.decode().splitlines()[1:-1])
        public = (tmp_path / side / PUBLIC_BUNDLE_FILE).read_text()
        for secret in (
            passphrase, keys.signing_key.seed().hex(), keys.sealing_key.secret().hex(), tls_body
        ):  # fmt: skip
            assert secret not in printed
            assert secret not in public
            assert secret not in mou_path.read_text()


def test_keygen_refuses_existing_keys_and_missing_passphrase(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "ca")
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", out) == ExitCode.INPUT
    assert "no passphrase: set XLINK_PASSPHRASE" in capsys.readouterr().err
    monkeypatch.setenv("XLINK_PASSPHRASE", "short")
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", out) == ExitCode.INPUT
    assert "at least 12 bytes" in capsys.readouterr().err
    monkeypatch.setenv("XLINK_PASSPHRASE", CA_PASS)
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", out, "--json") == ExitCode.OK
    first = _json(capsys)
    assert first["bundle"] == str(tmp_path / "ca" / PUBLIC_BUNDLE_FILE)
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", out) == ExitCode.INPUT
    assert "refusing to overwrite" in capsys.readouterr().err
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", out, "--force", "--json") == 0
    assert _json(capsys)["verify_key"] != first["verify_key"]
    with pytest.raises(SystemExit) as exc:
        xlink("keygen", "--agency", "not an id", "--out", out)
    assert exc.value.code == ExitCode.USAGE


def test_keygen_prompts_on_a_terminal(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter([CA_PASS, CA_PASS, CA_PASS, "something else entirely"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt: next(answers))
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", str(tmp_path / "a")) == ExitCode.OK
    AgencyKeys.load(tmp_path / "a", CA_PASS.encode())
    assert xlink("keygen", "--agency", "CA-RCMP", "--out", str(tmp_path / "b")) == ExitCode.INPUT
    assert "differ" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_sign_refuses_wrong_passphrase_and_someone_elses_keys(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _keygen_both(xlink, monkeypatch, tmp_path)
    mou_path = _fill(xlink, tmp_path)
    before = mou_path.read_text()
    monkeypatch.setenv("XLINK_PASSPHRASE", "not the right passphrase")
    assert _sign(xlink, mou_path, "ca", "CA-RCMP") == ExitCode.INPUT
    assert "decryption or verification failed" in capsys.readouterr().err
    monkeypatch.setenv("XLINK_PASSPHRASE", US_PASS)
    assert _sign(xlink, mou_path, "us", "CA-RCMP") == ExitCode.INPUT
    assert "holds the keys of US-DHS" in capsys.readouterr().err
    assert _sign(xlink, mou_path, "us", "MX-SSPC") == ExitCode.INPUT
    assert "not a party" in capsys.readouterr().err
    assert mou_path.read_text() == before


def test_sign_refuses_an_mou_naming_another_sealing_key_for_us(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _keygen_both(xlink, monkeypatch, tmp_path)
    ca = AgencyKeys.load(tmp_path / "ca", CA_PASS.encode()).public_bundle()
    us = AgencyKeys.load(tmp_path / "us", US_PASS.encode()).public_bundle()
    intruder = SealingKey.generate(DeterministicRandom("intruder")).public_key
    swapped = PublicBundle(ca.agency_id, ca.verify_key, intruder, ca.tls_cert_pem, ca.created)
    mou = load_sample_template().fill(
        {
            b.agency_id: PartyKeys(b.verify_key, b.sealing_key, b.tls_cert_sha256)
            for b in (swapped, us)
        },
        schema_digest=bytes(32),
    )
    mou_path = tmp_path / "swapped.json"
    mou_path.write_text(dump_mou(mou, "json"))
    assert _sign(xlink, mou_path, "ca", "CA-RCMP") == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "sealing_key" in err and "refusing to sign" in err
    assert not load_mou(mou_path).signatures


def test_fill_errors(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _keygen_both(xlink, monkeypatch, tmp_path)
    ca = str(tmp_path / "ca" / PUBLIC_BUNDLE_FILE)
    out = str(tmp_path / "m.toml")
    assert xlink("mou", "fill", "--bundle", ca, "--out", out) == ExitCode.INPUT
    assert "none given for US-DHS" in capsys.readouterr().err
    assert xlink("mou", "fill", "--bundle", ca, "--bundle", ca, "--out", out) == ExitCode.INPUT
    assert "a second bundle" in capsys.readouterr().err
    assert xlink("keygen", "--agency", "MX-SSPC", "--out", str(tmp_path / "mx")) == 0
    mx = str(tmp_path / "mx" / PUBLIC_BUNDLE_FILE)
    assert xlink("mou", "fill", "--bundle", ca, "--bundle", mx, "--out", out) == ExitCode.INPUT
    assert "not a party" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert xlink("mou", "fill", "--bundle", str(broken), "--out", out) == ExitCode.INPUT
    assert not Path(out).exists()
    # Default template is the bundled sample; the output exists afterwards and is not replaced.
    us = str(tmp_path / "us" / PUBLIC_BUNDLE_FILE)
    assert xlink("mou", "fill", "--bundle", ca, "--bundle", us, "--out", out, "--json") == 0
    filled = _json(capsys)
    assert filled["signatures"] == [] and filled["id"] == "CA-US-XLINK-DEMO-2025-001"
    assert xlink("mou", "fill", "--bundle", ca, "--bundle", us, "--out", out) == ExitCode.INPUT
    assert "already exists" in capsys.readouterr().err


def test_verify_unreadable_or_invalid_is_exit_3(
    xlink: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert xlink("mou", "verify", str(tmp_path / "none.toml"), "--agency", "CA-RCMP") == 3
    bad = tmp_path / "bad.toml"
    bad.write_text('format = "xlink-mou-v1"\n')
    assert xlink("mou", "verify", str(bad), "--agency", "CA-RCMP") == ExitCode.INPUT
    assert "error(s)" in capsys.readouterr().err


def test_keygen_refuses_a_weak_passphrase(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for weak in ("password1234", "CA-RCMP-20250101", "aaaaaaaaaaaaaaaa"):
        monkeypatch.setenv("XLINK_PASSPHRASE", weak)
        assert xlink("keygen", "--agency", "CA-RCMP", "--out", str(tmp_path / "ca")) == 3
        err = capsys.readouterr().err
        assert "too easy to guess" in err and weak not in err
    assert not (tmp_path / "ca").exists()


def _legacy_directory(keys: AgencyKeys, directory: Path, passphrase: bytes) -> None:
    """A key directory as xlink 0.1 wrote it: PKCS#8 PEM, BestAvailableEncryption."""
    encryption = serialization.BestAvailableEncryption(passphrase)
    pkcs8 = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    signing = Ed25519PrivateKey.from_private_bytes(keys.signing_key.seed())
    sealing = X25519PrivateKey.from_private_bytes(keys.sealing_key.secret())
    tls = serialization.load_pem_private_key(keys.tls.key_pem, None)
    directory.mkdir(mode=0o700)
    for name, data in {
        "signing.key": signing.private_bytes(*pkcs8),
        "sealing.key": sealing.private_bytes(*pkcs8),
        "tls.key": tls.private_bytes(*pkcs8),
        "tls.crt": keys.tls.cert_pem,
        PUBLIC_BUNDLE_FILE: keys.public_bundle().to_json().encode(),
    }.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)


def test_keygen_upgrade_in_place(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = AgencyKeys.generate(
        "CA-RCMP", rng=DeterministicRandom("old"), now=datetime.now(UTC), valid_days=30
    )
    old = tmp_path / "old"
    _legacy_directory(keys, old, CA_PASS.encode())
    monkeypatch.setenv("XLINK_PASSPHRASE", CA_PASS)
    with pytest.raises(InputError, match=f"run `xlink keygen --upgrade --out {old}`"):
        AgencyKeys.load(old, CA_PASS.encode())  # an old directory does not open, says how
    assert xlink("keygen", "--upgrade", "--out", str(old)) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        str(old / n)
        for n in ("signing.key", "sealing.key", "tls.key", "audit.key", "audit-key.json")
    ]
    assert sorted(p.name for p in old.iterdir()) == sorted(KEY_DIR_FILES)
    loaded = AgencyKeys.load(old, CA_PASS.encode())
    assert loaded.signing_key.seed() == keys.signing_key.seed()
    # A second run changes nothing.
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    assert xlink("keygen", "--upgrade", "--out", str(old), "--json") == ExitCode.OK
    assert _json(capsys)["changed"] == []
    assert xlink("keygen", "--upgrade", "--out", str(old)) == ExitCode.OK
    assert "nothing changed" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    # Wrong agency, --force, no --agency without --upgrade: refused.
    assert xlink("keygen", "--upgrade", "--out", str(old), "--agency", "US-DHS") == 3
    assert "holds the keys of CA-RCMP" in capsys.readouterr().err
    assert xlink("keygen", "--upgrade", "--out", str(old), "--force") == ExitCode.USAGE
    assert xlink("keygen", "--out", str(tmp_path / "new")) == ExitCode.USAGE


def test_keygen_upgrade_of_a_weak_passphrase_needs_a_new_one(
    xlink: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = AgencyKeys.generate(
        "US-DHS", rng=DeterministicRandom("weak"), now=datetime.now(UTC), valid_days=30
    )
    old = tmp_path / "old"
    _legacy_directory(keys, old, b"password1234")  # xlink 0.1 took it
    monkeypatch.setenv("XLINK_PASSPHRASE", "password1234")
    assert xlink("keygen", "--upgrade", "--out", str(old)) == ExitCode.INPUT
    err = capsys.readouterr().err
    assert "too easy to guess" in err and "--new-passphrase-env" in err
    new = tmp_path / "new-pass"
    new.write_text(US_PASS + "\n")
    new.chmod(0o600)
    assert xlink("keygen", "--upgrade", "--out", str(old), "--new-passphrase-file", str(new)) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    AgencyKeys.load(old, US_PASS.encode())


@pytest.mark.parametrize("reciprocal", [False, True])
def test_verify_shows_whether_releases_are_reciprocal(
    xlink: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str], reciprocal: bool
) -> None:
    """An officer reads the MOU before signing: ``release.reciprocal`` changes what an
    exchange sends (xlink-release-v1 §10.5), so ``mou verify`` says it, in text and JSON."""
    from xlink.ceremony import demo_ceremony

    files = demo_ceremony(
        tmp_path / "c",
        passphrase=b"a passphrase for this test only",
        now=datetime.now(UTC),
        rng=DeterministicRandom("reciprocal mou"),
        kdf=TEST_KDF,
        reciprocal=reciprocal,
    )
    assert xlink("mou", "verify", str(files.mou), "--agency", "CA-RCMP", "--json") == 0
    assert _json(capsys)["reciprocal"] is reciprocal
    assert xlink("mou", "verify", str(files.mou), "--agency", "CA-RCMP") == 0
    assert ("reciprocal: each side sends" in capsys.readouterr().out) is reciprocal
