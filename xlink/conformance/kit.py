"""The conformance kit (protocols/conformance.md §2): what the runner and the implementation
under test load. Keys for two agencies, the MOU both signed, and a small list for each, written
once with :func:`write_kit` and read with :func:`load_kit`.

The runner plays ``CA-RCMP``; the implementation under test plays ``US-DHS``. The lists are
thirteen records of each bundled watchlist with ten people on both, so that a whole exchange
(PSI, decision, labels, releases both ways) runs in well under a second and every message of
both protocols occurs in it. The passphrase of the kit's keys is in the kit: these are test
keys, never to be used for anything else.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from xlink.agency import Agency
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.crypto.envelope import TEST_KDF
from xlink.crypto.rand import RandomSource
from xlink.documents import parse_document, read_document
from xlink.errors import InputError

__all__ = [
    "AGENT_AGENCY",
    "AGENT_IDS",
    "DISJOINT_IDS",
    "KIT_VERSION",
    "PADDING_BUCKET",
    "RUNNER_AGENCY",
    "RUNNER_IDS",
    "Kit",
    "load_kit",
    "subset_file",
    "write_kit",
]

KIT_VERSION: Final = 1
RUNNER_AGENCY: Final = "CA-RCMP"
AGENT_AGENCY: Final = "US-DHS"
_DATA: Final = Path(__file__).resolve().parents[1] / "data"

# Ten people on both watchlists (xlink/data/truth.csv) and three on one side only.
RUNNER_IDS: Final = tuple(f"CAWL-{i:05d}" for i in (1, 2, 3, 4, 5, 15, 29, 36, 42, 46, 55, 61, 63))
AGENT_IDS: Final = tuple(
    f"USWL-{i:05d}" for i in (1, 2, 3, 161, 71, 234, 198, 72, 21, 131, 112, 137, 177)
)
# Five people of the runner's watchlist on no list of the agent's (nothing is decided).
DISJOINT_IDS: Final = tuple(f"CAWL-{i:05d}" for i in (6, 7, 8, 9, 10))
_PASSPHRASE: Final = "xlink conformance kit: test keys, not secret"  # noqa: S105 - test keys
PADDING_BUCKET: Final = 64
"""The kit MOU's padding bucket: each list pads to 64 elements, so that a whole exchange costs
little and the suite's hundreds of sessions run in about a minute."""


