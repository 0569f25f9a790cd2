"""The discrete-event engine.

A binary heap of events keyed ``(time, priority, seq)``: ``seq`` comes from a per-simulator
:func:`itertools.count`, so events at equal time and priority run in the order they were
scheduled and a run is deterministic (the SimPy scheme). Components step themselves: a
serving engine schedules the end of its current batch, then decides the next one when that
event fires.

Callbacks are plain Python callables; no plugin hook runs per event.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

#: Event priorities at equal time: completions free resources before arrivals claim them.
PRIORITY_COMPLETION = 0
PRIORITY_ARRIVAL = 1
PRIORITY_DEFAULT = 2


class Simulator:
    """Event loop with simulated time ``now`` in seconds.

    >>> sim = Simulator(); out = []
    >>> sim.schedule(2.0, out.append, "b"); sim.schedule(1.0, out.append, "a")
    >>> sim.run(); out, sim.now
    (['a', 'b'], 2.0)
    """

    __slots__ = ("now", "_heap", "_seq", "events_processed", "_stopped")

    def __init__(self) -> None:
        self.now: float = 0.0
        self._heap: list[tuple[float, int, int, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()
        self.events_processed = 0
        self._stopped = False

    def schedule_at(self, time: float, callback: Callable[..., Any], *args: Any,
                    priority: int = PRIORITY_DEFAULT) -> None:
        """Run ``callback(*args)`` at absolute simulated ``time`` (s).

        Raises ``ValueError`` for a time in the past or not finite.
        """
        if not (time >= self.now) or math.isinf(time):
            raise ValueError(f"cannot schedule an event at t={time!r} s (now is {self.now} s)")
        heapq.heappush(self._heap, (time, priority, next(self._seq), callback, args))

    def schedule(self, delay: float, callback: Callable[..., Any], *args: Any,
                 priority: int = PRIORITY_DEFAULT) -> None:
        """Run ``callback(*args)`` ``delay`` seconds from now (``delay >= 0``)."""
        self.schedule_at(self.now + delay, callback, *args, priority=priority)

    def stop(self) -> None:
        """Stop :meth:`run` after the current event."""
        self._stopped = True

    @property
    def pending(self) -> int:
        """Number of scheduled events not yet run."""
        return len(self._heap)

    def run(self, until: float = math.inf,
            progress: Callable[[float], None] | None = None,
            progress_every: int = 8192) -> float:
        """Process events in key order until the heap is empty, ``until`` (s) is passed, or
        :meth:`stop` is called. ``progress(now)`` is called every ``progress_every`` events.
        Returns the simulated time reached."""
        heap = self._heap
        pop = heapq.heappop
        n = self.events_processed
        self._stopped = False
        while heap and not self._stopped:
            if heap[0][0] > until:
                self.now = until
                break
            time, _, _, callback, args = pop(heap)
            self.now = time
            callback(*args)
            n += 1
            if progress is not None and n % progress_every == 0:
                progress(time)
        self.events_processed = n
        return self.now
