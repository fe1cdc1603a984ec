"""xlink._files.written_whole: a file appears whole or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from xlink._files import written_whole


def _left(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_file_appears_only_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with written_whole(target) as f:
        f.write("a,b\r\n")
        assert not target.exists()
    assert target.read_bytes() == b"a,b\r\n"  # newlines as written
    assert target.stat().st_mode & 0o777 == 0o600
    assert _left(tmp_path) == ["out.csv"]


def test_a_failure_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), written_whole(target) as f:
        f.write("new, cut short")
        raise RuntimeError
    assert target.read_text() == "old"
    assert _left(tmp_path) == ["out.csv"]


def test_without_overwrite_an_existing_file_is_left_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints.json"
    with written_whole(target, overwrite=False) as f:
        f.write("first")
    with pytest.raises(FileExistsError), written_whole(target, overwrite=False) as f:
        f.write("second")
    assert target.read_text() == "first"
    assert _left(tmp_path) == ["checkpoints.json"]
    with written_whole(target) as f:
        f.write("replaced")
    assert target.read_text() == "replaced"


def test_without_hard_links_the_file_is_still_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system without hard links (FAT media), ``link`` fails with EPERM: the file
    is then created exclusively and copied, an existing one still refused."""

    def no_link(_src: object, _dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "checkpoints.json"
    with written_whole(target, overwrite=False) as f:
        f.write("first")
    assert target.read_text() == "first"
    with pytest.raises(FileExistsError), written_whole(target, overwrite=False) as f:
        f.write("second")
    assert target.read_text() == "first"
    assert _left(tmp_path) == ["checkpoints.json"]
