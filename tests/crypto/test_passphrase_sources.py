"""Where the CLI takes a passphrase from: ``--passphrase-file``, ``--passphrase-fd``,
``--passphrase-env`` (deleted from the environment once read) or a prompt, and the same for a
second passphrase under another prefix (xlink/cli/cmd_keygen.py, docs/keys.md §2)."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xlink.cli import cmd_keygen
from xlink.cli.cmd_keygen import add_passphrase_option, passphrase_source, read_passphrase
from xlink.crypto.keyfiles import AgencyKeys
from xlink.errors import InputError

#: The deleting reader, as production has it (tests/conftest.py keeps variables for the
#: in-process commands of other tests).
DELETING_READER = cmd_keygen._take_from_environment
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _real_environment_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(cmd_keygen, "_take_from_environment", DELETING_READER)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: never prompt
    yield


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_passphrase_option(parser)
    add_passphrase_option(
        parser, prefix="officer-passphrase", what="the officer's", default_env="OFFICER_PASS"
    )
    return parser


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


def _private_file(path: Path, text: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(text)
    path.chmod(mode)
    return path


def test_the_environment_variable_is_deleted_once_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    assert read_passphrase(_args(), confirm=False) == PASSPHRASE.encode()
    assert "XLINK_PASSPHRASE" not in os.environ
    with pytest.raises(InputError, match="no passphrase: set XLINK_PASSPHRASE"):
        read_passphrase(_args(), confirm=False)


def test_the_variable_is_gone_for_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASS", PASSPHRASE)
    read_passphrase(_args("--passphrase-env", "MY_PASS"), confirm=False)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('MY_PASS', '<unset>'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "<unset>"


def test_the_first_line_of_a_private_file(tmp_path: Path) -> None:
    for content in (b"s3cret pass phrase\n", b"s3cret pass phrase", b"s3cret pass phrase\r\nx\n"):
        path = _private_file(tmp_path / "pass", content)
        assert read_passphrase(_args("--passphrase-file", str(path)), confirm=True) == (
            b"s3cret pass phrase"
        )


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_passphrase_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _private_file(tmp_path / "pass", b"s3cret pass phrase\n", mode)
    with pytest.raises(InputError, match=f"permissions {mode:04o} are too open"):
        read_passphrase(_args("--passphrase-file", str(path)), confirm=False)


def test_a_passphrase_file_that_is_missing_empty_or_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        read_passphrase(_args("--passphrase-file", str(tmp_path / "none")), confirm=False)
    empty = _private_file(tmp_path / "empty", b"\nsecond line\n")
    with pytest.raises(InputError, match="is empty"):
        read_passphrase(_args("--passphrase-file", str(empty)), confirm=False)
    with pytest.raises(InputError, match="not a regular file"):
        read_passphrase(_args("--passphrase-file", str(tmp_path)), confirm=False)


def test_an_inherited_file_descriptor_is_read_then_closed() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"pipe pass phrase 9\nignored\n")
    os.close(write_end)
    got = read_passphrase(_args("--passphrase-fd", str(read_end)), confirm=False)
    assert got == b"pipe pass phrase 9"
    with pytest.raises(OSError):
        os.fstat(read_end)  # closed


def test_a_file_descriptor_that_is_not_open() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(InputError, match=f"cannot read file descriptor {read_end}"):
        read_passphrase(_args("--passphrase-fd", str(read_end)), confirm=False)


def test_the_options_are_one_of_three_and_reusable_under_a_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        _args("--passphrase-env", "X", "--passphrase-fd", "3")
    with pytest.raises(SystemExit):
        _args("--passphrase-fd", "three")
    with pytest.raises(SystemExit):
        _args("--passphrase-env", "1BAD")
    monkeypatch.setenv("XLINK_PASSPHRASE", PASSPHRASE)
    officer = _private_file(tmp_path / "officer", b"officer pass phrase 7\n")
    args = _args("--officer-passphrase-file", str(officer))
    assert read_passphrase(args, prefix="officer-passphrase", confirm=False) == (
        b"officer pass phrase 7"
    )
    assert read_passphrase(args, confirm=False) == PASSPHRASE.encode()
    assert passphrase_source(args) == "$XLINK_PASSPHRASE or the prompt"
    assert passphrase_source(args, prefix="officer-passphrase") == (
        f"--officer-passphrase-file {officer}"
    )
    monkeypatch.setenv("OFFICER_PASS", "officer env phrase 8")
    assert read_passphrase(_args(), prefix="officer-passphrase", confirm=False) == (
        b"officer env phrase 8"
    )
    assert "OFFICER_PASS" not in os.environ


def test_a_prompt_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XLINK_PASSPHRASE", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["typed pass phrase 1", "typed pass phrase 1", "a", "b"])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(cmd_keygen.getpass, "getpass", getpass)
    assert read_passphrase(_args(), confirm=True, prompt="Key: ") == b"typed pass phrase 1"
    assert prompts == ["Key: ", "Same passphrase again: "]
    with pytest.raises(InputError, match="differ"):
        read_passphrase(_args(), confirm=True)


def test_keygen_in_a_real_process_from_a_file_descriptor(tmp_path: Path) -> None:
    """``xlink keygen --passphrase-fd 3`` as an operator would run it (real parameters)."""
    read_end, write_end = os.pipe()
    os.write(write_end, PASSPHRASE.encode() + b"\n")
    os.close(write_end)
    out = tmp_path / "keys"
    proc = subprocess.run(
        [sys.executable, "-m", "xlink.cli.main", "keygen", "--agency", "CA-RCMP",
         "--out", str(out), "--passphrase-fd", str(read_end), "--json"],
        pass_fds=(read_end,), capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "XLINK_PASSPHRASE"},
    )  # fmt: skip
    os.close(read_end)
    assert proc.returncode == 0, proc.stderr
    assert '"kdf": "argon2id 256 MiB, t=3, p=4"' in proc.stdout
    assert AgencyKeys.load(out, PASSPHRASE.encode()).agency_id == "CA-RCMP"
