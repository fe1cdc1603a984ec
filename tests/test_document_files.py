"""A document xlink reads (an MOU, a schema, a template, a partner's public bundle, a key file)
that is a link to a device, a FIFO or a huge file is refused at once: it was read whole (a link
to /dev/zero in a key directory took 23 GB before the system killed the process), and a FIFO in
a key file's place blocked the open for ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlink.documents import MAX_DOCUMENT_BYTES, read_document

LOADERS = {
    "mou.toml": "from xlink.policy import load_mou as load",
    "schema.json": "from xlink.linkage.schema import load_schema as load",
    "public.json": "from xlink.crypto._public_docs import load_public_bundle as load",
    "officer.json": "from xlink.officers._keys import load_officer_public as load",
}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a child limited to 1 GiB and 60 s, so that a regression fails, not hangs."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
    return subprocess.run(
        [sys.executable, "-c", limit + code], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", sorted(LOADERS))
@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_document_that_is_a_device_or_a_fifo_is_refused_at_once(
    tmp_path: Path, name: str, target: str
) -> None:
    path = tmp_path / name
    if target == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(target)
    code = (
        f"{LOADERS[name]}\nfrom xlink.errors import InputError\ntry:\n    load({str(path)!r})"
        "\nexcept (OSError, InputError) as exc:\n    print(exc)"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    said = (
        "cannot read the officer's public key file" if name == "officer.json" else "not a regular"
    )
    assert said in done.stdout


def test_a_fifo_in_a_key_files_place_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    os.mkfifo(path, 0o600)
    code = (
        "from xlink.crypto._secret_files import read_owner_only\nfrom xlink.errors import "
        f"InputError\ntry:\n    read_owner_only({str(path)!r}, what='a key', where='k', "
        "max_bytes=64)\nexcept InputError as exc:\n    print(exc)"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert "not a regular file" in done.stdout


def test_a_large_document_is_read_no_further_than_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (4 * MAX_DOCUMENT_BYTES))
    assert len(read_document(path)) == MAX_DOCUMENT_BYTES + 1


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_partner_checkpoints_that_are_a_device_or_a_fifo_are_refused_at_once(
    tmp_path: Path, target: str
) -> None:
    """``xlink audit verify --partner-checkpoints`` stat'ed the file for its size and then read
    it: a FIFO blocked the open for ever and /dev/zero (size 0) was read until memory ran out."""
    log = tmp_path / "audit.db"
    log.write_bytes(b"")  # never opened: the checkpoints file is refused first
    path = tmp_path / "checkpoints.json"
    if target == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(target)
    argv = ["audit", "verify", str(log), "--key", "HEX", "--partner-checkpoints", str(path)]
    code = (
        "from xlink.cli.main import main\nfrom xlink.crypto.keys import SigningKey\n"
        "key = bytes(SigningKey(bytes(range(32))).verify_key).hex()\n"
        f"print(int(main([key if a == 'HEX' else a for a in {argv!r}])))"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"  # ExitCode.INPUT, as for any unreadable file
    assert "--partner-checkpoints" in done.stderr and "not a regular file" in done.stderr
