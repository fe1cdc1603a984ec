"""The linkage schema an MOU names: bundled with xlink, or written beside the MOU by ``xlink mou
fill --schema``, and always checked against the digest both agencies signed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from xlink.errors import SchemaMismatch, XlinkError
from xlink.linkage.schema import LinkageSchema, load_schema, schema_digest
from xlink.policy import Mou
from xlink.prepare import StrPath

__all__ = ["SCHEMA_SIDECAR_SUFFIX", "schema_for_mou"]

SCHEMA_SIDECAR_SUFFIX: Final = ".schema.json"
"""``xlink mou fill --schema S --out M`` writes S beside the MOU as ``M`` + this suffix."""


def _bundled_schemas() -> list[Path]:
    folder = resources.files("xlink").joinpath("data", "schemas")
    return sorted(Path(str(folder)).glob("*.json"))


def schema_for_mou(mou: Mou, mou_path: StrPath | None = None) -> LinkageSchema:
    """The linkage schema the MOU names (by id, version and digest): one of the bundled
    schemas, or the MOU's sidecar ``<mou>.schema.json`` written by ``xlink mou fill
    --schema``. :class:`SchemaMismatch` if none has the MOU's digest."""
    candidates = _bundled_schemas()
    if mou_path is not None:
        sidecar = Path(str(mou_path) + SCHEMA_SIDECAR_SUFFIX)
        candidates.insert(0, sidecar)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            schema = load_schema(path)
        except XlinkError:
            continue
        if schema_digest(schema) == mou.schema_digest:
            return schema
    where = " or ".join(str(p) for p in candidates[:1]) if mou_path is not None else "xlink"
    raise SchemaMismatch(
        f"the MOU names linkage schema {mou.schema_id} v{mou.schema_version} "
        f"({mou.schema_digest.hex()[:16]}…), which neither {where} nor the bundled schemas hold"
    )
