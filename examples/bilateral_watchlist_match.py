"""Canada ↔ United States watchlist match, in one process, through the Python API.

Each agency prepares its own watchlist (load, validate, derive match tokens), the two run an
xlink-psi-v2 session, and each side decides its matches from what the protocol revealed. Run:

    python examples/bilateral_watchlist_match.py [--json]

What each side prints is what that side learns: its own matched records and, for each, an
opaque per-session reference to the partner's record — never the partner's data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile

from xlink.cli.cmd_demo import bundled_path
from xlink.decide import decide
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema
from xlink.prepare import prepare_side
from xlink.protocol import PsiResult

MOU_ID = "MOU-CA-US-WATCHLIST-2026"
# Until signed MOU documents exist, both sides agree on the MOU text's digest out of band.
MOU_DIGEST = hashlib.sha256(b"CA-RCMP / US-DHS watchlist MOU, 2026 edition").digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    schema = load_default_schema()
    with tempfile.TemporaryDirectory() as rejects:
        canada = prepare_side([bundled_path("ca_watchlist.csv")], rejects_dir=rejects)
        usa = prepare_side([bundled_path("us_watchlist.csv")], rejects_dir=rejects)

    ca_result, us_result = exchange_in_memory(
        Party("CA-RCMP", canada.tokens),
        Party("US-DHS", usa.tokens),
        schema=schema,
        mou_id=MOU_ID,
        mou_digest=MOU_DIGEST,
    )
    assert isinstance(ca_result, PsiResult) and isinstance(us_result, PsiResult)
    ca_view, us_view = decide(ca_result, schema), decide(us_result, schema)

    summary = {
        "canada": {
            "records": canada.loaded,
            "rejected": canada.rejected,
            "matches": [[m.local_record_id, m.peer_ref] for m in ca_view.matches],
        },
        "usa": {
            "records": usa.loaded,
            "rejected": usa.rejected,
            "matches": [[m.local_record_id, m.peer_ref] for m in us_view.matches],
        },
        "session_id": ca_result.session_id.hex(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"session {summary['session_id'][:16]}…")
    for side, view in (("Canada", ca_view), ("USA", us_view)):
        print(
            f"{side}: {len(view.matches)} of its records matched (of {view.candidates} candidates)"
        )
        for m in view.matches[:5]:
            keys = ", ".join(sorted(m.agreeing_keys))
            print(
                f"  {m.local_record_id} ↔ partner ref {m.peer_ref}  score {m.score:.1f}  [{keys}]"
            )


if __name__ == "__main__":
    main()
