"""Parsing configuration documents (linkage schemas, column mappings, MOUs) from JSON or TOML.

One place decides what a malformed document is, so that no parser error — deep nesting that
exhausts the recursion limit, an integer too long to convert, bytes that are not UTF-8, an
unknown format — escapes as anything but :class:`DocumentError`, which each caller turns into
its own typed error (:class:`~xlink.errors.SchemaError`, :class:`~xlink.errors.LoadError`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Final

from xlink.errors import DocumentError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_TOML_KEY_PARTS",
    "DocumentError",
    "document_format",
    "finite_number",
    "parse_document",
    "read_document",
]

#: Configuration documents are small; anything larger is refused before parsing.
MAX_DOCUMENT_BYTES: Final = 1 << 20

_FORMATS: Final = {".json": "json", ".toml": "toml"}


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            # json.loads would keep the last one silently: a signed or hashed document must
            # not mean two things.
            raise ValueError(f"member {key!r} given twice")
        out[key] = value
    return out


def document_format(path: str | Path) -> str:
    """``"json"`` or ``"toml"`` from the file suffix; :class:`DocumentError` otherwise."""
    fmt = _FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DocumentError("unknown file type: use .json or .toml")
    return fmt


def read_document(path: str | Path) -> bytes:
    """The bytes of the file ``path``, at most :data:`MAX_DOCUMENT_BYTES` and one more (so that
    :func:`parse_document` refuses a larger one without it being read whole): a link to
    ``/dev/zero`` or a large download in a document's place is not read into memory, and a
    FIFO does not block. Raises ``OSError`` for a file that cannot be read or is not a
    regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    with os.fdopen(fd, "rb") as fh:
        return fh.read(MAX_DOCUMENT_BYTES + 1)


#: The most parts a TOML key (or table header) may have. xlink's documents nest a few levels;
#: the TOML parser takes time quadratic in a key's parts (a 1 MiB header of 500,000 parts took
#: minutes), so a document within the size limit could still hold a reader for that long.
MAX_TOML_KEY_PARTS: Final = 64


#: A key part (bare, or quoted either way), as TOML writes one.
_KEY_PART = r"""(?:[A-Za-z0-9_-]++|"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+')"""
#: More than :data:`MAX_TOML_KEY_PARTS` parts joined by dots, anywhere in the text: a table
#: header, a key, a key inside an inline table. Prose, addresses and version numbers do not
#: join 65 words by dots alone.
_DEEP_KEY = re.compile(  # possessive, from the start of a part: linear in the text
    rf"(?<![A-Za-z0-9_-]){_KEY_PART}(?:[ \t]*+\.[ \t]*+{_KEY_PART}){{{MAX_TOML_KEY_PARTS},}}"
)


def _check_toml_keys(text: str) -> None:
    """Refuse, before parsing, a key of more than :data:`MAX_TOML_KEY_PARTS` parts."""
    if (found := _DEEP_KEY.search(text)) is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise DocumentError(
            f"not valid TOML: line {line}: a key of more than {MAX_TOML_KEY_PARTS} parts"
        )


def parse_document(data: bytes | str, fmt: str) -> object:
    """Parse ``data`` as ``fmt`` (``"json"`` or ``"toml"``); a UTF-8 byte-order mark is allowed.

    JSON is read strictly: a member given twice, ``NaN`` and ``Infinity`` are syntax errors.
    Raises :class:`DocumentError` for an unknown format, a document over
    :data:`MAX_DOCUMENT_BYTES`, bytes that are not UTF-8, or any syntax error — including
    nesting too deep to parse and numbers too long to convert.
    """
    if fmt not in ("json", "toml"):
        raise DocumentError("unknown format: use json or toml")
    try:
        size = len(data.encode("utf-8") if isinstance(data, str) else data)
    except UnicodeEncodeError as exc:  # a str holding a lone surrogate: no text
        raise DocumentError(f"not UTF-8 (character {exc.start})") from None
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not UTF-8 (byte {exc.start})") from None
    else:
        text = data.removeprefix("\ufeff")
    if fmt == "toml":
        _check_toml_keys(text)
    try:
        if fmt == "json":
            return json.loads(
                text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
            )
        return tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: line {exc.lineno}: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise DocumentError(f"not valid {fmt.upper()}: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise DocumentError(f"not valid {fmt.upper()}: {exc}") from None


def finite_number(value: object) -> float | None:
    """A parsed document's ``value`` as a finite float, or None when it is not a finite number:
    not a number, a boolean, or an integer too large for a float (``10**400``: a document may
    hold one; ``math.isfinite`` raises ``OverflowError`` on it)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            real = float(value)
        except OverflowError:
            return None
        if math.isfinite(real):
            return real
    return None
