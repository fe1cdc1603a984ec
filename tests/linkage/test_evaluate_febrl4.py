from __future__ import annotations

from xlink.linkage.evaluate import evaluate_febrl4


def test_febrl4_quality_with_default_schema() -> None:
    result = evaluate_febrl4()
    assert result["true_links"] == 5000
    assert isinstance(result["f1"], float) and result["f1"] >= 0.98
    for part in ("dev", "heldout"):
        sub = result[part]
        assert isinstance(sub, dict) and sub["true_links"] == 2500 and sub["f1"] >= 0.98
    assert isinstance(result["tokens_per_record"], float) and result["tokens_per_record"] < 30
