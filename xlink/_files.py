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
    under the name a reader opens. Newlines are written as given (``newline=""``), as the
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
