"""The event engine: ordering by (time, priority, seq), determinism, limits."""

import math

import pytest

from hermes_core import Simulator
from hermes_core.engine import PRIORITY_ARRIVAL, PRIORITY_COMPLETION


def test_events_run_in_time_then_priority_then_fifo_order():
    sim = Simulator()
    out = []
    sim.schedule_at(2.0, out.append, "late")
    sim.schedule_at(1.0, out.append, "arrival", priority=PRIORITY_ARRIVAL)
    sim.schedule_at(1.0, out.append, "completion", priority=PRIORITY_COMPLETION)
    sim.schedule_at(1.0, out.append, "arrival2", priority=PRIORITY_ARRIVAL)
    sim.run()
    assert out == ["completion", "arrival", "arrival2", "late"]
    assert sim.now == 2.0
    assert sim.events_processed == 4


def test_callbacks_can_schedule_more_events_and_run_stops_at_until():
    sim = Simulator()
    ticks = []

    def tick():
        ticks.append(sim.now)
        sim.schedule(0.5, tick)

    sim.schedule(0.0, tick)
    end = sim.run(until=2.2)
    assert ticks == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert end == 2.2
    assert sim.pending == 1


def test_past_and_infinite_times_are_refused():
    sim = Simulator()
    sim.schedule(1.0, lambda: None)
    sim.run()
    with pytest.raises(ValueError, match="cannot schedule"):
        sim.schedule_at(0.5, lambda: None)
    with pytest.raises(ValueError):
        sim.schedule_at(math.inf, lambda: None)


def test_progress_callback_is_called_every_n_events():
    sim = Simulator()
    for i in range(10):
        sim.schedule(float(i), lambda: None)
    seen = []
    sim.run(progress=seen.append, progress_every=4)
    assert seen == [3.0, 7.0]
