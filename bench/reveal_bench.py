"""Disclosure measurement: what the minimal reveal (xlink-psi-v2 §6.7) saves on the bundled data.

Runs the PSI session of the bundled demo twice in one process, both sides with the default
schema: once revealing only the records that can still reach the threshold (what every exchange
does), once revealing every record with a matched token (what xlink-psi-v1 did; only possible
at the protocol layer, never through ``xlink.agency``). Prints JSON: per mode, the matched
tokens, each side's records revealed to the other, the candidate pairs and the decided matches.
Not a speed benchmark: the figures are counts and do not depend on the machine.

Usage::

    python bench/reveal_bench.py
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from xlink.decide import decide, reveal_bound_for
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema
from xlink.prepare import prepare_side
from xlink.protocol.events import PsiResult

DATA = Path(__file__).resolve().parents[1] / "xlink" / "data"
FILES = {
    "CA-RCMP": ["ca_watchlist.csv", "ca_sex_offenders.csv"],
    "US-DHS": ["us_watchlist.csv", "us_travellers.csv"],
}
MOU_ID = "reveal-bench"
MOU_DIGEST = hashlib.sha256(b"xlink reveal bench").digest()


def main() -> None:
    schema = load_default_schema()
    with tempfile.TemporaryDirectory() as rejects:
        sides = {
            agency: prepare_side([DATA / f for f in files], schema=schema, rejects_dir=rejects)
            for agency, files in FILES.items()
        }
    figures: dict[str, object] = {}
    for mode, bound in (("minimal", reveal_bound_for(schema)), ("reveal_all", None)):
        ca, us = exchange_in_memory(
            Party("CA-RCMP", sides["CA-RCMP"].tokens),
            Party("US-DHS", sides["US-DHS"].tokens),
            schema=schema,
            mou_id=MOU_ID,
            mou_digest=MOU_DIGEST,
            reveal_bound=bound,
        )
        assert isinstance(ca, PsiResult) and isinstance(us, PsiResult)
        decision = decide(ca, schema)
        figures[mode] = {
            "matched_tokens": ca.matched_tokens,
            "ca_records_revealed_to_us": len(set(ca.revealed)),
            "us_records_revealed_to_ca": len(set(us.revealed)),
            "candidate_pairs": decision.candidates,
            "decided_matches": len(decision.matches),
        }
    figures["threshold"] = schema.threshold
    print(json.dumps(figures, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
