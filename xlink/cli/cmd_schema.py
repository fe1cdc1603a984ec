"""``xlink schema``: validate a linkage schema and print its canonical digest."""

from __future__ import annotations

import argparse
import json
from typing import Any

from xlink._files import written_whole
from xlink.cli._common import emit_json
from xlink.cli.exitcodes import ExitCode
from xlink.errors import InputError
from xlink.linkage.schema import (
    load_default_schema,
    load_schema,
    schema_digest,
    schema_to_document,
)

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "schema",
        help="validate a linkage schema and print its digest",
        description="Validate a linkage schema (JSON or TOML), reporting every error at once, "
        "and print the canonical digest both parties compare before an exchange. With --write, "
        "also save it as JSON (without PATH: the bundled default schema, to start from).",
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="schema file (default: the bundled one)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "--write",
        metavar="OUT",
        help="also write the schema (validated, as JSON) to OUT: a starting point to edit, or "
        "what `xlink eval --write-schema` would fit; refuses to replace an existing file",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    schema = load_schema(args.path) if args.path else load_default_schema()
    digest = schema_digest(schema).hex()
    if args.write:
        text = json.dumps(schema_to_document(schema), indent=2, sort_keys=True) + "\n"
        try:
            with written_whole(args.write, overwrite=False) as f:
                f.write(text)
        except FileExistsError:
            raise InputError(f"{args.write}: already exists; choose another name") from None
    # the schema-wide members that change tokens without changing the keys
    flags = {
        "placeholder_names": schema.placeholder_names,
        "full_birth_dates": schema.full_birth_dates,
    }
    if args.json:
        emit_json(
            {
                "id": schema.id,
                "version": schema.version,
                "digest": digest,
                "keys": [k.name for k in schema.keys],
                "threshold": schema.threshold,
                **flags,
                "min_evidence_groups": schema.min_evidence_groups,
                "evidence": (
                    None
                    if schema.min_evidence_groups is None
                    else {
                        group.value: sorted(f.value for f in fields)
                        for group, fields in schema.evidence_fields().items()
                    }
                ),
            }
        )
    else:
        print(f"schema {schema.id} v{schema.version}: valid, {len(schema.keys)} keys")
        print(f"digest {digest}")
        if any(flags.values()):
            print("  " + ", ".join(name for name, on in flags.items() if on))
        if schema.min_evidence_groups is not None:
            kinds = "; ".join(
                f"{group.value} ({', '.join(sorted(f.value for f in fields))})"
                for group, fields in schema.evidence_fields().items()
            )
            print(f"  a decision needs agreement on {schema.min_evidence_groups} of: {kinds}")
        for k in schema.keys:
            print(f"  {k.name} v{k.version}: {', '.join(f.value for f in k.fields)}")
    return ExitCode.OK
