"""Secret files written all or nothing and read only when private (docs/keys.md §1): the key
files, the source-handle key, an officer's key. Re-exported by :mod:`xlink.crypto.keyfiles`."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

from xlink._files import bytes_written_whole
from xlink.errors import InputError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "fsync_dir",
    "read_owner_only",
    "read_private_file",
    "write_file",
]

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_MAX_KEY_FILE_BYTES = 64 * 1024


def fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Create ``path`` holding ``data``, mode 0600, all or nothing (key files, and any other
    secret file: the source-handle key): through a fresh temporary file, synced, then linked
    to ``path`` (an :class:`~xlink.errors.InputError` if ``path`` exists) or, with
    ``overwrite``, renamed over it (:func:`xlink._files.bytes_written_whole`)."""
    try:
        bytes_written_whole(path, data, overwrite=overwrite)
    except FileExistsError:
        raise InputError(f"{path}: already exists; refusing to overwrite it") from None


def read_owner_only(
    path: str | Path, *, what: str, where: str, max_bytes: int, missing: str | None = None
) -> bytes:
    """At most ``max_bytes`` of the regular file ``path``, refused (as ssh refuses a key) when
    its group or others may read it: ``what`` names the file in the message ("a private key
    file"), ``where`` prefixes it (the path, or the option that named it), ``missing`` says
    what an absent file is (default: the error the system gives).
    :class:`~xlink.errors.InputError` for a missing, unreadable or too-open file."""
    try:
        # O_NONBLOCK: a FIFO in a key file's place would block the open until a writer came
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise InputError(f"{where}: {missing or f'cannot open {path}: {exc.strerror}'}") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot open {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(f"{where}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        mode = stat.S_IMODE(st.st_mode)
        if os.name == "posix" and mode & 0o077:
            raise InputError(
                f"{where}: permissions {mode:04o} are too open: {what} must be readable by its "
                f"owner only (chmod 600 {path})"
            )
        return f.read(max_bytes)


def read_private_file(path: Path) -> bytes:
    """Read a private key file, refusing one that group or others may read (like ssh)."""
    return read_owner_only(
        path,
        what="a private key file",
        where=str(path),
        max_bytes=_MAX_KEY_FILE_BYTES,
        missing="missing key file",
    )
