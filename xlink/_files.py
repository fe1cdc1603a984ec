"""A text file written whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

if sys.platform != "win32":
    import fcntl

__all__ = ["bytes_written_whole", "written_whole"]


@contextlib.contextmanager
def written_whole(
    path: str | Path, *, encoding: str = "utf-8", overwrite: bool = True
) -> Iterator[TextIO]:
    """A text stream whose content becomes ``path`` only once the ``with`` block ends without
    an exception: it goes to a hidden temporary file beside ``path`` (mode 0600, as
    ``tempfile.mkstemp`` makes it), synced to disk, then renamed over ``path`` (or, without
    ``overwrite``, linked to it: ``FileExistsError`` if ``path`` exists by then, which is left
    as it was); the temporary file is deleted in every case. A process killed while writing
    leaves ``path`` as it was (and, at worst, the hidden temporary file), never cut short
    under the name a reader opens; its temporary file goes when ``path`` is next written
    (on POSIX, once its process is gone). Newlines are written as given (``newline=""``), as the
    ``csv`` module needs."""
    with (
        _whole(Path(path), overwrite) as fd,
        os.fdopen(fd, "w", encoding=encoding, newline="") as out,
    ):
        yield out
        out.flush()
        os.fsync(out.fileno())


def bytes_written_whole(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """``data`` written to ``path`` as :func:`written_whole` writes text."""
    with _whole(Path(path), overwrite) as fd, os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


@contextlib.contextmanager
def _whole(path: Path, overwrite: bool) -> Iterator[int]:
    """The descriptor of a fresh temporary file beside ``path`` (mode 0600, never an existing
    file or a planted link), moved into place as :func:`written_whole` says once the block
    that writes and closes it ends; removed in every case."""
    _remove_left_behind(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path, os.getpid()), suffix=".tmp")
    _lock(fd, wait=True)  # held until the process closes it or dies (_remove_left_behind)
    try:
        yield fd
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and never over an existing file
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                _copy_new(Path(tmp), path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _prefix(path: Path, pid: int) -> str:
    """The start of the name of a temporary file for ``path`` made by process ``pid``."""
    return f".{path.name}.{pid}."


def _remove_left_behind(path: Path) -> None:
    """Delete the temporary files for ``path`` that writers killed mid-write left beside it,
    so that part of a matches file or of a key file does not stay on disk once the file is
    written again. Each temporary file names its writer's process, which holds a lock on it
    (``flock``) while it writes: one is removed only when that process is gone here and no
    process holds the lock (so a writer in another PID namespace sharing the directory keeps
    its file). POSIX only; a name not of that form (another file's, or one made before
    temporary files named their writer), and a file that cannot be opened, locked or
    removed, are left."""
    if sys.platform == "win32":
        return
    head = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        found = _LEFT_BEHIND.fullmatch(name, len(head)) if name.startswith(head) else None
        if found is None:
            continue
        pid = int(found[1])
        left = path.parent / name
        if pid != os.getpid() and not _alive(pid) and _unlocked(left):
            with contextlib.suppress(OSError):
                os.unlink(left)


#: What follows ``.NAME.`` in a temporary file's name: its writer's process id, then
#: ``mkstemp``'s random part (lower-case letters, digits, ``_``).
_LEFT_BEHIND = re.compile(r"([0-9]{1,7})\.[a-z0-9_]+\.tmp", re.ASCII)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # another user's process, say: not ours to judge
    return True


def _lock(fd: int, *, wait: bool) -> bool:
    """Take the exclusive ``flock`` of ``fd`` (without ``wait``, only if no one holds it);
    whether it was taken."""
    if sys.platform == "win32":  # pragma: no cover - no flock there
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlocked(file: Path) -> bool:
    """Whether no process holds the lock of ``file`` (never following a link, never waiting
    on a pipe planted there)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return _lock(fd, wait=False)
    finally:
        os.close(fd)


#: What ``link`` fails with on a file system without hard links (FAT and exFAT media, some
#: network shares).
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


def _copy_new(source: Path, path: Path) -> None:
    """``source`` copied to ``path``, which must not exist (``FileExistsError``): where no hard
    link can make it appear whole, it is created exclusively and removed again if the copy
    fails, so a failure leaves no file, though a process killed mid-copy may."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(source.read_bytes())
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
