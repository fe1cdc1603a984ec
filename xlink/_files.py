"""A text file written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["written_whole"]


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
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and never over an existing file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
