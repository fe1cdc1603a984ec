"""Linkage quality through the real protocol path, on data sets with known links
(docs/evaluation.md)."""

from xlink.evaluation.datasets import (
    Dataset,
    Side,
    Split,
    febrl,
    febrl4,
    febrl4_records,
    febrl_records,
    synth,
)
from xlink.evaluation.fitting import LabelledPair, LinkageQuality, quality
from xlink.evaluation.run import EvaluationError, evaluate

__all__ = [
    "Dataset",
    "EvaluationError",
    "LabelledPair",
    "LinkageQuality",
    "Side",
    "Split",
    "evaluate",
    "febrl",
    "febrl4",
    "febrl4_records",
    "febrl_records",
    "quality",
    "synth",
]
