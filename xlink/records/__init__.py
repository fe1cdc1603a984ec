"""Person records: the model, loaders and validation, normalisation and transliteration."""

from xlink.records.loaders import (
    BadFieldPolicy,
    ColumnMapping,
    LoadResult,
    Reject,
    load_csv,
    load_dataframe,
    load_jsonl,
)
from xlink.records.model import (
    Address,
    AdmiraltyGrading,
    BirthDate,
    Category,
    Grading,
    HandlingCode,
    IdentityDocument,
    Payload,
    PersonName,
    PersonRecord,
    Sex,
    SourceMetadata,
    UkGrading,
)

__all__ = [
    "Address",
    "AdmiraltyGrading",
    "BadFieldPolicy",
    "BirthDate",
    "Category",
    "ColumnMapping",
    "Grading",
    "HandlingCode",
    "IdentityDocument",
    "LoadResult",
    "Payload",
    "PersonName",
    "PersonRecord",
    "Reject",
    "Sex",
    "SourceMetadata",
    "UkGrading",
    "load_csv",
    "load_dataframe",
    "load_jsonl",
]
