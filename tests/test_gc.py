"""The collector paused around loops that make no cycles (xlink._gc), and what it finds after."""

from __future__ import annotations

import gc
import sysconfig
import threading
from collections.abc import Iterator

import pytest

from xlink._gc import collector_paused

pytestmark = pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="a free-threaded interpreter has no generations; xlink._gc leaves them alone there",
)


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


def _generation_of(obj: object) -> int | None:
    for generation in range(3):
        if any(o is obj for o in gc.get_objects(generation=generation)):
            return generation
    return None  # frozen, or not tracked


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of each collection that starts while the test runs."""
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(note)
    try:
        yield started
    finally:
        gc.callbacks.remove(note)


@pytest.mark.usefixtures("collector_on")
def test_what_the_pause_kept_is_old_when_it_ends(collections: list[int]) -> None:
    """Once back on, the collector counted every allocation of the pause and walked all it
    had kept (every record loaded) at the next allocation, then again as that moved through
    the generations. Kept objects now go straight to the oldest generation, unwalked."""
    gc.collect()  # every count at zero, whatever ran before
    collections.clear()
    with collector_paused():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert _generation_of(kept) == 2
    assert _generation_of(kept[500]) == 2
    assert collections == []  # no walk owed for the pause's allocations


@pytest.mark.usefixtures("collector_on")
def test_objects_the_caller_froze_stay_frozen() -> None:
    """A caller that froze objects (before a fork, say) keeps them frozen: the pause ends
    without the freeze and thaw, which would thaw them."""
    mine = [["frozen by the caller"]]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            kept = [[1]]
        assert gc.isenabled()
        assert gc.get_freeze_count() == frozen
        assert _generation_of(mine) is None  # still frozen
        assert _generation_of(kept) == 0  # left where it was made
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("collector_on")
def test_a_nested_pause_leaves_the_collector_to_the_outer_one() -> None:
    gc.collect()
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
        kept = [[2]]
    assert gc.isenabled()
    assert _generation_of(kept) == 2


def test_a_collector_that_was_off_stays_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            kept = [[3]]
        assert not gc.isenabled()
        assert _generation_of(kept) == 0
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.usefixtures("collector_on")
def test_another_thread_changes_nothing() -> None:
    """The collector is the process's: a loop in another thread leaves it running."""
    seen: list[bool] = []

    def loop() -> None:
        with collector_paused():
            seen.append(gc.isenabled())

    thread = threading.Thread(target=loop)
    thread.start()
    thread.join()
    assert seen == [True]
    assert gc.isenabled()
