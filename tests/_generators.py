"""The vector generators of protocols/, loaded as modules (as protocols/vector_files.py loads
a sibling), for the tests that recompute the vectors with the code."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"


def generator(name: str) -> ModuleType:
    """``protocols/<name>.py`` as a module, loaded once."""
    if str(PROTOCOLS) not in sys.path:
        sys.path.insert(0, str(PROTOCOLS))
    import vector_files

    return vector_files.load(name)
