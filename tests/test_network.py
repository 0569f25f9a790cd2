"""Flows over the cluster's links (hermes_core.network), checked against hand-computed rates
and delivery times: fair sharing of one link, a three-flow max-min allocation that is
recomputed as flows end, a two-hop path, independent directions, multi-pair transfers, and
routing ties going to the path with fewer hops."""

from __future__ import annotations

import pytest

from hermes_core import Network, Simulator, Topology

GB = 1e9


def _net(*links: tuple[str, str, float, float]) -> tuple[Simulator, Network]:
    """A network over ``(a, b, bandwidth bytes/s, latency s)`` links."""
    topo = Topology()
    for a, b, bw, lat in links:
        for n in (a, b):
            if n not in topo.graph:
                topo.add_node(n, "switch")
        topo.add_link(a, b, bw, lat)
    sim = Simulator()
    return sim, Network(sim, topo)


def _flow(sim: Simulator, net: Network, a: str, b: str, nbytes: float, done: dict, key: str) -> None:
    net.start_flow(a, b, nbytes, lambda: done.__setitem__(key, sim.now))


def test_two_flows_on_one_link_each_get_half_and_finish_at_latency_plus_2B_over_bw():
    # 1 GB/s, 1 ms; two flows of 1 MB: 0.5 GB/s each, data phase 2 MB / 1 GB/s = 2 ms, + 1 ms
    sim, net = _net(("a", "b", 1 * GB, 1e-3))
    done: dict[str, float] = {}
    _flow(sim, net, "a", "b", 1e6, done, "f1")
    _flow(sim, net, "a", "b", 1e6, done, "f2")
    assert net.rates() == [0.5 * GB, 0.5 * GB]
    sim.run()
    assert done["f1"] == pytest.approx(3e-3, rel=1e-12)
    assert done["f2"] == pytest.approx(3e-3, rel=1e-12)
    assert net.bytes_per_link[("a", "b")] == pytest.approx(2e6, rel=1e-12)
    assert ("b", "a") not in net.bytes_per_link


def test_three_flows_max_min_rates_recomputed_when_flows_end():
    # x --A (10 GB/s, 0.1 s)-- y --B (4 GB/s, 0.2 s)-- z
    # f1 x->y over A (8 GB), f2 x->z over A+B (6 GB), f3 y->z over B (4 GB).
    # Progressive filling: B saturates first at 4/2 = 2 GB/s (f2, f3 frozen at 2);
    # A has 10 - 2 = 8 left for f1. Rates 8 / 2 / 2.
    # t=1: f1 sent 8 GB, done (delivered 1 + 0.1). f2 and f3 sent 2 GB each; B is still
    #      shared: 2 / 2. f3 has 2 GB left -> done at t=2 (delivered 2 + 0.2).
    # t=2: f2 alone: min(10, 4) = 4 GB/s for its last 6 - 4 = 2 GB -> done at 2.5,
    #      delivered 2.5 + 0.1 + 0.2 = 2.8.
    sim, net = _net(("x", "y", 10 * GB, 0.1), ("y", "z", 4 * GB, 0.2))
    done: dict[str, float] = {}
    _flow(sim, net, "x", "y", 8 * GB, done, "f1")
    _flow(sim, net, "x", "z", 6 * GB, done, "f2")
    _flow(sim, net, "y", "z", 4 * GB, done, "f3")
    probes: dict[float, list[float]] = {}
    for t in (0.5, 1.5, 2.25):
        sim.schedule_at(t, lambda t=t: probes.__setitem__(t, net.rates()))
    sim.run()
    assert probes[0.5] == pytest.approx([8 * GB, 2 * GB, 2 * GB], rel=1e-12)
    assert probes[1.5] == pytest.approx([2 * GB, 2 * GB], rel=1e-12)  # f2, f3
    assert probes[2.25] == pytest.approx([4 * GB], rel=1e-12)  # f2 alone takes all of B
    assert done == pytest.approx({"f1": 1.1, "f3": 2.2, "f2": 2.8}, rel=1e-12)
    # bytes per directed link: A carried f1 + f2, B carried f2 + f3
    assert net.bytes_per_link[("x", "y")] == pytest.approx(14 * GB, rel=1e-12)
    assert net.bytes_per_link[("y", "z")] == pytest.approx(10 * GB, rel=1e-12)
    assert (net.flows_started, net.flows_done, net.active) == (3, 3, 0)


