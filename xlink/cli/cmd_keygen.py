"""``xlink keygen``: make an agency's signing, sealing, TLS and audit keys, or upgrade a key
directory in place (docs/keys.md).

Also the one home of passphrase reading in the CLI: :func:`add_passphrase_option` and
:func:`read_passphrase` (environment variable, file, inherited file descriptor or prompt), used
by every command that opens a key directory, and reusable for a second passphrase in the same
command through ``prefix``.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from xlink.cli._common import emit_json
from xlink.cli.exitcodes import ExitCode
from xlink.crypto._secret_files import read_owner_only
from xlink.crypto.envelope import DEFAULT_KDF, check_passphrase_strength
from xlink.crypto.keyfiles import KEY_DIR_FILES, PUBLIC_BUNDLE_FILE, AgencyKeys, load_public_bundle
from xlink.crypto.rand import system_random
from xlink.errors import InputError, WeakPassphrase
from xlink.identifiers import AGENCY_ID_RULE, arg_type

__all__ = [
    "DEFAULT_PASSPHRASE_ENV",
    "add_passphrase_option",
    "passphrase_source",
    "read_passphrase",
    "register",
    "run",
]

DEFAULT_PASSPHRASE_ENV: Final = "XLINK_PASSPHRASE"  # noqa: S105 (a variable name)
DEFAULT_VALID_DAYS: Final = 730
NEW_PASSPHRASE: Final = "new-passphrase"  # noqa: S105 (an option prefix)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_PASSPHRASE_SOURCE_BYTES = 64 * 1024

#: argparse type: an agency id an MOU can name (:data:`xlink.identifiers.AGENCY_ID`).
agency_id: Final = arg_type(AGENCY_ID_RULE)


def _env_name(text: str) -> str:
    if not _ENV_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError("not an environment variable name")
    return text


def _fd_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("not a file descriptor number")
    return int(text)


def _dest(prefix: str, source: str) -> str:
    return f"{prefix}_{source}".replace("-", "_")


def add_passphrase_option(
    parser: argparse.ArgumentParser,
    *,
    prefix: str = "passphrase",
    what: str = "the key passphrase",
    default_env: str | None = DEFAULT_PASSPHRASE_ENV,
) -> None:
    """``--{prefix}-env VAR``, ``--{prefix}-file FILE`` and ``--{prefix}-fd N`` (one of the
    three), read by :func:`read_passphrase` with the same ``prefix``. ``default_env`` is the
    variable read when none is given (``None``: only an option given explicitly, else the
    prompt)."""
    group = parser.add_mutually_exclusive_group()
    default = f" (default: {default_env})" if default_env else ""
    group.add_argument(
        f"--{prefix}-env",
        metavar="VAR",
        type=_env_name,
        default=default_env,
        help=f"read {what} from this environment variable{default}, then delete it from the "
        "environment; if it is not set, prompt when standard input is a terminal",
    )
    group.add_argument(
        f"--{prefix}-file",
        metavar="FILE",
        help=f"read {what} from the first line of FILE (readable by its owner only)",
    )
    group.add_argument(
        f"--{prefix}-fd",
        metavar="N",
        type=_fd_number,
        help=f"read {what} from the first line of inherited file descriptor N, then close it",
    )


def passphrase_source(args: argparse.Namespace, *, prefix: str = "passphrase") -> str:
    """Where :func:`read_passphrase` takes the passphrase from, for messages."""
    if (path := getattr(args, _dest(prefix, "file"), None)) is not None:
        return f"--{prefix}-file {path}"
    if (fd := getattr(args, _dest(prefix, "fd"), None)) is not None:
        return f"--{prefix}-fd {fd}"
    env = getattr(args, _dest(prefix, "env"), None)
    return f"${env} or the prompt" if env else "the prompt"


def _first_line(data: bytes, where: str) -> bytes:
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    if not line:
        raise InputError(f"the passphrase ({where}) is empty")
    return line


def _read_file(path: str, option: str) -> bytes:
    """The first line of a passphrase file, refused (as a private key file is) when its group
    or others may read it."""
    data = read_owner_only(
        path,
        what="a passphrase file",
        where=f"{option} {path}",
        max_bytes=_MAX_PASSPHRASE_SOURCE_BYTES,
    )
    return _first_line(data, f"{option} {path}")


def _read_fd(fd: int, option: str) -> bytes:
    """The first line of what inherited file descriptor ``fd`` holds; ``fd`` is closed."""
    chunks: list[bytes] = []
    try:
        while sum(map(len, chunks)) < _MAX_PASSPHRASE_SOURCE_BYTES:
            chunk = os.read(fd, 4096)
            if not chunk or b"\n" in chunk:
                chunks.append(chunk)
                break
            chunks.append(chunk)
    except OSError as exc:
        raise InputError(f"{option}: cannot read file descriptor {fd}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):  # never open: the read said so
            os.close(fd)
    return _first_line(b"".join(chunks), f"{option} {fd}")


def _take_from_environment(name: str) -> str | None:
    """The variable's value, deleted from ``os.environ`` at once so that no child process
    inherits it and the value stays only in this process's memory. (On Linux,
    ``/proc/PID/environ`` still shows the environment the process was started with: for a
    long-running ``serve``, prefer ``--passphrase-file`` or ``--passphrase-fd``.)"""
    return os.environ.pop(name, None)


def read_passphrase(
    args: argparse.Namespace,
    *,
    prefix: str = "passphrase",
    confirm: bool,
    prompt: str = "Passphrase for the private keys: ",
) -> bytes:
    """The passphrase the options of :func:`add_passphrase_option` (same ``prefix``) name:
    the first line of ``--{prefix}-file`` or ``--{prefix}-fd`` (then closed), else the variable
    of ``--{prefix}-env`` (then deleted from ``os.environ``, so that no child process inherits
    it), else a prompt on the terminal (asked twice with ``confirm``). Never echoes it.

    Raises :class:`InputError` when it is empty, when the two entries differ, when the file is
    readable by group or others or cannot be read, or when nothing is given and standard input
    is not a terminal.
    """
    path = getattr(args, _dest(prefix, "file"), None)
    if path is not None:
        return _read_file(path, f"--{prefix}-file")
    fd = getattr(args, _dest(prefix, "fd"), None)
    if fd is not None:
        return _read_fd(fd, f"--{prefix}-fd")
    env_var = getattr(args, _dest(prefix, "env"), None)
    value = _take_from_environment(env_var) if env_var else None
    if value is None:
        if not sys.stdin.isatty():
            named = ""
            if env_var:
                named = f"set {env_var} (or name another variable with --{prefix}-env), "
            raise InputError(
                f"no passphrase: {named}give --{prefix}-file or --{prefix}-fd, or run from a "
                "terminal to be prompted"
            )
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Same passphrase again: ") != value:
            raise InputError("the two passphrases differ")
    if not value:
        raise InputError(f"the passphrase ({passphrase_source(args, prefix=prefix)}) is empty")
    return value.encode("utf-8", "surrogateescape")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "keygen",
        help="make this agency's keys, or upgrade a key directory",
        description="Make an agency's four keys: an Ed25519 signing key, an X25519 sealing "
        "key, an ECDSA P-256 TLS key with its self-signed certificate, and an Ed25519 "
        "audit-signing key endorsed by the signing key (audit-key.json). Private keys are "
        "sealed with the passphrase (Argon2id, ChaCha20-Poly1305: xlink-sealed-key-v1), every "
        "file with mode 0600; public.json is the public bundle to send to the other agency "
        "for the MOU. A passphrase that is short or easy to guess is refused. Existing key "
        "files are never replaced without --force. With --upgrade: re-seal the key files of "
        "an existing directory in place (older format, or lighter parameters), add a missing "
        "audit key, and print what changed (nothing, the second time). Exit 0 on success, 3 "
        "if a file exists, the passphrase is missing, wrong or weak, or the directory cannot "
        "be written.",
    )
    p.add_argument(
        "--agency",
        type=agency_id,
        metavar="ID",
        help="agency id (required; with --upgrade, checked against the directory's)",
    )
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
    p.add_argument(
        "--upgrade",
        action="store_true",
        help="upgrade the key directory --out in place instead of making keys",
    )
    add_passphrase_option(
        p, prefix=NEW_PASSPHRASE, what="a new passphrase (--upgrade only)", default_env=None
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(handler=run)


def _new_passphrase_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, _dest(NEW_PASSPHRASE, s)) is not None for s in ("env", "file", "fd"))


def run(args: argparse.Namespace) -> int:
    if args.upgrade:
        return _upgrade(args)
    if args.agency is None or _new_passphrase_given(args):
        usage = "give --agency ID (or --upgrade); --new-passphrase-* needs --upgrade"
        print(f"xlink keygen: {usage}", file=sys.stderr)
        return ExitCode.USAGE
    if args.valid_days < 1:
        raise InputError("--valid-days: must be at least 1")
    out = Path(args.out)
    if not args.force:  # before asking for a passphrase that would not be used
        for name in KEY_DIR_FILES:
            if (out / name).exists():
                raise InputError(f"{out / name}: already exists; refusing to overwrite it")
    passphrase = read_passphrase(args, confirm=True)
    check_passphrase_strength(passphrase, context=(args.agency,))
    keys = AgencyKeys.generate(
        args.agency, rng=system_random, now=datetime.now(UTC), valid_days=args.valid_days
    )
    bundle_path = keys.save(
        out, passphrase, overwrite=args.force, params=DEFAULT_KDF, rng=system_random
    )
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
        "audit_key": bytes(keys.audit_key.verify_key).hex(),
        "kdf": str(DEFAULT_KDF),
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


def _upgrade(args: argparse.Namespace) -> int:
    """``keygen --upgrade``: :meth:`AgencyKeys.upgrade` on ``--out``, printing what changed."""
    out = Path(args.out)
    if args.force:
        print("xlink keygen: --force does not apply to --upgrade", file=sys.stderr)
        return ExitCode.USAGE
    bundle = load_public_bundle(out / PUBLIC_BUNDLE_FILE)  # before asking for any passphrase
    if args.agency is not None and args.agency != bundle.agency_id:
        raise InputError(f"{out}: holds the keys of {bundle.agency_id}, not {args.agency}")
    passphrase = read_passphrase(args, confirm=False)
    new = None
    if _new_passphrase_given(args):
        new = read_passphrase(
            args, prefix=NEW_PASSPHRASE, confirm=True, prompt="New passphrase for the keys: "
        )
    try:
        check_passphrase_strength(new or passphrase, context=(bundle.agency_id,))
    except WeakPassphrase as exc:
        hint = "" if new else " (re-seal under a new one with --new-passphrase-env/-file/-fd)"
        raise WeakPassphrase(exc.reasons, f"{exc}{hint}") from None
    changed = AgencyKeys.upgrade(
        out, passphrase, rng=system_random, params=DEFAULT_KDF, new_passphrase=new
    )
    if args.json:
        emit_json({"directory": str(out), "changed": changed, "kdf": str(DEFAULT_KDF)})
        return ExitCode.OK
    if not changed:
        print(f"{out}: up to date ({DEFAULT_KDF}); nothing changed")
    for line in changed:
        print(f"{out / line}")
    return ExitCode.OK
