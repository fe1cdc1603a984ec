"""One agency's whole network run in one call: open, prepare, serve or match. What ``xlink
serve`` / ``xlink match`` run (docs/quickstart.md, "Two machines")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from xlink.agency._agency import Agency
from xlink.agency._outcome import AgencyOutcome
from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.crypto.workers import GroupWorkers
from xlink.prepare import StrPath
from xlink.progress import ProgressFn
from xlink.records.validation import BadFieldPolicy

__all__ = ["RoleName", "run_agency"]

RoleName = Literal["serve", "match"]


async def run_agency(
    role: RoleName,
    *,
    agency: str,
    files: Sequence[StrPath],
    keys_dir: str | Path,
    passphrase: bytes,
    mou_path: str | Path,
    peer_bundle_path: str | Path,
    host: str,
    port: int,
    workdir: StrPath,
    now_clock: Callable[[], datetime],
    rng: RandomSource,
    mappings: Sequence[StrPath | None] | None = None,
    date_order: str | None = None,
    bad_field: BadFieldPolicy | str = BadFieldPolicy.DROP_FIELD,
    timeout: float = 60.0,
    idle_timeout: float = 60.0,
    on_listening: Callable[[int], object] | None = None,
    progress: ProgressFn | None = None,
    workers: int | GroupWorkers | None = None,
    suite_id: int = DEFAULT_SUITE.suite_id,
) -> AgencyOutcome:
    """:meth:`Agency.open` on ``workdir``, :meth:`Agency.prepare` ``files``, then
    :meth:`Agency.serve` on ``host:port`` (``serve``: responder) or :meth:`Agency.match` to it
    (``match``: initiator); ``workers`` and ``suite_id`` as for :meth:`Agency.open`. Raises
    what those raise."""
    with Agency.open(
        workdir,
        agency=agency,
        keys_dir=keys_dir,
        passphrase=passphrase,
        mou_path=mou_path,
        peer_bundle_path=peer_bundle_path,
        clock=now_clock,
        rng=rng,
        workers=workers,
        suite_id=suite_id,
    ) as me:
        side = me.prepare(
            files,
            mappings=mappings,
            date_order=date_order,
            bad_field=bad_field,
            progress=progress,
        )
        if role == "serve":
            return await me.serve(
                side,
                host,
                port,
                timeout=timeout,
                idle_timeout=idle_timeout,
                on_listening=on_listening,
                progress=progress,
            )
        return await me.match(
            side, host, port, timeout=timeout, idle_timeout=idle_timeout, progress=progress
        )
