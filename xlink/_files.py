"""A text file written whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

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
    """Delete the temporary files for ``path`` that a writer killed before it could remove
    them left beside it (each names its writer's process; one whose process is gone is left
    behind), so that part of a matches file or of a sealed key file does not stay on disk
    once the file is written again. Only where ``kill(pid, 0)`` asks whether a process exists (POSIX);
    a file that cannot be listed or removed is left."""
    if os.name != "posix":
        return
    head = f".{path.name}."
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(head) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        parts = name[len(head) : -len(".tmp")].split(".")  # the pid, mkstemp's random part
        pid_text = parts[0]
        if len(parts) != 2 or not pid_text.isdigit() or len(pid_text) > 7:  # pid_max ≤ 2**22
            continue  # not one of ours (or from before temporary files named their writer)
        pid = int(pid_text)
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            os.unlink(path.parent / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # another user's process, say: not ours to judge
    return True


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
