"""``xlink keygen``: make an agency's signing, sealing and TLS keys (docs/keys.md).

Also home of :func:`read_passphrase`, the one way the CLI obtains the passphrase that protects
private keys at rest (``xlink mou sign`` uses it too).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from xlink.cli._common import emit_json
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import (
    KEY_DIR_FILES,
    MIN_PASSPHRASE_BYTES,
    AgencyKeys,
)
from xlink.crypto.rand import system_random
from xlink.errors import InputError
from xlink.identifiers import AGENCY_ID_RULE, arg_type

__all__ = ["DEFAULT_PASSPHRASE_ENV", "add_passphrase_option", "read_passphrase", "register", "run"]

DEFAULT_PASSPHRASE_ENV: Final = "XLINK_PASSPHRASE"  # noqa: S105 (a variable name)
DEFAULT_VALID_DAYS: Final = 730
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: argparse type: an agency id an MOU can name (:data:`xlink.identifiers.AGENCY_ID`).
agency_id: Final = arg_type(AGENCY_ID_RULE)


def _env_name(text: str) -> str:
    if not _ENV_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError("not an environment variable name")
    return text


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-env",
        metavar="VAR",
        type=_env_name,
        default=DEFAULT_PASSPHRASE_ENV,
        help="read the key passphrase from this environment variable (default: "
        f"{DEFAULT_PASSPHRASE_ENV}); if it is not set, prompt when standard input is a terminal",
    )


def read_passphrase(env_var: str, *, confirm: bool) -> bytes:
    """The passphrase from ``$env_var``, else from a prompt on the terminal (asked twice with
    ``confirm``). Raises :class:`InputError` when it is empty, when the two entries differ, or
    when the variable is not set and standard input is not a terminal. Never echoes it."""
    value = os.environ.get(env_var)
    if value is None:
        if not sys.stdin.isatty():
            raise InputError(
                f"no passphrase: set {env_var} (or name another variable with "
                "--passphrase-env), or run from a terminal to be prompted"
            )
        value = getpass.getpass("Passphrase for the private keys: ")
        if confirm and getpass.getpass("Same passphrase again: ") != value:
            raise InputError("the two passphrases differ")
    if not value:
        raise InputError(f"the passphrase ({env_var} or prompt) is empty")
    return value.encode("utf-8", "surrogateescape")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "keygen",
        help="make this agency's signing, sealing and TLS keys",
        description="Make an agency's three keys: an Ed25519 signing key, an X25519 sealing "
        "key, and an ECDSA P-256 TLS key with its self-signed certificate. Private keys are "
        "written encrypted with the passphrase (PKCS#8 PEM), every file with mode 0600; "
        "public.json is the public bundle to send to the other agency for the MOU. Existing "
        "key files are never replaced without --force. Exit 0 on success, 3 if a file exists, "
        "the passphrase is missing or the directory cannot be written.",
    )
    p.add_argument("--agency", required=True, type=agency_id, metavar="ID", help="agency id")
    p.add_argument("--out", required=True, metavar="DIR", help="key directory (made mode 0700)")
    p.add_argument(
        "--valid-days",
        type=int,
        default=DEFAULT_VALID_DAYS,
        metavar="N",
        help=f"TLS certificate lifetime in days (default {DEFAULT_VALID_DAYS})",
    )
    add_passphrase_option(p)
    p.add_argument("--force", action="store_true", help="replace existing key files")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.valid_days < 1:
        raise InputError("--valid-days: must be at least 1")
    out = Path(args.out)
    if not args.force:  # before asking for a passphrase that would not be used
        for name in KEY_DIR_FILES:
            if (out / name).exists():
                raise InputError(f"{out / name}: already exists; refusing to overwrite it")
    passphrase = read_passphrase(args.passphrase_env, confirm=True)
    if len(passphrase) < MIN_PASSPHRASE_BYTES:
        raise InputError(f"the passphrase must be at least {MIN_PASSPHRASE_BYTES} bytes long")
    keys = AgencyKeys.generate(
        args.agency, rng=system_random, now=datetime.now(UTC), valid_days=args.valid_days
    )
    bundle_path = keys.save(out, passphrase, overwrite=args.force)
    bundle = keys.public_bundle()
    summary = {
        "agency_id": keys.agency_id,
        "directory": str(out),
        "files": list(KEY_DIR_FILES),
        "bundle": str(bundle_path),
        "verify_key": bytes(bundle.verify_key).hex(),
        "verify_key_fingerprint": bundle.verify_key.fingerprint(),
        "sealing_key": bytes(bundle.sealing_key).hex(),
        "sealing_key_fingerprint": bundle.sealing_key.fingerprint(),
        "tls_cert_sha256": bundle.tls_cert_sha256.hex(),
        "created": bundle.to_document()["created"],
    }
    if args.json:
        emit_json(summary)
        return ExitCode.OK
    print(f"keys for {keys.agency_id} written to {out} ({', '.join(KEY_DIR_FILES)}; mode 0600)")
    print(f"public bundle: {bundle_path}  (send it to the other agency)")
    print(f"  verify key   {summary['verify_key']}")
    print(f"  sealing key  {summary['sealing_key']}")
    print(f"  TLS SHA-256  {summary['tls_cert_sha256']}")
    print("read these to the other agency over a second channel before either signs an MOU")
    return ExitCode.OK
