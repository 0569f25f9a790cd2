"""A FIFO queue in front of ``n`` identical servers, on the hermes event engine: the shared
queueing core of the ``rag_retrieval`` and ``kv_retrieval`` stages.

A job arrives with its service time. If a server is free it starts at once, otherwise it
waits in arrival order; when a server finishes it takes the head of the queue. Service
ends are scheduled at :data:`hermes_core.PRIORITY_COMPLETION`, so a server freed at time
``t`` is free for a job arriving at the same ``t``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from hermes_core import PRIORITY_COMPLETION, Request, Simulator


class FifoServers:
    """``servers`` parallel servers with one FIFO queue. ``on_finish(request)`` is called
    when a job's service ends."""

    def __init__(self, sim: Simulator, servers: int, on_finish: Callable[[Request], None]):
        if servers < 1:
            raise ValueError(f"servers must be >= 1 (got {servers})")
        self.sim = sim
        self.servers = servers
        self.on_finish = on_finish
        self.busy = 0
        self.queue: deque[tuple[Request, float, float]] = deque()
        self.in_service: dict[int, tuple[Request, float]] = {}  # id -> (request, start time)
        # statistics
        self.jobs = 0
        self.busy_time = 0.0
        self.total_wait = 0.0
        self.max_wait = 0.0
        self.max_queue = 0

    def submit(self, req: Request, service_time: float) -> None:
        """Start ``req`` now if a server is free, else queue it."""
        if self.busy < self.servers:
            self._start(req, service_time, self.sim.now)
        else:
            self.queue.append((req, service_time, self.sim.now))
            self.max_queue = max(self.max_queue, len(self.queue))

    def _start(self, req: Request, service_time: float, queued_at: float) -> None:
        wait = self.sim.now - queued_at
        self.total_wait += wait
        self.max_wait = max(self.max_wait, wait)
        self.busy += 1
        self.jobs += 1
        self.in_service[req.id] = (req, self.sim.now)
        self.sim.schedule(service_time, self._finish, req, priority=PRIORITY_COMPLETION)

    def _finish(self, req: Request) -> None:
        self.busy -= 1
        _, started = self.in_service.pop(req.id)
        self.busy_time += self.sim.now - started
        if self.queue:
            nxt, service_time, queued_at = self.queue.popleft()
            self._start(nxt, service_time, queued_at)
        self.on_finish(req)

    @property
    def outstanding(self) -> int:
        """Jobs in service or queued."""
        return self.busy + len(self.queue)

    def unfinished(self) -> list[Request]:
        """Requests in service, then queued ones (in arrival order)."""
        return [r for r, _ in self.in_service.values()] + [r for r, _, _ in self.queue]

    def stats(self, now: float) -> dict[str, Any]:
        """Jobs started, utilisation (busy server-seconds up to ``now`` / (servers * now)),
        mean and max queueing wait of the started jobs (s), longest queue."""
        busy = self.busy_time + sum(now - started for _, started in self.in_service.values())
        return {
            "jobs": self.jobs,
            "servers": self.servers,
            "utilisation": busy / (self.servers * now) if now > 0 else 0.0,
            "mean_wait_s": self.total_wait / self.jobs if self.jobs else 0.0,
            "max_wait_s": self.max_wait,
            "max_queue": self.max_queue,
        }