def test_two_hop_path_is_paced_by_its_bottleneck_and_pays_both_latencies():
    # a --(10 GB/s, 1 us)-- s --(5 GB/s, 2 us)-- b; 1 MB: 3 us + 1e6 / 5e9 = 203 us
    sim, net = _net(("a", "s", 10 * GB, 1e-6), ("s", "b", 5 * GB, 2e-6))
    links, lat = net.path("a", "b")
    assert links == (("a", "s"), ("s", "b"))
    assert lat == pytest.approx(3e-6, rel=1e-12)
    done: dict[str, float] = {}
    _flow(sim, net, "a", "b", 1e6, done, "f")
    assert net.rates() == [5 * GB]
    sim.run()
    assert done["f"] == pytest.approx(203e-6, rel=1e-12)


def test_opposite_directions_do_not_share_a_link():
    # each direction has the whole 2 GB/s: 1 GB each way takes 0.5 s + 10 us
    sim, net = _net(("a", "b", 2 * GB, 10e-6))
    done: dict[str, float] = {}
    _flow(sim, net, "a", "b", 1 * GB, done, "ab")
    _flow(sim, net, "b", "a", 1 * GB, done, "ba")
    assert net.rates() == [2 * GB, 2 * GB]
    sim.run()
    assert done == pytest.approx({"ab": 0.5 + 10e-6, "ba": 0.5 + 10e-6}, rel=1e-12)


def test_transfer_over_k_pairs_finishes_when_its_last_flow_is_delivered():
    # 3 MB split over 3 pairs, 1 MB each, over their own links: 1 GB/s (1 ms + 1 us),
    # 0.5 GB/s (2 ms + 1 us), and a pair with src == dst (free). Done at 2 ms + 1 us, once.
    sim, net = _net(("a1", "b1", 1 * GB, 1e-6), ("a2", "b2", 0.5 * GB, 1e-6))
    calls: list[float] = []
    net.transfer([("a1", "b1"), ("a2", "b2"), ("c", "c")], 2e6, lambda: calls.append(sim.now))
    assert net.active == 2  # the src == dst pair is dropped; 2 MB over 2 flows
    sim.run()
    assert calls == [pytest.approx(1e6 / (0.5 * GB) + 1e-6, rel=1e-12)]
    assert net.bytes_per_link == pytest.approx({("a1", "b1"): 1e6, ("a2", "b2"): 1e6}, rel=1e-12)


def test_empty_transfer_completes_at_once():
    sim, net = _net(("a", "b", 1 * GB, 1e-3))
    calls: list[float] = []
    net.transfer([("a", "a")], 1e6, lambda: calls.append(sim.now))
    net.transfer([("a", "b")], 0, lambda: calls.append(sim.now))
    assert calls == [0.0, 0.0] and net.active == 0


def test_equal_latency_routes_take_fewer_hops():
    # Zero-latency links only, so n0-n1-n4-n5 (3 hops, 10 GB/s links) and n0-n3-n2-n4-n5
    # (4 hops, through a 1 GB/s link) tie on latency. networkx's Dijkstra takes the 4-hop
    # one on this graph (nodes and links added in this order); hermes takes the one with
    # fewer hops: 1 GB at 10 GB/s = 0.1 s (the 4-hop path would give 1 s).
    topo = Topology()
    for i in range(6):
        topo.add_node(f"n{i}", "switch")
    for a, b, bw in [(2, 3, 10), (0, 3, 10), (4, 5, 10), (2, 4, 1), (0, 1, 10), (1, 4, 10)]:
        topo.add_link(f"n{a}", f"n{b}", bw * GB, 0.0)
    sim = Simulator()
    net = Network(sim, topo)
    links, lat = net.path("n0", "n5")
    assert links == (("n0", "n1"), ("n1", "n4"), ("n4", "n5")) and lat == 0.0
    done: dict[str, float] = {}
    _flow(sim, net, "n0", "n5", 1 * GB, done, "f")
    sim.run()
    assert done["f"] == pytest.approx(0.1, rel=1e-12)


def test_no_path_is_a_value_error_naming_both_nodes():
    sim, net = _net(("a", "b", 1 * GB, 0.0), ("c", "d", 1 * GB, 0.0))
    with pytest.raises(ValueError, match="no path between 'a' and 'd'"):
        net.path("a", "d")
