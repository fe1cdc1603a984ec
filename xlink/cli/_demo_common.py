"""What the demos (``xlink demo``, ``--in-process``, ``--hub``) share: the bundled files, the
passphrase their key directories are sealed with, and the agency processes they start."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xlink.crypto.keyfiles import MIN_PASSPHRASE_BYTES
from xlink.errors import InputError

__all__ = [
    "AGENCY_FILES",
    "BUNDLED_SIDE",
    "PASS_ENV",
    "agency_env",
    "demo_passphrase",
    "output_dir",
    "start_process",
    "stop_processes",
    "wait_port",
    "xlink_argv",
]

AGENCY_FILES: dict[str, tuple[str, ...]] = {
    "CA (RCMP/CBSA)": ("ca_watchlist.csv", "ca_sex_offenders.csv"),
    "US (DHS/CBP)": ("us_watchlist.csv", "us_travellers.csv"),
}
#: The bundled side each of the demo's agencies holds (a key of :data:`AGENCY_FILES`).
BUNDLED_SIDE = {"CA-RCMP": "CA (RCMP/CBSA)", "US-DHS": "US (DHS/CBP)"}
#: The variable an agency process reads the demo's passphrase from (and deletes once read,
#: docs/keys.md §2.4).
PASS_ENV = "XLINK_DEMO_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def output_dir(out: str | None, prefix: str) -> Path:
    """The demo's output directory: ``out``, or a new temporary one; made if missing."""
    path = Path(out) if out else Path(tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_passphrase() -> str:
    """The user's own ``XLINK_PASSPHRASE`` when set, so that the demo's key directories can be
    opened later (``xlink store ... --keys``, docs/quickstart.md); otherwise a random one nobody
    needs. Raises :class:`~xlink.errors.InputError` for a passphrase too short to seal keys."""
    passphrase = os.environ.get("XLINK_PASSPHRASE") or secrets.token_urlsafe(24)
    if len(passphrase.encode()) < MIN_PASSPHRASE_BYTES:
        raise InputError(f"XLINK_PASSPHRASE: use at least {MIN_PASSPHRASE_BYTES} bytes")
    return passphrase


def agency_env(passphrase: str) -> dict[str, str]:
    """The environment of an agency process: the passphrase in :data:`PASS_ENV`, and not the
    user's ``XLINK_PASSPHRASE``."""
    return {
        **{k: v for k, v in os.environ.items() if k != "XLINK_PASSPHRASE"},
        PASS_ENV: passphrase,
    }


def xlink_argv(*args: str) -> list[str]:
    """The command line of ``xlink ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "xlink.cli.main", *args]


def start_process(
    argv: list[str], out: Path, name: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output in ``out/<name>.json`` and its log in ``out/<name>.log``."""
    with (
        (out / f"{name.lower()}.json").open("wb") as stdout,
        (out / f"{name.lower()}.log").open("wb") as stderr,
    ):
        return subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)  # noqa: S603


def stop_processes(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Kill whichever of ``procs`` still run, and reap them."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_port(path: Path, proc: subprocess.Popen[bytes], deadline: float) -> int | None:
    """The port a listening process wrote to ``path``; ``None`` if it exits first or
    ``deadline`` (a ``time.perf_counter()`` value) passes."""
    while not path.exists():
        if proc.poll() is not None or time.perf_counter() > deadline:
            return None
        time.sleep(0.05)
    return int(path.read_text(encoding="ascii"))
