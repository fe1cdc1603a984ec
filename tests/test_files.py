"""xlink._files.written_whole: a file appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlink._files import written_whole

if sys.platform != "win32":
    import fcntl


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


def _dead_pid() -> int:
    """A process id no process has: Linux's ``pid_max`` (ids stay below it), elsewhere a
    child that has exited."""
    with contextlib.suppress(OSError):
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(os.name != "posix", reason="a writer's process is looked up on POSIX only")
def test_a_killed_writers_temporary_file_goes_when_the_file_is_written_again(
    tmp_path: Path,
) -> None:
    """A writer killed mid-write left its hidden temporary file (part of a matches file or a
    release, mode 0600) for good. The next write of the same file removes it, and only it:
    not a live writer's, not another file's, not a name it did not make."""
    target = tmp_path / "m.csv"
    dead, alive = _dead_pid(), os.getppid()
    left = tmp_path / f".m.csv.{dead}.abc123.tmp"
    live = tmp_path / f".m.csv.{alive}.def456.tmp"
    other = tmp_path / f".n.csv.{dead}.abc123.tmp"
    foreign = tmp_path / ".m.csv.abc123.tmp"
    longer = tmp_path / f".m.csv.{dead}.{alive}.ghi789.tmp"  # a live writer's, of "m.csv.PID"
    odd = tmp_path / ".m.csv.\u00b2.jkl012.tmp"  # a digit to str.isdigit, not to int()
    locked = tmp_path / f".m.csv.{dead}.mno345.tmp"  # a writer's in another PID namespace
    kept = [live, other, foreign, longer, odd, locked]
    for p in (left, *kept):
        p.write_text("half a file")
    with locked.open() as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with written_whole(target) as out:
            out.write("whole\n")
    assert target.read_text() == "whole\n"
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, *(p.name for p in kept)]
    )


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")
def test_a_writer_holds_the_lock_of_its_temporary_file(tmp_path: Path) -> None:
    """What keeps a live writer's file from a sweep that cannot see its process."""
    target = tmp_path / "k.json"
    with written_whole(target) as out:
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".k.json.")]
        assert tmp.name.startswith(f".k.json.{os.getpid()}.")
        with tmp.open() as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        out.write("{}")
    assert _left(tmp_path) == ["k.json"]
