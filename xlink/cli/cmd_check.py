"""``xlink check``: a preflight of everything ``xlink serve`` / ``xlink match`` need, run before a
partner connects (docs/cli.md): keys and passphrase, the MOU, the partner's bundle, the linkage
schema the MOU names, the input files, the workdir and the port. Nothing is sent anywhere and
nothing is audited."""

from __future__ import annotations

import argparse
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink._workdir import workdir_lock
from xlink.agency import Agency
from xlink.cli._common import emit_json, error_lines, input_reading, terminal_text
from xlink.cli.cmd_keygen import read_passphrase
from xlink.cli.cmd_serve import add_exchange_options, host_port
from xlink.cli.exitcodes import ExitCode, exit_code_for
from xlink.crypto.cluster import dask_workers
from xlink.errors import InputError, NothingLoaded
from xlink.prepare import prepare_side
from xlink.release.policy import ungraded

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="preflight: keys, passphrase, MOU, bundle, schema, files, workdir and port",
        description="Check, before the partner connects, everything `xlink serve` or `xlink "
        "match` with the same options would need: the keys open with the passphrase and are "
        "the ones the MOU names; the MOU is signed by both and valid today; the partner's "
        "bundle carries the certificate the MOU pins; the linkage schema the MOU names is at "
        "hand; every input file loads (rejected rows are counted; their rejects file goes to a "
        "private temporary directory, deleted at once); the workdir "
        "is writable and no other run holds it; the --listen port can be bound, or the --peer "
        "host resolves; with --dask, the cluster starts or answers and every worker computes "
        "as this process does. Nothing is sent to the partner and nothing is audited. Exit 0 "
        "when every check passes, else the exit code the failing check would give serve/match "
        "(3 input, 5 MOU refused).",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", type=host_port, metavar="HOST:PORT", help="as for serve")
    where.add_argument("--peer", type=host_port, metavar="HOST:PORT", help="as for match")
    add_exchange_options(p)
    p.set_defaults(handler=run)


def _port(args: argparse.Namespace) -> str:
    if args.listen is not None:
        host, port = args.listen
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(infos[0][4])
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return f"{host}:{port} can be bound"
    host, port = args.peer
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InputError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return f"{host} resolves (the partner is not contacted)"


def _workdir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    with workdir_lock(path), tempfile.TemporaryFile(dir=path):
        pass
    return f"{path} is writable and free"


def _cluster(address: str) -> str:
    with dask_workers(address) as pool:
        return f"{address}: {pool.count} workers, each gave the known answers"


def run(args: argparse.Namespace) -> int:
    checks: list[dict[str, object]] = []
    failed: BaseException | None = None

    def step(name: str, action: Any) -> Any:
        nonlocal failed
        if failed is not None:
            checks.append({"check": name, "ok": None, "detail": "not checked"})
            return None
        try:
            result = action()
        except Exception as exc:
            failed = exc
            checks.append({"check": name, "ok": False, "detail": str(exc)})
            return None
        detail = result[1] if isinstance(result, tuple) else str(result)
        checks.append({"check": name, "ok": True, "detail": detail})
        return result

    def agency() -> tuple[Any, str]:
        passphrase = read_passphrase(args, confirm=False)
        found = Agency.check(
            agency=args.agency,
            keys_dir=args.keys,
            passphrase=passphrase,
            mou_path=args.mou,
            peer_bundle_path=args.peer_bundle,
            today=datetime.now(UTC).date(),
        )
        _, mou, schema, bundle = found
        return found, (
            f"MOU {mou.id} signed by both, valid until {mou.valid_until}; partner "
            f"{bundle.agency_id}; schema {schema.id} v{schema.version}"
        )

    def files(schema: Any, mou: Any) -> str:
        if args.mapping is not None and len(args.mapping) != len(args.files):
            raise InputError("give --mapping once per FILE, or not at all")
        with tempfile.TemporaryDirectory() as rejects:
            try:
                side = prepare_side(
                    args.files, schema=schema, **input_reading(args), rejects_dir=rejects
                )
            except NothingLoaded as refused:  # its rejects file is about to go
                raise refused.elsewhere() from None
        dropped = side.with_field_errors
        left_out = f" ({dropped} with bad fields left out)" if dropped else ""
        unread = len(side.unread_columns)
        not_read = (
            f"; {unread} column(s) named like a field kept in the payload, never matched on "
            "(xlink prepare names them and the mapping entries that would read them)"
            if unread
            else ""
        )
        missing = ungraded(side.records, mou)
        no_grading = (
            f"; {sum(missing.values())} record(s) without a source grading, which the MOU "
            f"requires to release them ({', '.join(f'{k} {v}' for k, v in missing.items())}): "
            "their matches would be denied grading-missing; map a grading column "
            "(docs/loading.md)"
            if missing
            else ""
        )
        return (
            f"{side.loaded} records{left_out}, {side.rejected} rows rejected, "
            f"{len(side.tokens)} tokens{not_read}{no_grading}"
        )

    found = step("keys, passphrase, MOU, partner bundle, schema", agency)
    schema = found[0][2] if found is not None else None
    mou = found[0][1] if found is not None else None
    step("input files", lambda: files(schema, mou))
    step("workdir", lambda: _workdir(Path(args.workdir)))
    step("port", lambda: _port(args))
    if args.dask is not None:
        step("Dask cluster", lambda: _cluster(args.dask))
    code = ExitCode.OK if failed is None else exit_code_for(failed)
    if args.json:
        emit_json({"ok": failed is None, "exit_code": int(code), "checks": checks})
    else:
        for c in checks:
            mark = {True: "ok  ", False: "FAIL", None: "-   "}[c["ok"]]  # type: ignore[index]
            lines = (
                error_lines(failed)
                if c["ok"] is False and failed is not None
                else [terminal_text(str(c["detail"]))]
            )
            print(f"{mark} {c['check']}: " + "\n".join(lines))
    return code
