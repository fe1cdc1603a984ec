"""Shared test set-up: the tests folder on sys.path, so helpers used by several test folders
(``_two_agencies``) have one home; the ``scratch`` fixture (a directory on tmpfs); key
directories sealed with the cheap ``TEST_KDF`` (the ``test_kdf`` fixture, and the default of
``demo_ceremony`` and ``hub_ceremony`` in every test); passphrase variables kept in the
environment of the test process."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from xlink.ceremony import demo_ceremony, hub_ceremony
from xlink.cli import cmd_keygen
from xlink.crypto.envelope import TEST_KDF, KdfParams
from xlink.officers import OfficerKey

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory on tmpfs when there is one: the audit log, the store and the
    ledger fsync every commit, which a test of many exchanges need not wait for."""
    shm = "/dev/shm"
    where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=where, prefix="xlink-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def test_kdf() -> KdfParams:
    """The Argon2id parameters for key directories a test makes: ``TEST_KDF``, microseconds
    per unlock instead of the default's half second (docs/keys.md §2)."""
    return TEST_KDF


@pytest.fixture(autouse=True, scope="session")
def _cheap_demo_ceremonies() -> Iterator[None]:
    """``demo_ceremony`` seals with ``TEST_KDF`` unless a test passes ``kdf=``: hundreds of
    tests make a ceremony, and each would otherwise pay two real Argon2id derivations (and one
    more per agency opened). Key directories made any other way keep the real default."""
    assert demo_ceremony.__kwdefaults__ is not None
    assert hub_ceremony.__kwdefaults__ is not None
    assert OfficerKey.save.__kwdefaults__ is not None
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(demo_ceremony.__kwdefaults__, "kdf", TEST_KDF)
        # The same for the multilateral ceremony: three key directories and the hub's key.
        mp.setitem(hub_ceremony.__kwdefaults__, "kdf", TEST_KDF)
        # The same for officer keys (`xlink officer keygen`): a read unlocks one.
        mp.setitem(OfficerKey.save.__kwdefaults__, "params", TEST_KDF)
        yield


@pytest.fixture(autouse=True, scope="session")
def _passphrase_variables_kept() -> Iterator[None]:
    """``read_passphrase`` deletes the variable it reads from ``os.environ`` (docs/keys.md §2).
    Tests run many commands in one process, each expecting the variable the shell gives a
    process of its own, so here it is read and kept. tests/crypto/test_passphrase_sources.py
    puts the deleting reader back to test the deletion; commands run as subprocesses (the
    end-to-end tests) delete it as in production."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cmd_keygen, "_take_from_environment", os.environ.get)
        yield


@pytest.fixture(autouse=True, scope="session")
def _bundled_data_left_as_shipped() -> Iterator[None]:
    """Nothing a test does writes into ``xlink/data``: a load of a bundled list without a
    rejects directory wrote its rejects files there, next to the input, and a wheel built
    from the working tree shipped them."""
    data = Path(__file__).resolve().parents[1] / "xlink" / "data"
    before = {p for p in data.rglob("*") if p.is_file()}
    yield
    written = sorted(str(p) for p in data.rglob("*") if p.is_file() and p not in before)
    assert not written, f"tests wrote into xlink/data: {written}"
