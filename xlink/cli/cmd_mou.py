"""``xlink mou fill|sign|verify``: the MOU ceremony (docs/keys.md §5, docs/mou.md), for a
bilateral MOU or a multilateral one (docs/mou.md §8), decided by the document's ``format``."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from xlink._files import written_whole
from xlink.agency import SCHEMA_SIDECAR_SUFFIX
from xlink.cli._common import emit_json, error_lines, terminal_text
from xlink.cli._mou_fill import bundle_keys, hub_key, max_set_sizes
from xlink.cli._mou_output import (
    mou_summary,
    multilateral_summary,
    print_mou_summary,
    print_multilateral_summary,
)
from xlink.cli.cmd_keygen import add_passphrase_option, agency_id, read_passphrase
from xlink.cli.exitcodes import ExitCode
from xlink.crypto.keyfiles import AgencyKeys
from xlink.errors import InputError
from xlink.linkage.schema import (
    load_default_schema,
    load_schema,
    schema_digest,
    schema_to_document,
)
from xlink.policy import (
    Mou,
    MouRefused,
    MultilateralMou,
    MultilateralTemplate,
    SignedMou,
    SignedMultilateralMou,
    accept_mou,
    accept_multilateral,
    dump_mou,
    dump_multilateral,
    load_any_mou,
    load_any_template,
    load_sample_template,
    mou_digest,
    pair_mou,
    sign_mou,
    sign_multilateral,
)
from xlink.policy.document import format_of
from xlink.policy.signing import NOT_A_PARTY

__all__ = ["RELEASE_MODES", "register", "run"]

#: ``mou fill --release``: the value of ``release.approval_required`` each mode writes.
RELEASE_MODES: dict[str, bool] = {"officer-approval": True, "straight-through": False}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mou",
        help="fill an MOU template with the agencies' keys, sign it, verify it",
        description="The MOU ceremony: fill a template with the agencies' public bundles, "
        "have each agency sign it, and verify it before use (docs/keys.md). A bilateral MOU "
        "or a multilateral one (format xlink-mou-multilateral-v1: many agencies and a hub, "
        "docs/mou.md §8), decided by the document's format member. Exit 0 on success, 3 for "
        "an unreadable or invalid file, key or passphrase, 5 when verify refuses the MOU "
        "(every reason listed).",
    )
    actions = p.add_subparsers(dest="mou_command", metavar="ACTION", required=True)
    fill = actions.add_parser(
        "fill",
        help="fill a template with both agencies' public keys",
        description="Fill an MOU template with each party's verify key, sealing key and TLS "
        "certificate pin (from its public bundle), the linkage schema digest and any set-size "
        "bounds the template leaves out; write the unsigned MOU (.toml or .json, from --out's "
        "suffix). A multilateral template also takes the hub's verify key (--hub-key-pub). "
        "Refused (exit 3) when the validity window has already ended: valid_until "
        "must be after today; valid_from may be in the past.",
    )
    fill.add_argument(
        "template",
        nargs="?",
        metavar="TEMPLATE",
        help="template file (.toml/.json; default: the bundled CA-RCMP/US-DHS sample); a "
        "multilateral one (format xlink-mou-multilateral-v1) names a hub and many parties",
    )
    fill.add_argument(
        "--bundle",
        action="append",
        required=True,
        metavar="FILE",
        help="a party's public.json (give it once per party)",
    )
    fill.add_argument(
        "--hub-key-pub",
        metavar="HEX|FILE",
        help="multilateral templates only, and required there: the hub's Ed25519 verify key "
        "(hub.verify_key), as 64 hex digits or a file holding them, or a JSON file with a "
        "verify_key member (and, if it has one, a hub_id that must be the template's)",
    )
    fill.add_argument(
        "--id",
        dest="mou_id",
        metavar="ID",
        help="the MOU's id (default: the template's, which the bundled sample's is: give your "
        "agreement its own)",
    )
    fill.add_argument("--schema", metavar="PATH", help="linkage schema (default: the bundled one)")
    fill.add_argument("--valid-from", type=_date, metavar="YYYY-MM-DD", help="first valid day")
    fill.add_argument(
        "--valid-until",
        type=_date,
        metavar="YYYY-MM-DD",
        help="last valid day; must be after today (default: the template's)",
    )
    fill.add_argument(
        "--release",
        choices=RELEASE_MODES,
        metavar="{" + ",".join(RELEASE_MODES) + "}",
        help="officer-approval: each hit waits in the approval queue until an officer approves "
        "it (release.approval_required = true); straight-through: matches are released "
        "without approval (false). Default: the template's",
    )
    fill.add_argument(
        "--reciprocal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="release.reciprocal: in an exchange each side sends as many releases as the fewer "
        "of the two offers, never more than 8 ahead of the partner's (xlink-release-v1 10.5); "
        "--no-reciprocal: each sends all it has. Default: the template's",
    )
    fill.add_argument(
        "--today",
        type=_date,
        metavar="YYYY-MM-DD",
        help="the day the validity window is checked against (default: UTC today)",
    )
    fill.add_argument(
        "--max-set-size",
        action="append",
        type=_set_size,
        default=[],
        metavar="[AGENCY=]N",
        help="the largest padded PSI set AGENCY may declare in one session (parties[]."
        "max_set_size), a multiple of the template's padding bucket; without AGENCY= for every "
        "party not named; repeatable. Required for a party whose template leaves it out",
    )
    fill.add_argument(
        "--set-size-budget-per-day",
        type=int,
        metavar="N",
        help="the most padded elements one party may send per UTC day over all its sessions "
        "(exchange.set_size_budget_per_day; default: the template's, if any). Bilateral "
        "templates only: a multilateral one sets it per pair, in its terms",
    )
    fill.add_argument("--out", required=True, metavar="FILE", help="the MOU to write")
    fill.add_argument("--force", action="store_true", help="replace --out if it exists")
    sign = actions.add_parser(
        "sign",
        help="add this agency's signature",
        description="Add this agency's Ed25519 signature over the MOU digest (of either kind), "
        "keeping the other parties'. Refused (exit 3) unless the MOU names this agency's own "
        "verify key, sealing key and TLS certificate. Check the other parties' keys (and a "
        "multilateral MOU's hub key) it prints against what they told you over a second "
        "channel.",
    )
    sign.add_argument("mou", metavar="MOU", help="the MOU file")
    sign.add_argument("--keys", required=True, metavar="DIR", help="this agency's key directory")
    sign.add_argument("--agency", required=True, type=agency_id, metavar="ID", help="signer")
    sign.add_argument("--out", metavar="FILE", help="write here (default: replace MOU)")
    add_passphrase_option(sign)
    verify = actions.add_parser(
        "verify",
        help="check every signature and the validity period",
        description="Accept the MOU for this agency, or refuse it listing every reason: "
        "not-a-party, signature-missing:<agency>, signature-invalid:<agency>, not-yet-valid, "
        "expired, and with --peer not-a-party:<peer> or (multilateral) no-terms:<a>+<b>. A "
        "multilateral MOU needs every party's signature; its summary lists the pairs with "
        "terms, and with --peer the digest of that pair's view (the one the PSI handshake "
        "compares). Exit 0 accepted, 5 refused, 3 unreadable or invalid.",
    )
    verify.add_argument("mou", metavar="MOU", help="the MOU file")
    verify.add_argument(
        "--agency",
        required=True,
        type=agency_id,
        metavar="ID",
        help="us: a party; for a multilateral MOU also the hub's id (the hub accepting it)",
    )
    verify.add_argument(
        "--peer",
        type=agency_id,
        metavar="ID",
        help="the partner: must be the other party of a bilateral MOU; with a multilateral "
        "one, prints the digest of the pair view of --agency and this partner",
    )
    verify.add_argument(
        "--today", type=_date, metavar="YYYY-MM-DD", help="the day to check (default: UTC today)"
    )
    for action in (fill, sign, verify):
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(handler=run)


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a date YYYY-MM-DD") from None


def _set_size(text: str) -> tuple[str | None, int]:
    agency, sep, number = text.rpartition("=")
    try:
        return (agency if sep else None, int(number, 10))
    except ValueError:
        raise argparse.ArgumentTypeError("not [AGENCY=]N with N an integer") from None


def _write_atomic(path: Path, text: str, *, overwrite: bool) -> None:
    """Write ``path`` whole (:func:`~xlink._files.written_whole`): over an existing file only
    with ``overwrite``."""
    if not overwrite and path.exists():
        raise InputError(f"{path}: already exists (use --force to replace it)")
    try:
        with written_whole(path, overwrite=overwrite) as f:
            f.write(text)
    except FileExistsError:  # made since the check above
        raise InputError(f"{path}: already exists (use --force to replace it)") from None


def _check_window(mou: Mou | MultilateralMou, args: argparse.Namespace) -> None:
    """Refuse an MOU whose validity window ends today or earlier: nobody could sign and use it
    (``--today``, or the UTC date, is the day checked). A window that began in the past is
    fine as long as it has not ended."""
    today = args.today or datetime.datetime.now(datetime.UTC).date()
    if mou.valid_until > today:
        return
    field = "--valid-until" if args.valid_until else "valid_until (from the template)"
    raise InputError(
        f"{field}: the MOU would be valid until {mou.valid_until.isoformat()}, which is not "
        f"after today ({today.isoformat()}); give a later --valid-until"
    )


def _fill(args: argparse.Namespace) -> int:
    template = load_any_template(args.template) if args.template else load_sample_template()
    multilateral = isinstance(template, MultilateralTemplate)
    if multilateral and args.hub_key_pub is None:
        raise InputError("--hub-key-pub: required for a multilateral template (the hub's key)")
    if not multilateral and args.hub_key_pub is not None:
        raise InputError("--hub-key-pub: only for a multilateral template (this one is not)")
    if multilateral and args.set_size_budget_per_day is not None:
        raise InputError(
            "--set-size-budget-per-day: a multilateral MOU sets it per pair, in the template's "
            "terms (terms[].exchange.set_size_budget_per_day)"
        )
    keys = bundle_keys(args.bundle, template.agency_ids)
    sizes = max_set_sizes(args.max_set_size, template)
    schema = load_schema(args.schema) if args.schema else load_default_schema()
    approval = None if args.release is None else RELEASE_MODES[args.release]
    out = Path(args.out)
    fmt = format_of(out)
    mou: Mou | MultilateralMou
    if isinstance(template, MultilateralTemplate):
        mou = template.fill(
            keys,
            hub_key=hub_key(args.hub_key_pub, template),
            schema_digest=schema_digest(schema),
            valid_from=args.valid_from,
            valid_until=args.valid_until,
            max_set_size=sizes,
            approval_required=approval,
            reciprocal=args.reciprocal,
            mou_id=args.mou_id,
        )
        text = dump_multilateral(mou, fmt)
        summary: dict[str, object] = multilateral_summary(SignedMultilateralMou(mou))
    else:
        mou = template.fill(
            keys,
            schema_digest=schema_digest(schema),
            valid_from=args.valid_from,
            valid_until=args.valid_until,
            max_set_size=sizes,
            set_size_budget_per_day=args.set_size_budget_per_day,
            approval_required=approval,
            reciprocal=args.reciprocal,
            mou_id=args.mou_id,
        )
        text = dump_mou(mou, fmt)
        summary = mou_summary(SignedMou(mou))
    _check_window(mou, args)
    if (mou.schema_id, mou.schema_version) != (schema.id, schema.version):
        raise InputError(
            f"the template names linkage schema {mou.schema_id} v{mou.schema_version}, "
            f"not {schema.id} v{schema.version} (pass it with --schema)"
        )
    _write_atomic(out, text, overwrite=args.force)
    summary["out"] = str(out)
    if args.schema:
        # The schema travels with the MOU: serve and match take the schema the MOU names
        # from here (or from the bundled ones), checked against the signed digest.
        sidecar = Path(str(out) + SCHEMA_SIDECAR_SUFFIX)
        schema_text = json.dumps(schema_to_document(schema), indent=2, sort_keys=True) + "\n"
        _write_atomic(sidecar, schema_text, overwrite=True)
        summary["schema_file"] = str(sidecar)
    if args.json:
        emit_json(summary)
    else:
        (print_multilateral_summary if multilateral else print_mou_summary)(summary)
        print(f"written to {out}: each agency checks the keys above, then runs `xlink mou sign`")
    return ExitCode.OK


def _sign(args: argparse.Namespace) -> int:
    signed = load_any_mou(args.mou)
    out = Path(args.out) if args.out else Path(args.mou)
    fmt = format_of(out)
    try:
        own = signed.mou.party(args.agency)
    except KeyError:
        raise InputError(f"{args.mou}: {args.agency} is not a party to this MOU") from None
    passphrase = read_passphrase(args, confirm=False)
    keys = AgencyKeys.load(args.keys, passphrase)
    if keys.agency_id != args.agency:
        raise InputError(f"{args.keys}: holds the keys of {keys.agency_id}, not {args.agency}")
    # Signing a document that names someone else's sealing key or certificate for us would
    # send our records, or our TLS session, to them: every one of our keys must be ours.
    wrong = [
        member
        for member, ok in (
            ("verify_key", own.verify_key == keys.signing_key.verify_key),
            ("sealing_key", own.sealing_key == keys.sealing_key.public_key),
            ("tls_cert_sha256", own.tls_cert_sha256 == keys.tls.fingerprint),
        )
        if not ok
    ]
    if wrong:
        raise InputError(
            f"{args.mou}: the MOU's {', '.join(wrong)} for {args.agency} is not the key in "
            f"{args.keys}; refusing to sign"
        )
    if isinstance(signed, SignedMultilateralMou):
        multi = sign_multilateral(signed, args.agency, keys.signing_key)
        text, summary = dump_multilateral(multi, fmt), multilateral_summary(multi)
    else:
        bilateral = sign_mou(signed, args.agency, keys.signing_key)
        text, summary = dump_mou(bilateral, fmt), mou_summary(bilateral)
    _write_atomic(out, text, overwrite=True)
    summary = {**summary, "signed_by": args.agency, "out": str(out)}
    if args.json:
        emit_json(summary)
    else:
        multilateral = isinstance(signed, SignedMultilateralMou)
        (print_multilateral_summary if multilateral else print_mou_summary)(summary)
        print(f"signed by {args.agency}, written to {out}")
    return ExitCode.OK


def _refused(
    args: argparse.Namespace, summary: dict[str, object], what: str, exc: MouRefused
) -> int:
    if args.json:
        emit_json({**summary, "accepted": False, "reasons": list(exc.reasons)})
    else:
        print(f"{what} refused for {args.agency}:")
        for reason in exc.reasons:
            print(f"  {terminal_text(reason)}")
    print("xlink: " + "\n".join(error_lines(exc)), file=sys.stderr)
    return ExitCode.POLICY


def _verify(args: argparse.Namespace) -> int:
    if args.peer is not None and args.peer == args.agency:
        raise InputError("--peer: names --agency itself, not a partner")
    signed = load_any_mou(args.mou)
    today = args.today or datetime.datetime.now(datetime.UTC).date()
    if isinstance(signed, SignedMultilateralMou):
        return _verify_multilateral(args, signed, today)
    summary = {**mou_summary(signed), "agency": args.agency, "today": today.isoformat()}
    try:
        mou = accept_mou(signed, local_agency=args.agency, today=today)
        if args.peer is not None and args.peer != mou.peer_of(args.agency).agency_id:
            raise MouRefused([f"{NOT_A_PARTY}:{args.peer}"])
    except MouRefused as exc:
        return _refused(args, summary, f"MOU {signed.mou.id} v{signed.mou.version}", exc)
    if args.json:
        emit_json({**summary, "accepted": True, "reasons": []})
    else:
        print_mou_summary(summary)
        print(f"accepted for {args.agency} on {today.isoformat()}")
    return ExitCode.OK


def _verify_multilateral(
    args: argparse.Namespace, signed: SignedMultilateralMou, today: datetime.date
) -> int:
    """Every party's signature and the window; ``--agency`` a party, or the hub's id (the hub
    accepting it); with ``--peer``, the pair view's id and digest."""
    hub = signed.mou.hub.hub_id
    local = None if args.agency == hub else args.agency
    if local is None and args.peer is not None:
        raise InputError(f"--peer: give --agency as one of the pair ({hub} is the hub)")
    summary = {**multilateral_summary(signed), "agency": args.agency, "today": today.isoformat()}
    try:
        mou = accept_multilateral(signed, local_agency=local, today=today)
        if args.peer is not None:
            view = pair_mou(mou, args.agency, args.peer)
            summary["pair"] = {"id": view.id, "peer": args.peer, "digest": mou_digest(view).hex()}
    except MouRefused as exc:
        what = f"multilateral MOU {signed.mou.id} v{signed.mou.version}"
        return _refused(args, summary, what, exc)
    if args.json:
        emit_json({**summary, "accepted": True, "reasons": []})
        return ExitCode.OK
    print_multilateral_summary(summary)
    pair = summary.get("pair")
    if isinstance(pair, dict):
        print(f"  pair view {pair['id']} ({args.agency} + {pair['peer']}): digest {pair['digest']}")
    who = f"the hub {hub}" if local is None else args.agency
    print(f"accepted for {who} on {today.isoformat()}")
    return ExitCode.OK


def run(args: argparse.Namespace) -> int:
    if args.mou_command == "fill":
        return _fill(args)
    if args.mou_command == "sign":
        return _sign(args)
    return _verify(args)
