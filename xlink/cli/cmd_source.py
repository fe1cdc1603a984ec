"""``xlink source resolve``: which of our sources a release's source handle stands for
(docs/release.md, "Source protection")."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from xlink.cli._common import add_keys_option, emit_json, load_keys
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError, NothingLoaded
from xlink.prepare import load_records
from xlink.release import SOURCE_HANDLE_SIZE, resolve_source_handle
from xlink.release.handles import open_source_handle_key

__all__ = ["register", "run"]

_HEX_HANDLE = re.compile(f"[0-9a-fA-F]{{{2 * SOURCE_HANDLE_SIZE}}}")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "source",
        help="resolve a source handle (originator only)",
        description="Source handles stand in for the source of each released record. Only "
        "the originator, holding its source-handle key and its own record files, can tell "
        "which source a handle stands for.",
    )
    actions = p.add_subparsers(dest="source_command", metavar="ACTION", required=True)
    r = actions.add_parser(
        "resolve",
        help="find the source a handle stands for",
        description="Check HANDLE against every source id in FILE... with the agency's "
        "source-handle key (WORKDIR/source-handle.key, opened with the sealing key from "
        "--keys). Prints the source id. Exit 0 when resolved, 3 when no source in the files "
        "matches (or a file or the key cannot be read).",
    )
    r.add_argument("handle", metavar="HANDLE", help=f"{2 * SOURCE_HANDLE_SIZE} hex digits")
    r.add_argument(
        "--workdir",
        required=True,
        metavar="DIR",
        help="the agency's workdir: its source-handle.key, wrapped under the sealing key",
    )
    add_keys_option(
        r,
        "this agency's key directory (from xlink keygen): its sealing key opens "
        "the source-handle key",
    )
    r.add_argument("files", nargs="+", metavar="FILE", help="the agency's record files")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not _HEX_HANDLE.fullmatch(args.handle):
        raise InputError(f"HANDLE must be {2 * SOURCE_HANDLE_SIZE} hex digits")
    if args.keys is None:
        raise InputError("--keys: give this agency's key directory")
    keys = load_keys(args)
    assert keys is not None
    key = open_source_handle_key(Path(args.workdir), keys.sealing_key)
    candidates: set[str] = set()
    without_source = 0
    with tempfile.TemporaryDirectory() as scratch:  # a lookup writes no rejects file
        for i, path in enumerate(args.files):
            rejects = Path(scratch) / f"{i}.rejects.csv"
            try:
                records = load_records(path, rejects_path=rejects).records
            except NothingLoaded as refused:  # its rejects file is about to go
                raise refused.elsewhere() from None
            for record in records:
                if record.source is None:
                    without_source += 1
                else:
                    candidates.add(record.source.source_id)
    if without_source:
        candidates.add("")  # a record without a source gets a handle over the empty id
    found = resolve_source_handle(bytes.fromhex(args.handle), key, sorted(candidates))
    if args.json:
        emit_json(
            {"handle": args.handle.lower(), "resolved": found is not None, "source_id": found}
        )
    elif found is None:
        print("not resolved: no source in these files matches the handle", file=sys.stderr)
    elif found == "":
        print("(a record without source metadata)")
    else:
        print(found)
    return ExitCode.OK if found is not None else ExitCode.INPUT
