"""A query table saved on disk (WORKDIR/query/) that is damaged, cut short or not a table is
read as none, so that it is built or fetched again: never an exception the service dies of."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from xlink.crypto.oprf9497 import OprfKey
from xlink.linkage.tokens import TokenSetBuilder
from xlink.query.asker_table import AskerTable
from xlink.query.entries import label_size_for
from xlink.query.holder_table import HolderTable

KEY = OprfKey.derive(b"\x01" * 32, b"xlink-test/saved-tables")
CHECK = b"c" * 16


def _holder() -> HolderTable:
    builder = TokenSetBuilder(("name", "dob"))
    for i in range(10):
        builder.add_record(f"r{i}", [("name", bytes([i, 1]) * 16), ("dob", bytes([i, 2]) * 16)])
    table = HolderTable.build(KEY, builder.build())
    table.workers = 1
    return table


def _asker() -> AskerTable:
    size = label_size_for(2)
    tags = np.arange(1, 41, dtype=np.uint64) * 7919
    labels = np.arange(40 * size, dtype=np.uint64).astype(np.uint8).reshape(40, size)
    return AskerTable(2, tags=tags, labels=labels, version=1)


def _saved(tmp_path: Path, which: str) -> tuple[Path, Callable[[Path], object]]:
    path = tmp_path / "t.npz"
    if which == "asker":
        _asker().save(path, meta=b"meta")
        return path, lambda p: AskerTable.load(p, meta=b"meta")
    _holder().save(path, check=CHECK)
    return path, lambda p: HolderTable.load(p, KEY, check=CHECK)


def _flip_in(data: bytes, member: str) -> bytes:
    """``data`` (a saved table) with one byte of ``member``'s array data flipped: the zip's
    CRC refuses it (``BadZipFile``, which escaped the load)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(member + ".npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    at = start + info.file_size - 1  # the last byte of the array's data
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _huge(data: bytes) -> bytes:
    """The same file whose ``tags`` header claims 10**11 entries (numpy would allocate 745 GiB)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            body = zin.read(name)
            if name == "tags.npy":
                head = io.BytesIO()
                header = {"descr": "<u8", "fortran_order": False, "shape": (10**11,)}
                np.lib.format.write_array_header_1_0(head, header)
                body = head.getvalue()
            zout.writestr(name, body)
    return out.getvalue()


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda data: b"",
    "cut short": lambda data: data[:-30],
    "random": lambda data: bytes(range(256)) * 8,
    "a byte of the tags changed": lambda data: _flip_in(data, "tags"),
    "a byte of the labels changed": lambda data: _flip_in(data, "labels"),
    "a header claiming 10**11 entries": _huge,
}


@pytest.mark.parametrize("which", ["asker", "holder"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_saved_table_reads_as_none(tmp_path: Path, which: str, damage: str) -> None:
    path, load = _saved(tmp_path, which)
    assert load(path) is not None  # whole, it reads
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    assert load(path) is None
