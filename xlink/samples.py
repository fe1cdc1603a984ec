"""The sample data bundled with xlink (``xlink/data``): two agencies' lists, their mappings,
the manifest of what the lists hold, and the MOU templates. The demo, the examples and the
quickstart use them; so may an integrator trying the API before wiring in their own records.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Final

from xlink.errors import InputError

__all__ = ["sample_names", "sample_path"]


def sample_names() -> tuple[str, ...]:
    """The bundled files, sorted: ``ca_watchlist.csv``, ``mou/ca-us-demo.toml``, ... (not the
    rejects or field-errors files a load without a rejects directory writes beside them)."""
    root = Path(str(resources.files("xlink").joinpath("data")))
    return tuple(
        sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not _GENERATED.search(p.name)
        )
    )


#: What a load writes beside its input (``x.rejects.csv``, ``x.field-errors.csv``).
_GENERATED: Final = re.compile(r"\.(rejects|field-errors)\.[^.]+$")


def sample_path(name: str) -> Path:
    """The path of the bundled file ``name`` (relative to ``xlink/data``, as
    :func:`sample_names` lists it); :class:`~xlink.errors.InputError` naming the files there
    if there is none."""
    if name not in sample_names():  # nothing outside xlink/data, nothing generated there
        raise InputError(f"no bundled sample {name!r}; there are: {', '.join(sample_names())}")
    return Path(str(resources.files("xlink").joinpath("data", name)))
