"""``xlink hub``: the information-sharing hub and an agency's side of it (docs/hub.md).

``keygen`` makes the hub's key; ``serve`` runs the relay and scheduler; ``schedule`` adds a
round; ``status`` shows the jobs; ``export-checkpoints`` gives an auditor the checkpoints an
agency had the hub cosign; ``agent`` is an agency's standing connection; ``ask`` fans a query
out to every partner allowed; ``matches`` is the analyst's combined view.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xlink._files import written_whole
from xlink.audit import PublishedCheckpoint, dump_checkpoints
from xlink.cli._common import (
    add_input_options,
    add_psi_suite_option,
    check_mappings,
    emit_json,
    terminal_text,
    write_port_file,
)
from xlink.cli.cmd_keygen import add_passphrase_option, agency_id, read_passphrase
from xlink.cli.cmd_serve import host_port, run_cancellable
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.hub_key import HubKey
from xlink.crypto.keyfiles import load_public_bundle
from xlink.crypto.rand import system_random
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.errors import DecryptionError, InputError, PolicyDenied
from xlink.hub import AgentFiles, Hub, HubAddress, HubAgent, ask_partners, partners_of
from xlink.hub.combined import combined_matches
from xlink.hub.schedule import JobState, Schedule
from xlink.policy.multilateral import (
    MultilateralMou,
    accept_multilateral,
    load_multilateral,
    multilateral_digest,
)
from xlink.records.validation import BadFieldPolicy

__all__ = ["register"]


def _now() -> datetime:
    return datetime.now(UTC)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "hub",
        help="the information-sharing hub: relay, schedule, fan-out queries",
        description="Many agencies under one multilateral MOU connect out to a hub, which "
        "schedules their pairwise exchanges and relays them end to end (docs/hub.md).",
    )
    actions = p.add_subparsers(dest="hub_action", required=True, metavar="ACTION")

    keygen = actions.add_parser("keygen", help="make the hub's signing key")
    keygen.add_argument("--hub-id", required=True, type=agency_id, metavar="ID")
    keygen.add_argument("--out", required=True, metavar="FILE", help="the key file to write")
    add_passphrase_option(keygen)
    keygen.set_defaults(handler=_keygen)

    serve = actions.add_parser("serve", help="run the hub until SIGTERM or Ctrl-C")
    _hub_options(serve)
    serve.add_argument("--key", required=True, metavar="FILE", help="the hub's key file")
    serve.add_argument("--listen", required=True, type=host_port, metavar="HOST:PORT")
    serve.add_argument("--port-file", metavar="FILE", help="write the bound port here")
    serve.add_argument("--round", action="store_true", help="schedule one round at start")
    serve.add_argument(
        "--every", type=float, metavar="HOURS", help="schedule a round every HOURS (nightly: 24)"
    )
    serve.add_argument(
        "--job-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="fail (and retry later) a job running longer than this (default 600)",
    )
    serve.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once no job is pending or running (with --round: one round, then exit)",
    )
    add_passphrase_option(serve)
    serve.set_defaults(handler=_serve)

    schedule = actions.add_parser("schedule", help="add one round of exchanges, due now")
    _hub_options(schedule)
    schedule.set_defaults(handler=_schedule)

    status = actions.add_parser("status", help="the hub's jobs")
    status.add_argument("--workdir", required=True, metavar="DIR")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    export = actions.add_parser(
        "export-checkpoints",
        help="the checkpoints an agency's log had the hub cosign (for xlink audit verify)",
    )
    export.add_argument("--workdir", required=True, metavar="DIR")
    export.add_argument("--agency", required=True, type=agency_id, metavar="ID")
    export.add_argument(
        "--partner",
        required=True,
        type=agency_id,
        metavar="ID",
        help="the log of AGENCY's exchanges with this partner",
    )
    export.add_argument("--out", metavar="FILE", help="default: standard output")
    export.set_defaults(handler=_export)

    agent = actions.add_parser("agent", help="an agency's standing connection to the hub")
    _agency_options(agent)
    add_input_options(agent, "this agency's list (CSV or JSON Lines)")
    add_psi_suite_option(agent)
    agent.set_defaults(handler=_agent)

    ask = actions.add_parser("ask", help="ask every partner allowed about travellers")
    _agency_options(ask)
    add_input_options(ask, "the travellers: one record or a manifest")
    ask.add_argument(
        "--partner",
        action="append",
        type=agency_id,
        metavar="ID",
        help="ask only this partner (repeat); default: every partner whose terms allow queries",
    )
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(handler=_ask)

    matches = actions.add_parser("matches", help="which of our records matched which partners")
    matches.add_argument("--workdir", required=True, metavar="DIR", help="the agent's workdir")
    matches.add_argument(
        "--min-lists",
        type=_positive,
        default=1,
        metavar="K",
        help="only records matched on at least K partners' lists",
    )
    matches.add_argument("--json", action="store_true")
    matches.set_defaults(handler=_matches)


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("expected an integer of at least 1")
    return int(text)


def _hub_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mou", required=True, metavar="FILE", help="the multilateral MOU")
    p.add_argument("--workdir", required=True, metavar="DIR", help="the hub's schedule.db")


def _agency_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agency", required=True, type=agency_id, metavar="ID")
    p.add_argument("--keys", required=True, metavar="DIR", help="this agency's key directory")
    p.add_argument("--mou", required=True, metavar="FILE", help="the multilateral MOU")
    p.add_argument(
        "--bundle",
        action="append",
        required=True,
        metavar="FILE",
        help="a partner's public.json (repeat, one per partner)",
    )
    p.add_argument("--hub", required=True, type=host_port, metavar="HOST:PORT")
    p.add_argument(
        "--workdir",
        required=True,
        metavar="DIR",
        help="one Agency workdir per partner goes under DIR/partners/",
    )
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS")
    add_passphrase_option(p)


def _mou(path: str, local: str | None) -> MultilateralMou:
    return accept_multilateral(load_multilateral(path), local_agency=local, today=_now().date())


def _keygen(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args, confirm=True, prompt="Passphrase for the hub key: ")
    key = HubKey.generate(args.hub_id, rng=system_random)
    key.save(args.out, passphrase, rng=system_random)
    emit_json({"hub_id": key.hub_id, "verify_key": bytes(key.verify_key).hex()})
    return ExitCode.OK


def _load_hub_key(args: argparse.Namespace) -> HubKey:
    passphrase = read_passphrase(args, confirm=False, prompt="Passphrase for the hub key: ")
    try:
        return HubKey.load(args.key, passphrase)
    except DecryptionError:
        raise InputError(f"--key: {args.key} does not open with this passphrase") from None


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    mou = _mou(args.mou, None)
    key = _load_hub_key(args)
    every = timedelta(hours=args.every) if args.every else None
    hub = Hub(
        mou,
        key.signing_key,
        Path(args.workdir),
        clock=_now,
        rng=system_random,
        job_timeout=args.job_timeout,
        every=every,
    )
    try:
        if args.round:
            hub.add_round()

        def listening(port: int) -> None:
            print(f"hub {hub.hub_id} listening on {args.listen[0]}:{port}", file=sys.stderr)
            write_port_file(args.port_file, port)

        async def main() -> None:
            serving = asyncio.ensure_future(
                hub.serve(args.listen[0], args.listen[1], on_listening=listening)
            )
            if not args.exit_when_done:
                await serving
                return
            try:
                while not serving.done():
                    await asyncio.sleep(0.5)
                    open_jobs = hub.schedule.jobs(state=JobState.PENDING)
                    open_jobs += hub.schedule.jobs(state=JobState.RUNNING)
                    if not open_jobs:
                        break
            finally:
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)

        run_cancellable(main())
        failed = hub.schedule.jobs(state=JobState.FAILED)
    finally:
        hub.close()
    return ExitCode.PROTOCOL if failed and args.exit_when_done else ExitCode.OK


def _schedule(args: argparse.Namespace) -> int:
    mou = _mou(args.mou, None)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with Schedule.open(Path(args.workdir) / "schedule.db", now=_now()) as schedule:
        schedule.bind_mou(multilateral_digest(mou))
        number = schedule.add_round(mou.pairs(), now=_now(), rng=system_random)
        jobs = [j for j in schedule.jobs() if j.round == number]
    emit_json({"round": number, "jobs": [j.as_json() for j in jobs]})
    return ExitCode.OK


def _open_schedule(workdir: str) -> Schedule:
    path = Path(workdir) / "schedule.db"
    if not path.is_file():
        raise InputError(f"{workdir}: no schedule.db (not a hub workdir)")
    return Schedule.read_only(path)


def _status(args: argparse.Namespace) -> int:
    with _open_schedule(args.workdir) as schedule:
        jobs = schedule.jobs()
    if args.json:
        emit_json({"jobs": [j.as_json() for j in jobs]})
        return ExitCode.OK
    for j in jobs:
        reason = f" ({j.reason})" if j.reason else ""
        print(
            f"round {j.round}  {j.initiator} -> {j.responder}  {j.state}, "
            f"{j.attempts} attempt(s){reason}"
        )
    return ExitCode.OK


def _export(args: argparse.Namespace) -> int:
    with _open_schedule(args.workdir) as schedule:
        kept = schedule.checkpoints(args.agency, args.partner)
    if not kept:
        raise InputError(
            f"the hub keeps no checkpoint of {args.agency}'s log of exchanges with "
            f"{args.partner} (check both agency ids: `xlink hub status` lists the pairs)"
        )
    try:
        published = [PublishedCheckpoint.from_json(json.loads(text)) for text in kept]
    except ValueError:
        raise InputError(f"{args.workdir}: a kept checkpoint is damaged") from None
    text = dump_checkpoints(args.agency, published)
    if args.out:
        try:  # never overwritten, as `xlink audit export-checkpoints`
            with written_whole(args.out, overwrite=False) as f:
                f.write(text)
        except FileExistsError:
            raise InputError(f"--out: {args.out} exists (not overwritten)") from None
    else:
        sys.stdout.write(text)
    return ExitCode.OK


def _files(
    args: argparse.Namespace, suite_id: int = DEFAULT_SUITE.suite_id
) -> tuple[AgentFiles, MultilateralMou]:
    check_mappings(args)
    mou = _mou(args.mou, args.agency)
    bundles: dict[str, Path] = {}
    for path in args.bundle:
        bundle = load_public_bundle(path)
        if bundle.agency_id == args.agency:
            raise InputError(f"--bundle: {path} is our own bundle ({args.agency}), not a partner's")
        if bundle.agency_id in bundles:
            raise InputError(f"--bundle: two bundles for {bundle.agency_id}")
        bundles[bundle.agency_id] = Path(path)
    missing = [p for p in partners_of(mou.pairs(), args.agency) if p not in bundles]
    if missing:
        raise InputError(
            f"--bundle: none given for {', '.join(missing)} (every partner the MOU gives "
            "terms needs its public.json)"
        )
    passphrase = read_passphrase(args, confirm=False)
    files = AgentFiles(
        agency=args.agency,
        keys_dir=Path(args.keys),
        passphrase=passphrase,
        mou=Path(args.mou),
        bundles=bundles,
        files=tuple(Path(f) for f in args.files),
        mappings=tuple(Path(m) for m in args.mapping) if args.mapping else None,
        date_order=args.date_order,
        bad_field=BadFieldPolicy(args.bad_field),
        suite_id=suite_id,
    )
    return files, mou


def _agent(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    files, mou = _files(args, args.psi_suite)
    address = HubAddress(args.hub[0], args.hub[1], mou.hub)
    agent = HubAgent(files, address, args.workdir, clock=_now, rng=system_random)
    try:
        run_cancellable(agent.run())
    finally:
        agent.close()
    return ExitCode.OK


def _ask(args: argparse.Namespace) -> int:
    files, mou = _files(args)
    address = HubAddress(args.hub[0], args.hub[1], mou.hub)
    allowed = [
        p
        for p in partners_of(mou.pairs(), args.agency)
        if (terms := mou.terms_for(args.agency, p)) is not None and terms.query_quota_per_day > 0
    ]
    for partner in args.partner or []:
        if partner not in allowed:
            reason = "not-a-party" if partner not in mou.agency_ids else "no-query-terms"
            raise PolicyDenied([f"{reason}:{partner}"])
    partners = args.partner or allowed
    answers = run_cancellable(
        ask_partners(
            files,
            address,
            Path(args.workdir),
            partners,
            files.files,
            clock=_now,
            rng_of=lambda _p: system_random,
            timeout=args.timeout,
        )
    )
    doc = []
    for a in answers:
        item: dict[str, object] = {"partner": a.partner, "ok": a.outcome is not None}
        if a.outcome is not None:
            item["matched"] = a.outcome.matched
            item["received"] = a.outcome.received
            item["answers"] = [
                {"record_id": t.record_id, "matched": t.matched, "fate": t.fate}
                for t in a.outcome.answers
            ]
        else:
            item["error"] = a.error
            item["detail"] = a.detail
        doc.append(item)
    if args.json:
        emit_json({"partners": doc})
    else:
        for item, answer in zip(doc, answers, strict=True):
            if answer.outcome is not None:
                fates = Counter(t.fate for t in answer.outcome.answers if t.matched)
                how = ", ".join(f"{n} {fate}" for fate, n in sorted(fates.items()))
                print(
                    f"{item['partner']}: {item['matched']} of {answer.outcome.travellers} "
                    f"matched{f' ({how})' if how else ''}; {item['received']} new release(s) "
                    "stored (one delivered before is not sent again)"
                )
            else:
                detail = terminal_text(str(item["detail"]))  # the hub's words, or anyone's
                print(f"{item['partner']}: no answer ({item['error']}: {detail})")
    return ExitCode.OK if all(a.outcome is not None for a in answers) else ExitCode.PROTOCOL


def _matches(args: argparse.Namespace) -> int:
    rows = combined_matches(Path(args.workdir), min_lists=args.min_lists)
    if args.json:
        emit_json({"records": [r.as_json() for r in rows]})
        return ExitCode.OK
    if not rows:
        print(f"no record of ours matched on at least {args.min_lists} partner list(s)")
    for r in rows:
        print(f"{r.own_record_id} [{r.own_category}] on {r.lists} list(s):")
        for p in r.partners:
            release = p.inbound_release_id or "none"
            print(f"  {p.partner:8} score {p.score}, release {release} ({p.inbound})")
    return ExitCode.OK
