"""Prepare one agency's side of an exchange: load every file, validate, derive match tokens.

This is the recipe layer (DESIGN.md §2 steps 1-2) that the CLI, the demo and the examples share:
one call from file paths to a :class:`PreparedSide`, with every bad row kept in a rejects file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xlink.errors import LoadError
from xlink.linkage.schema import LinkageSchema, load_default_schema
from xlink.linkage.tokens import TokenSet
from xlink.records.loaders import LoadResult, load_csv, load_jsonl
from xlink.records.model import PersonRecord

__all__ = ["PreparedSide", "default_mapping_path", "load_records", "prepare_side"]

StrPath = str | os.PathLike[str]

_CSV_SUFFIXES = (".csv", ".tsv")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


def default_mapping_path(path: StrPath) -> Path | None:
    """``data.mapping.json`` (or ``.toml``) next to ``data.csv``, if such a file exists."""
    p = Path(path)
    for suffix in (".mapping.json", ".mapping.toml"):
        candidate = p.with_name(p.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def load_records(
    path: StrPath,
    *,
    mapping: StrPath | None = None,
    date_order: str | None = None,
    rejects_path: StrPath | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load a CSV or JSON Lines file, choosing the loader by suffix and the column mapping
    from ``mapping`` or, when not given, :func:`default_mapping_path`.

    Raises :class:`~xlink.errors.LoadError` for an unknown suffix and for every whole-file
    problem the loaders report; bad rows are rejected, never raised.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    chosen = mapping if mapping is not None else default_mapping_path(p)
    if suffix in _CSV_SUFFIXES:
        return load_csv(
            p, mapping=chosen, date_order=date_order, rejects_path=rejects_path, progress=progress
        )
    if suffix in _JSONL_SUFFIXES:
        return load_jsonl(
            p, mapping=chosen, date_order=date_order, rejects_path=rejects_path, progress=progress
        )
    raise LoadError(str(p), "unknown file type: use .csv or .jsonl (JSON Lines)")


@dataclass(frozen=True, slots=True)
class PreparedSide:
    """One agency's records from all its files, and their match tokens."""

    loads: tuple[LoadResult, ...]
    schema: LinkageSchema
    tokens: TokenSet

    @property
    def records(self) -> tuple[PersonRecord, ...]:
        return tuple(r for load in self.loads for r in load.records)

    @property
    def loaded(self) -> int:
        return sum(load.loaded for load in self.loads)

    @property
    def rejected(self) -> int:
        return sum(load.rejected for load in self.loads)

    @property
    def untokenised(self) -> tuple[str, ...]:
        """Ids of records that derived no token at all (every key's fields missing): they can
        never match, so the analyst should see them rather than have them vanish."""
        with_tokens = set(self.tokens.record_index)
        return tuple(rid for i, rid in enumerate(self.tokens.record_ids) if i not in with_tokens)


def prepare_side(
    paths: Sequence[StrPath],
    *,
    schema: LinkageSchema | None = None,
    mappings: Sequence[StrPath | None] | None = None,
    date_order: str | None = None,
    rejects_dir: StrPath | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> PreparedSide:
    """Load every file of one agency and derive its token set with ``schema`` (default: the
    bundled default schema).

    Rejects go next to each input, or into ``rejects_dir`` (created if missing) when given.
    ``progress(step, n)`` reports rows loaded and records tokenised. Raises
    :class:`~xlink.errors.LoadError` when a file cannot be loaded or when the same record id
    appears in two files (ids must identify one record across the agency's whole side).
    """
    if not paths:
        raise ValueError("at least one input file is needed")
    if mappings is not None and len(mappings) != len(paths):
        raise ValueError("give one mapping per file, or none")
    schema = schema if schema is not None else load_default_schema()
    if rejects_dir is not None:
        Path(rejects_dir).mkdir(parents=True, exist_ok=True)
    loads: list[LoadResult] = []
    for i, path in enumerate(paths):
        rejects_path = None
        if rejects_dir is not None:
            p = Path(path)
            rejects_path = Path(rejects_dir) / f"{p.stem}.rejects{p.suffix}"

        def report(n: int, name: str = Path(path).name) -> None:
            if progress is not None:
                progress(f"loading {name}", n)

        loads.append(
            load_records(
                path,
                mapping=None if mappings is None else mappings[i],
                date_order=date_order,
                rejects_path=rejects_path,
                progress=report,
            )
        )
    seen: set[str] = set()
    clashes = 0
    for load in loads:
        for record in load.records:
            if record.record_id in seen:
                clashes += 1
            seen.add(record.record_id)
    if clashes:
        raise LoadError(
            ", ".join(str(p) for p in paths),
            f"{clashes} record id(s) appear in more than one file; ids must be unique per agency",
        )

    from xlink.linkage.keys import derive_token_set

    def report_tokens(n: int) -> None:
        if progress is not None:
            progress("deriving match tokens", n)

    records = [r for load in loads for r in load.records]
    tokens = derive_token_set(records, schema, progress=report_tokens)
    return PreparedSide(loads=tuple(loads), schema=schema, tokens=tokens)
