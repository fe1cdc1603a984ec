"""What ``xlink mou fill|sign|verify`` report about an MOU: its summary as JSON, and the same
for people."""

from __future__ import annotations

from xlink.policy import (
    MULTILATERAL_MOU_FORMAT,
    Mou,
    MultilateralMou,
    SignedMou,
    SignedMultilateralMou,
    mou_digest,
    multilateral_digest,
)

__all__ = [
    "mou_summary",
    "multilateral_summary",
    "print_mou_summary",
    "print_multilateral_summary",
]


def _parties_json(mou: Mou | MultilateralMou) -> list[dict[str, str | int]]:
    return [
        {
            "agency_id": p.agency_id,
            "verify_key": bytes(p.verify_key).hex(),
            "sealing_key": bytes(p.sealing_key).hex(),
            "tls_cert_sha256": p.tls_cert_sha256.hex(),
            "max_set_size": p.max_set_size,
        }
        for p in mou.parties
    ]


def mou_summary(signed: SignedMou) -> dict[str, object]:
    mou = signed.mou
    return {
        "id": mou.id,
        "version": mou.version,
        "digest": mou_digest(mou).hex(),
        "valid_from": mou.valid_from.isoformat(),
        "valid_until": mou.valid_until.isoformat(),
        "parties": _parties_json(mou),
        "padding_bucket": mou.padding_bucket,
        "set_size_budget_per_day": mou.set_size_budget_per_day,
        "approval_required": mou.approval_required,
        "reciprocal": mou.reciprocal,
        "signatures": list(signed.signatures),
    }


def multilateral_summary(signed: SignedMultilateralMou) -> dict[str, object]:
    mou = signed.mou
    pairs = []
    for a, b in mou.pairs():
        terms = mou.terms_for(a, b)
        assert terms is not None
        pairs.append(
            {
                "pair": [a, b],
                "approval_required": terms.approval_required,
                "reciprocal": terms.reciprocal,
                "query_quota_per_day": terms.query_quota_per_day,
                "set_size_budget_per_day": terms.set_size_budget_per_day,
                "categories": [c.category.value for c in terms.categories],
            }
        )
    return {
        "format": MULTILATERAL_MOU_FORMAT,
        "id": mou.id,
        "version": mou.version,
        "digest": multilateral_digest(mou).hex(),
        "valid_from": mou.valid_from.isoformat(),
        "valid_until": mou.valid_until.isoformat(),
        "hub": {"hub_id": mou.hub.hub_id, "verify_key": bytes(mou.hub.verify_key).hex()},
        "parties": _parties_json(mou),
        "padding_bucket": mou.padding_bucket,
        "pairs": pairs,
        "signatures": list(signed.signatures),
    }


def _print_parties(parties: object) -> None:
    assert isinstance(parties, list)
    for p in parties:
        print(f"  {p['agency_id']}: verify key {p['verify_key']}")
        print(f"  {' ' * len(p['agency_id'])}  sealing key {p['sealing_key']}")
        print(f"  {' ' * len(p['agency_id'])}  TLS SHA-256 {p['tls_cert_sha256']}")
        print(f"  {' ' * len(p['agency_id'])}  max set size {p['max_set_size']} per session")


def print_mou_summary(summary: dict[str, object]) -> None:
    print(f"MOU {summary['id']} v{summary['version']}, digest {summary['digest']}")
    print(f"  valid {summary['valid_from']} .. {summary['valid_until']}")
    _print_parties(summary["parties"])
    budget = summary["set_size_budget_per_day"]
    print(
        f"  padding bucket {summary['padding_bucket']}, set-size budget per day: "
        f"{'none' if budget is None else budget}"
    )
    if summary["approval_required"]:
        print("  release: officer-approval (each hit waits for an officer's approval)")
    else:
        print("  release: straight-through (matches are released without approval)")
    if summary["reciprocal"]:
        print(
            "  reciprocal: each side sends as many releases as the fewer of the two offers, "
            "at most 8 ahead of the partner's"
        )
    signatures = summary["signatures"]
    assert isinstance(signatures, list)
    print(f"  signed by: {', '.join(signatures) or 'nobody yet'}")


def print_multilateral_summary(summary: dict[str, object]) -> None:
    print(f"multilateral MOU {summary['id']} v{summary['version']}, digest {summary['digest']}")
    print(f"  valid {summary['valid_from']} .. {summary['valid_until']}")
    hub = summary["hub"]
    assert isinstance(hub, dict)
    print(f"  hub {hub['hub_id']}: verify key {hub['verify_key']}")
    _print_parties(summary["parties"])
    print(f"  padding bucket {summary['padding_bucket']}")
    pairs = summary["pairs"]
    assert isinstance(pairs, list)
    print(f"  pairs with terms ({len(pairs)}):")
    for pair in pairs:
        budget = pair["set_size_budget_per_day"]
        release = "officer-approval" if pair["approval_required"] else "straight-through"
        if pair["reciprocal"]:
            release += ", reciprocal"
        print(
            f"    {'+'.join(pair['pair'])}: {', '.join(pair['categories'])}; release {release}; "
            f"query quota {pair['query_quota_per_day']}/day; set-size budget per day "
            f"{'none' if budget is None else budget}"
        )
    signatures = summary["signatures"]
    assert isinstance(signatures, list)
    print(f"  signed by: {', '.join(signatures) or 'nobody yet'}")
