"""What the vector generators of protocols/ share: loading a sibling generator, and writing
their files or, with ``--check``, comparing them (a stale file exits 1, naming it).

Each generator is a script (``python protocols/generate_X_vectors.py [--check]``) and a module
the tests load by path; it finds this module beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

__all__ = ["HERE", "load", "main"]

HERE = Path(__file__).resolve().parent


def load(name: str) -> ModuleType:
    """The module ``protocols/<name>.py``, loaded once (registered in ``sys.modules``, which
    dataclasses defined in it need)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(
    build: Callable[[], dict[str, str]],
    out_dir: Path,
    description: str | None,
    argv: list[str] | None = None,
) -> int:
    """Write every file ``build()`` gives (name -> text) under ``out_dir``, or with
    ``--check`` compare them and exit 1 naming the stale ones."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = out_dir / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale vectors: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