def subset_file(source: Path, directory: Path, ids: Sequence[str]) -> Path:
    """The rows of the CSV ``source`` whose first column is in ``ids``, written under
    ``directory`` with the same name, and its column mapping beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0], *(r for r in rows[1:] if r[0] in ids)]
    if len(kept) != len(ids) + 1:
        raise InputError(f"{source}: {len(ids) + 1 - len(kept)} of the ids are not in the file")
    target = directory / source.name
    with target.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(kept)
    mapping = source.with_name(source.stem + ".mapping.json")
    (directory / mapping.name).write_bytes(mapping.read_bytes())
    return target


@dataclass(frozen=True)
class Kit:
    """A conformance kit on disk: the ceremony's files, the passphrase and each side's list."""

    directory: Path
    ceremony: CeremonyFiles
    passphrase: bytes
    files: dict[str, list[Path]]
    disjoint: list[Path]
    """The runner's list that shares nobody with the agent's."""

    def open_agency(
        self,
        agency: str,
        workdir: Path,
        *,
        clock: Callable[[], datetime],
        rng: RandomSource,
    ) -> Agency:
        """:class:`~xlink.agency.Agency` ``agency`` (the runner's or the agent's) in
        ``workdir``, with the kit's keys, MOU and the other side's bundle."""
        return self.ceremony.open_agency(
            agency, workdir, passphrase=self.passphrase, clock=clock, rng=rng
        )


def write_kit(directory: Path, *, now: datetime, rng: RandomSource, valid_days: int = 30) -> Kit:
    """Write a new kit into ``directory``: fresh keys for both agencies (TLS certificates valid
    ``valid_days``), the bundled sample MOU filled, valid from ``now``'s date and signed by
    both, the two lists and ``kit.json`` naming all of it."""
    directory.mkdir(parents=True, exist_ok=True)
    passphrase = _PASSPHRASE.encode()
    ceremony = demo_ceremony(
        directory / "ceremony",
        passphrase=passphrase,
        now=now,
        rng=rng,
        approval_required=False,
        valid_days=valid_days,
        padding_bucket=PADDING_BUCKET,
        # Test keys whose passphrase is in kit.json: a slow KDF would protect nothing, and the
        # runner and the agent open the keys once per case (docs/keys.md §2.2).
        kdf=TEST_KDF,
    )
    files = {
        RUNNER_AGENCY: [subset_file(_DATA / "ca_watchlist.csv", directory / "runner", RUNNER_IDS)],
        AGENT_AGENCY: [subset_file(_DATA / "us_watchlist.csv", directory / "agent", AGENT_IDS)],
    }
    disjoint = [subset_file(_DATA / "ca_watchlist.csv", directory / "disjoint", DISJOINT_IDS)]

    def rel(path: Path) -> str:
        return str(path.relative_to(directory))

    manifest = {
        "kit_version": KIT_VERSION,
        "passphrase": _PASSPHRASE,
        "mou": rel(ceremony.mou),
        "runner": {**_party(RUNNER_AGENCY, ceremony, files, rel), "disjoint": [rel(disjoint[0])]},
        "agent": _party(AGENT_AGENCY, ceremony, files, rel),
    }
    manifest_path = directory / "kit.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    manifest_path.chmod(0o600)  # it holds the (test) keys' passphrase
    return Kit(directory, ceremony, passphrase, files, disjoint)


def _party(
    agency: str,
    ceremony: CeremonyFiles,
    files: dict[str, list[Path]],
    rel: Callable[[Path], str],
) -> dict[str, object]:
    return {
        "agency": agency,
        "keys": rel(ceremony.keys[agency]),
        "bundle": rel(ceremony.bundles[agency]),
        "files": [rel(p) for p in files[agency]],
    }


def load_kit(directory: Path) -> Kit:
    """The kit ``write_kit`` wrote into ``directory``. :class:`~xlink.errors.InputError` when
    ``kit.json`` is missing, of another version or names a file that is not there."""
    manifest_path = directory / "kit.json"
    try:
        manifest = parse_document(read_document(manifest_path), "json")
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
        if manifest.get("kit_version") != KIT_VERSION:
            raise InputError(f"{manifest_path}: not a version {KIT_VERSION} conformance kit")
        parties = {p["agency"]: p for p in (manifest["runner"], manifest["agent"])}
        ceremony = CeremonyFiles(
            keys={a: directory / p["keys"] for a, p in parties.items()},
            bundles={a: directory / p["bundle"] for a, p in parties.items()},
            mou=directory / manifest["mou"],
        )
        files = {a: [directory / f for f in p["files"]] for a, p in parties.items()}
        passphrase = manifest["passphrase"].encode()
        disjoint = [directory / f for f in manifest["runner"]["disjoint"]]
    except OSError as exc:
        raise InputError(f"{manifest_path}: cannot read the kit ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError, AttributeError):  # DocumentError among them
        raise InputError(f"{manifest_path}: not a conformance kit manifest") from None
    if set(parties) != {RUNNER_AGENCY, AGENT_AGENCY}:
        raise InputError(f"{manifest_path}: the kit must name {RUNNER_AGENCY} and {AGENT_AGENCY}")
    named = [*ceremony.bundles.values(), *(f for v in files.values() for f in v), *disjoint]
    for path in [ceremony.mou, *named]:
        if not path.exists():
            raise InputError(f"{manifest_path}: names {path}, which does not exist")
    return Kit(directory, ceremony, passphrase, files, disjoint)
