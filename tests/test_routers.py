"""The first-party routers (``hermes_plugins.routers``)."""

from __future__ import annotations

import pytest

from hermes_core import ConfigError, Request, Simulator, load_plugins
from hermes_core.engine import PRIORITY_ARRIVAL, PRIORITY_COMPLETION
from hermes_plugins import routers
from hermes_plugins.routers import LeastOutstanding, RoundRobin


def req(i: int = 0) -> Request:
    return Request(i, 0.0, 10, 5)


def test_plugin_registers_the_routers():
    reg = load_plugins([("routers", routers)], entry_points=False)
    assert reg.names("routers") == ["least_outstanding", "round_robin"]
    r = reg.build("routers", {"type": "least_outstanding"}, "clients[0].router")
    assert isinstance(r, LeastOutstanding)


def test_router_configs_take_no_options():
    reg = load_plugins([("routers", routers)], entry_points=False)
    for name in ("round_robin", "least_outstanding"):
        with pytest.raises(ConfigError, match=r"^clients\[0\]\.router\.weights: unknown field"):
            reg.validate("routers", {"type": name, "weights": [1, 2]}, "clients[0].router")


def test_round_robin_cycles_regardless_of_load():
    r = RoundRobin(RoundRobin.Config())
    picks = [r.choose(req(i), [5, 0, 0]) for i in range(7)]
    assert picks == [0, 1, 2, 0, 1, 2, 0]
    assert r.choose(req(), [0]) == 0


@pytest.mark.parametrize(
    "outstanding, expected",
    [([3, 1, 2], 1), ([2, 1, 1], 1), ([0, 0, 0], 0), ([4, 4, 0], 2), ([7], 0)],
)
def test_least_outstanding_picks_fewest_ties_lowest(outstanding, expected):
    assert LeastOutstanding(LeastOutstanding.Config()).choose(req(), outstanding) == expected


def dispatch(router, service_s: list[float], arrivals: list[float]) -> list[int]:
    """Replicas with fixed per-request service times (one request at a time each is not
    modelled: requests finish ``service_s[i]`` after they arrive). Returns the chosen replica
    per request, counting outstanding requests the way a client does."""
    sim = Simulator()
    outstanding = [0] * len(service_s)
    picks: list[int] = []

    def done(i: int) -> None:
        outstanding[i] -= 1

    def arrive(k: int) -> None:
        i = router.choose(req(k), outstanding)
        picks.append(i)
        outstanding[i] += 1
        sim.schedule(service_s[i], done, i, priority=PRIORITY_COMPLETION)

    for k, t in enumerate(arrivals):
        sim.schedule_at(t, arrive, k, priority=PRIORITY_ARRIVAL)
    sim.run()
    return picks


def test_least_outstanding_favours_the_faster_replica():
    # Replica 0 finishes in 0.5 s, replica 1 in 3 s; a request every second.
    arrivals = [float(t) for t in range(8)]
    lo = dispatch(LeastOutstanding(LeastOutstanding.Config()), [0.5, 3.0], arrivals)
    assert lo == [0] * 8  # replica 0 is always idle again by the next arrival
    rr = dispatch(RoundRobin(RoundRobin.Config()), [0.5, 3.0], arrivals)
    assert rr == [0, 1] * 4
