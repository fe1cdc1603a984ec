"""A garbled pairs file (``xlink eval --from-pairs``) raises only EvaluationError: "random bytes
into any decoder raise only our own exception types"."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from _mutations import DECODER_SETTINGS, mutated_bytes, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from xlink.errors import EvaluationError
from xlink.evaluation.pairs_file import PAIR_COLUMNS, read_pairs
from xlink.linkage.schema import load_default_schema

SCHEMA = load_default_schema()
_K = SCHEMA.key_names
GOOD = (
    ",".join(PAIR_COLUMNS)
    + f"\na,b,{_K[0]} {_K[1]},{_K[2]},,1.0,match,1,dev\n"
    + f"a,c,{_K[0]},,{_K[3]},0.5,no,0,dev\nz,b,,{_K[1]},,0.1,no,0,heldout\n"
).encode()


def test_the_sample_file_reads() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pairs.csv").write_bytes(GOOD)
        candidates, right, _ = read_pairs(Path(tmp) / "pairs.csv", SCHEMA)
    assert len(candidates) == 3 and right == ("b", "c")


@DECODER_SETTINGS
@given(
    mutated_bytes(GOOD)
    | mutated_text(GOOD)
    | st.binary(max_size=200).map(lambda tail: GOOD[: GOOD.index(b"\n") + 1] + tail)
)
def test_a_garbled_pairs_file_raises_only_evaluation_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.csv"
        path.write_bytes(data)
        with contextlib.suppress(EvaluationError):
            read_pairs(path, SCHEMA)
        assert [p.name for p in Path(tmp).iterdir()] == ["pairs.csv"]
