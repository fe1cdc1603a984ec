"""The cyclic garbage collector paused around allocation-heavy loops that make no cycles.

Deriving tokens allocates many short-lived tuples per record, and its memos keep some of them:
the collector then runs every few hundred surviving objects and, now and then, walks the whole
heap (a million loaded records). Nothing such a loop allocates refers back to itself, so
reference counting frees all of it and the collector finds nothing (0 objects collected over a
whole run); pausing it saves its walks, about a tenth of the loop's CPU. Loading a file is
the same: it makes records and no cycles, and the collector walked every record loaded so far
(the loaders, ``xlink.records.load_csv`` and its siblings, run with it paused).

Turning the collector back on must not undo that. It counts allocations, not objects: the first
allocation after the pause finds the count far over its threshold and walks the youngest
generation, which then holds everything the pause allocated and kept (every record loaded), and
moves it on to be walked again by the older generations' passes. So when the pause ends,
everything young, what the pause kept included, is handed to the oldest generation at once
(``gc.freeze()`` then ``gc.unfreeze()``: a few list splices, no walk), where only a full
collection looks at it, as it would at anything long-lived; cyclic garbage among it waits for
that collection. That is skipped when the caller has frozen objects of its own (``gc.freeze``
before a fork, say), which an unfreeze would thaw, and on an interpreter without the GIL, which
has no generations and walks the whole heap to freeze.

The collector is the process's, not a thread's: paused, it leaves the cyclic garbage of every
thread in place until the loop ends. So it is paused only on the main thread (``xlink
prepare``); a loop running in another thread (the hub agent prepares its list in one while
its event loop serves other partners) leaves it running.
"""

from __future__ import annotations

import contextlib
import gc
import sysconfig
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]

#: Whether the interpreter has generations to hand objects between (not a free-threaded build).
_GENERATIONS = not sysconfig.get_config_var("Py_GIL_DISABLED")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector for the ``with`` block when it runs on the main
    thread (on another, change nothing); re-enable it afterwards if it was enabled before
    (nested uses leave it as the outermost found it), with everything young, what the block
    allocated included, in the oldest generation."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    was_enabled = gc.isenabled()
    try:
        gc.disable()
        yield
    finally:
        if was_enabled:
            if _GENERATIONS and gc.get_freeze_count() == 0:
                try:
                    gc.freeze()  # every tracked object, young ones included, out of the generations
                finally:
                    gc.unfreeze()  # ...and back, into the oldest (even if interrupted)
            gc.enable()
