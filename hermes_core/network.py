"""Data transfers over the cluster: flows that share link bandwidth max-min fairly.

A *flow* moves ``nbytes`` from one node to another over the lowest-latency path of a
:class:`~hermes_core.topology.Topology` graph. Every link carries its ``bandwidth`` (bytes/s)
in each direction independently; the flows crossing a link in the same direction share it.
Rates are the max-min fair allocation (progressive filling: raise every flow's rate
together, freeze the flows of a link when it saturates, continue with the rest; Bertsekas &
Gallager, *Data Networks*, 2nd ed., Sec. 6.5.2), recomputed whenever a flow starts or ends.
This is the fluid model of flow-level network simulators (e.g. SimGrid's max-min LMM
solver); packets, congestion control and switch buffers are not modelled.

A flow's data phase ends when its bytes have been sent at its (changing) rate; the data is
delivered the path's latency (sum of the link latencies) later. So a lone flow of ``B``
bytes over a path of bottleneck ``bw`` and latency ``L`` takes ``L + B / bw``, and two equal
flows sharing one link of ``bw`` each take ``L + 2 B / bw``.

A :meth:`Network.transfer` is a group of flows that completes when its last flow is
delivered: a tensor-parallel replica sends its KV shards from each device to the matching
device of the receiver, in parallel over their own NICs.

Nothing here runs per engine step: one recomputation per transfer start and per flow end
(flows of one transfer that end together end in one), each ``O(rounds x links + flows x
path length)``, with ``rounds`` the number of distinct bottleneck levels (progressive
filling freezes every flow of the tightest links in each round).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx

from .engine import PRIORITY_COMPLETION, Simulator
from .topology import Topology

#: A flow is finished when fewer bytes than this share of its size remain (float slack).
_REL_EPS = 1e-9

#: Routing weight added per hop (s) so that, of paths with equal latency, the one with fewer
#: hops is taken (e.g. zero-latency NVLink hops would otherwise tie a GPU's own NIC with a
#: detour through the NVSwitch and another GPU's NIC). 1 ps: far below any link latency; the
#: latency reported for a path is the exact sum of its links'.
HOP_TIEBREAK_S = 1e-12


def route(graph: nx.Graph, a: str, b: str) -> list[str]:
    """Nodes of the lowest-latency path from a to b, ties going to the path with fewer hops
    (:data:`HOP_TIEBREAK_S`); remaining ties by graph insertion order (deterministic).
    Raises ``ValueError`` naming both nodes when there is none."""
    try:
        return nx.shortest_path(graph, a, b, weight=lambda u, v, e: e["latency"] + HOP_TIEBREAK_S)
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        raise ValueError(f"no path between '{a}' and '{b}' in the cluster") from None


class _Flow:
    __slots__ = ("links", "nbytes", "remaining", "rate", "latency", "on_sent", "start")

    def __init__(self, links: tuple, nbytes: float, latency: float, on_sent: Callable[[], None], start: float):
        self.links = links
        self.nbytes = nbytes
        self.remaining = nbytes
        self.rate = 0.0
        self.latency = latency
        self.on_sent = on_sent
        self.start = start


class Network:
    """Flows over the links of ``topology``, max-min fair, on the event engine ``sim``.

    Counters: ``bytes_per_link[(u, v)]`` (bytes sent over the link in the direction u to v,
    updated as the flows progress), ``flows_started``, ``flows_done``, ``bytes_started``.
    Raises ``ValueError`` from :meth:`path` when two nodes are not connected.
    """

    def __init__(self, sim: Simulator, topology: Topology):
        self.sim = sim
        self.topology = topology
        self._flows: list[_Flow] = []
        self._paths: dict[tuple[str, str], tuple[tuple[tuple[str, str], ...], float]] = {}
        self._bw: dict[tuple[str, str], float] = {}  # per-direction bandwidth of the links on a path
        self._last = 0.0
        self._version = 0
        self.bytes_per_link: dict[tuple[str, str], float] = {}
        self.flows_started = 0
        self.flows_done = 0
        self.bytes_started = 0.0
        #: (start_s, end_s, src, dst, nbytes) of every delivered flow, when tracing
        self.log: list[tuple[float, float, str, str, float]] | None = None

    # -- paths ----------------------------------------------------------------------------
    def path(self, a: str, b: str) -> tuple[tuple[tuple[str, str], ...], float]:
        """``(directed links, total latency s)`` of the lowest-latency path from a to b
        (:func:`route`; cached). Raises ``ValueError`` naming both nodes when there is none."""
        key = (a, b)
        hit = self._paths.get(key)
        if hit is not None:
            return hit
        g = self.topology.graph
        nodes = route(g, a, b)
        links = tuple(zip(nodes, nodes[1:]))
        lat = sum(g.edges[u, v]["latency"] for u, v in links)
        for link in links:
            self._bw[link] = g.edges[link]["bandwidth"]
        self._paths[key] = (links, lat)
        return links, lat

    def bandwidth(self, link: tuple[str, str]) -> float:
        """Per-direction bandwidth (bytes/s) of ``link``."""
        return self.topology.graph.edges[link]["bandwidth"]

    # -- flows ----------------------------------------------------------------------------
    def transfer(self, pairs: Sequence[tuple[str, str]], nbytes: float, on_done: Callable[[], None]) -> None:
        """Move ``nbytes`` split evenly over the ``(src, dst)`` node pairs, one flow each,
        and call ``on_done()`` when the last is delivered. Pairs with ``src == dst`` and a
        zero size cost nothing; ``on_done`` then runs at once."""
        pairs = [(a, b) for a, b in pairs if a != b]
        if not pairs or nbytes <= 0:
            on_done()
            return
        left = [len(pairs)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                on_done()

        share = nbytes / len(pairs)
        paths = [self.path(a, b) for a, b in pairs]  # raises before any flow starts
        self._advance(self.sim.now)
        for (a, b), path in zip(pairs, paths):
            self._add_flow(a, b, path, share, one_done)
        self._reallocate()

    def start_flow(self, a: str, b: str, nbytes: float, on_done: Callable[[], None]) -> None:
        """Start one flow of ``nbytes`` from node ``a`` to node ``b`` now; ``on_done()``
        runs when its last byte is delivered."""
        path = self.path(a, b)
        self._advance(self.sim.now)
        self._add_flow(a, b, path, nbytes, on_done)
        self._reallocate()

    def _add_flow(self, a: str, b: str, path: tuple, nbytes: float, on_done: Callable[[], None]) -> None:
        links, lat = path
        now = self.sim.now
        log = self.log

        def sent() -> None:
            if log is not None:
                log.append((start, self.sim.now + lat, a, b, nbytes))
            if lat > 0:
                self.sim.schedule(lat, on_done, priority=PRIORITY_COMPLETION)
            else:
                on_done()

        start = now
        self._flows.append(_Flow(links, float(nbytes), lat, sent, now))
        self.flows_started += 1
        self.bytes_started += nbytes

    @property
    def active(self) -> int:
        """Flows still sending."""
        return len(self._flows)

    def rates(self) -> list[float]:
        """Current rates (bytes/s) of the active flows, in start order (for tests)."""
        return [f.rate for f in self._flows]

    def _advance(self, now: float) -> None:
        dt = now - self._last
        if dt > 0:
            per_link = self.bytes_per_link
            for f in self._flows:
                moved = f.rate * dt
                if moved > f.remaining:
                    moved = f.remaining
                f.remaining -= moved
                for link in f.links:
                    per_link[link] = per_link.get(link, 0.0) + moved
        self._last = now

    def _reallocate(self) -> None:
        """Max-min fair rates by progressive filling, then schedule the next completion."""
        flows = self._flows
        self._version += 1
        if not flows:
            return
        bw = self._bw
        if len(flows) == 1:  # a lone flow runs at its path's bottleneck
            f = flows[0]
            f.rate = min(bw[link] for link in f.links)
            self.sim.schedule(f.remaining / f.rate, self._complete, self._version, priority=PRIORITY_COMPLETION)
            return
        cap: dict[Any, float] = {}
        users: dict[Any, list[_Flow]] = {}
        for f in flows:
            f.rate = -1.0
            for link in f.links:
                if link not in cap:
                    cap[link] = bw[link]
                    users[link] = []
                users[link].append(f)
        count = {link: len(fs) for link, fs in users.items()}
        unfrozen = len(flows)
        while unfrozen:
            share = min(cap[l] / count[l] for l in count if count[l] > 0)
            tight = [l for l in count if count[l] > 0 and cap[l] / count[l] <= share * (1 + 1e-12)]
            for l in tight:
                for f in users[l]:
                    if f.rate >= 0:
                        continue
                    f.rate = share
                    unfrozen -= 1
                    for link in f.links:
                        cap[link] -= share
                        count[link] -= 1
        nxt = min(f.remaining / f.rate for f in flows)
        self.sim.schedule(max(nxt, 0.0), self._complete, self._version, priority=PRIORITY_COMPLETION)

    def _complete(self, version: int) -> None:
        if version != self._version:
            return  # rates changed since this completion was scheduled
        self._advance(self.sim.now)
        done = [f for f in self._flows if f.remaining <= f.nbytes * _REL_EPS]
        if not done:  # float slack: the earliest flow is within rounding of its end
            first = min(self._flows, key=lambda f: f.remaining / f.rate)
            for link in first.links:  # its last bytes still cross the links
                self.bytes_per_link[link] = self.bytes_per_link.get(link, 0.0) + first.remaining
            first.remaining = 0.0
            done = [first]
        self._flows = [f for f in self._flows if f.remaining > f.nbytes * _REL_EPS and f not in done]
        self.flows_done += len(done)
        self._reallocate()
        for f in done:
            f.on_sent()

    def link_report(self, duration_s: float) -> list[dict[str, Any]]:
        """Per directed link that carried data: ``link`` ("u->v"), ``bandwidth_GBps``
        (10^9 bytes/s), ``bytes`` and ``utilisation`` (bytes / (bandwidth x duration)),
        sorted by bytes, most first."""
        self._advance(self.sim.now)
        rows = []
        for (u, v), b in self.bytes_per_link.items():
            bw = self.bandwidth((u, v))
            rows.append({"link": f"{u}->{v}", "bandwidth_GBps": bw / 1e9, "bytes": b,
                         "utilisation": b / (bw * duration_s) if duration_s > 0 else 0.0})
        rows.sort(key=lambda r: (-r["bytes"], r["link"]))
        return rows
