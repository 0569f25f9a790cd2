"""Multi-stage requests: request types, the coordinator that moves requests between
clients, and the per-step records.

A **request type** is a pipeline of steps, each served by a client. The coordinator takes a
request from a workload, sends a *call* (a fresh :class:`~hermes_core.Request` carrying the
step's prompt length, output length and any KV that arrives with it) to the first step's
client, and when that client is done with it, asks the client's stage what it hands on
(:meth:`~hermes_core.Stage.handoff`: the next prompt length, the KV tokens that move along,
the bytes to move), moves those bytes over the cluster to the replica the next client's
router picks (:class:`~hermes_core.network.Network`, max-min fair) and sends the next call.
Control stages (routing, reasoning) reach further clients through the same door
(:meth:`~hermes_core.StageContext.call`).

The request's user-visible timings come from its **last step**: TTFT is that call's first
token (or, for a step that generates no token, its end), E2E its end, the output tokens
its generated tokens; preemptions are summed over every call. A call dropped anywhere drops
the request, with the step named in the reason.

Every call leaves a :class:`StepRecord`: client, replica, when its data started moving, when
it reached the client (queued), when the stage started on it, when it ended, the bytes
moved and the transfer time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Simulator
from .metrics import PERCENTILES, distribution
from .workload import Request

if TYPE_CHECKING:
    from .network import Network


@dataclass(slots=True, eq=False)
class StepRecord:
    """One call of one request to one client (times in simulated s, ``-1`` when not
    reached; token counts of the call: prompt in, prompt tokens whose KV came with it, tokens
    generated). ``step``: label ``"k:client"`` for the request type's step ``k``, or
    ``"k:caller>client"`` for a call a control stage made during step ``k``; ``depth`` 0 for
    steps, 1 and more for nested calls."""

    request_id: int
    request_type: str
    step: str
    depth: int
    client: str
    replica: str
    sent_s: float
    queued_s: float = -1.0
    started_s: float = -1.0
    ended_s: float = -1.0
    bytes_in: float = 0.0
    transfer_s: float = 0.0
    status: str = "unfinished"
    warmup: bool = False
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0

    def row(self) -> dict[str, Any]:
        """The record as a ``steps.csv`` row (times in s, durations in ms)."""
        def ms(a: float, b: float) -> float | None:
            return (b - a) * 1e3 if a >= 0 and b >= 0 else None
        return {
            "request_id": self.request_id, "request_type": self.request_type, "step": self.step,
            "depth": self.depth, "client": self.client, "replica": self.replica, "status": self.status,
            "sent_s": self.sent_s, "queued_s": _opt(self.queued_s), "started_s": _opt(self.started_s),
            "ended_s": _opt(self.ended_s), "transfer_ms": self.transfer_s * 1e3 if self.queued_s >= 0 else None,
            "queue_ms": ms(self.queued_s, self.started_s), "service_ms": ms(self.started_s, self.ended_s),
            "bytes_in": self.bytes_in, "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
            "generated_tokens": self.generated_tokens, "warmup": self.warmup,
        }


#: Columns of ``steps.csv``, in order.
STEP_COLUMNS = ("request_id", "request_type", "step", "depth", "client", "replica", "status", "sent_s",
                "queued_s", "started_s", "ended_s", "transfer_ms", "queue_ms", "service_ms", "bytes_in",
                "prompt_tokens", "cached_tokens", "generated_tokens", "warmup")


def _opt(v: float) -> float | None:
    return v if v >= 0 else None


class Journey:
    """A multi-stage request on its way: its type's steps, the step it is at, where its
    data is (``holder``: the replica that served its last call, control replicas aside;
    ``location``: that replica's device nodes, empty when it is not placed on the cluster),
    the context and KV it carries to the next step, and its records."""

    __slots__ = ("req", "steps", "step", "location", "holder", "context", "kv_tokens", "nbytes", "records", "call_ids",
                 "preemptions", "key")

    def __init__(self, req: Request, steps: list[str], key: int):
        self.req = req
        self.steps = steps
        self.step = 0
        self.location: tuple[str, ...] = ()
        self.holder = ""  # name of the replica that holds the request's data ("" before any)
        self.context = req.prompt_tokens
        self.kv_tokens = req.cached_tokens
        self.nbytes = 0.0
        self.records: list[StepRecord] = []
        self.call_ids: list[int] = []
        self.preemptions = 0
        self.key = key


class Coordinator:
    """Moves typed requests through their steps (see the module docstring).

    ``clients``: name -> client (``hermes_core.api.Client``); ``types``: name -> list of step
    client names; ``network``: the cluster's flows, or ``None`` (no cluster: moving data
    between clients costs nothing, and the summary says so); ``on_request_done(req)`` runs
    when a request completes or is dropped.
    """

    def __init__(self, sim: Simulator, clients: Mapping[str, Any], types: Mapping[str, list[str]],
                 network: Network | None, on_request_done: Callable[[Request], None]):
        self.sim = sim
        self.clients = clients
        self.types = types
        self.network = network
        self.on_request_done = on_request_done
        self.open: dict[int, Journey] = {}
        self.records: list[StepRecord] = []
        self._keys = 0
        #: calls whose data had to move from one replica to another where the move cannot be
        #: priced (no cluster, or one of the two replicas is not placed on it): moved at no
        #: cost, counted here
        self.unmodelled_moves = 0
        self.transfers = 0
        #: id(call) -> (replica name, device nodes) of the ended calls of requests on their
        #: way (the ``source=`` of a later call); forgotten when the request ends
        self._served_on: dict[int, tuple[str, tuple[str, ...]]] = {}

    # -- requests from the workloads --------------------------------------------------------
    def submit(self, req: Request) -> None:
        """Start ``req`` (typed: ``req.request_type`` names a request type) at its first step."""
        steps = self.types.get(req.request_type)
        if req.dropped_reason:  # the workload's typing refused it (no rule matched)
            self.on_request_done(req)
            return
        if steps is None:
            req.dropped_reason = (f"unknown_request_type: '{req.request_type}' (from the workload); "
                                  f"defined: {sorted(self.types)}")
            req.finish_time = -1.0
            self.on_request_done(req)
            return
        self._keys += 1
        j = Journey(req, steps, self._keys)
        req.journey = j
        self.open[j.key] = j
        self._start_step(j, 0)

    def _start_step(self, j: Journey, k: int) -> None:
        j.step = k
        req = j.req
        call = Request(req.id, self.sim.now, j.context, req.output_tokens, req.hash_ids, req.hash_block_tokens,
                       req.warmup, request_type=req.request_type, cached_tokens=j.kv_tokens, journey=j)
        client = j.steps[k]
        self._send(j, client, call, lambda c: self._step_done(j, k, c), None, None, f"{k}:{client}", 0)

    def _step_done(self, j: Journey, k: int, call: Request) -> None:
        if call.dropped_reason:
            self._drop(j, call.dropped_reason, f"{k}:{j.steps[k]}", call.replica)
            return
        if k + 1 < len(j.steps):
            self._start_step(j, k + 1)
            return
        req = j.req
        req.first_token_time = call.first_token_time if call.first_token_time >= 0 else call.finish_time
        req.finish_time = call.finish_time
        req.generated_tokens = call.generated_tokens
        req.replica = call.replica
        req.max_itl = call.max_itl
        req.preemptions = j.preemptions
        del self.open[j.key]
        self._forget(j)
        self.on_request_done(req)

    def _drop(self, j: Journey, reason: str, step: str, replica: str) -> None:
        if j.key not in self.open:
            return  # already dropped by another of its calls
        cat, _, rest = reason.partition(":")
        j.req.dropped_reason = f"{cat}: at step {step}" + (f" on {replica}" if replica else "") + f":{rest}"
        j.req.preemptions = j.preemptions
        del self.open[j.key]
        self._forget(j)
        self.on_request_done(j.req)

    # -- the door the stages use ------------------------------------------------------------
    def call_from(self, ctx: Any, client: str, call: Request, on_done: Callable[[Request], None], *,
                  nbytes: float | None = None, replica: int | None = None, source: Request | None = None) -> int:
        """:meth:`hermes_core.StageContext.call`: a call that a stage on ``ctx`` makes."""
        j: Journey = call.journey  # type: ignore[assignment]
        if j is None:
            raise ValueError(f"{ctx.where}: a call must come from ctx.new_call(parent, ...)")
        depth = 1 + max((r.depth for r in j.records if r.client == ctx.client), default=0)
        origin = None
        if source is not None:
            origin = self._served_on.get(id(source))
            if origin is None:
                raise ValueError(f"{ctx.where}: source= must be a call this request made that has ended")
        return self._send(j, client, call, on_done, nbytes, replica, f"{j.step}:{ctx.client}>{client}", depth, origin)

    def _send(self, j: Journey, client_name: str, call: Request, on_done: Callable[[Request], None],
              nbytes: float | None, replica: int | None, label: str, depth: int,
              origin: tuple[str, tuple[str, ...]] | None = None) -> int:
        client = self.clients[client_name]
        i = client.choose(call) if replica is None else client.assign(call, replica)
        rep = client.replicas[i]
        now = self.sim.now
        j.call_ids.append(id(call))
        rec = StepRecord(call.id, call.request_type, label, depth, client_name, rep.name, now, warmup=call.warmup,
                         prompt_tokens=call.prompt_tokens, cached_tokens=call.cached_tokens)
        j.records.append(rec)
        self.records.append(rec)

        def finished(c: Request) -> None:
            client.finished(c)
            t = self.sim.now
            rec.ended_s = t
            rec.started_s = c.start_time if c.start_time >= 0 else rec.queued_s
            rec.generated_tokens = c.generated_tokens
            if c.dropped_reason:
                rec.status = "dropped"
            else:
                rec.status = "completed"
                if c.finish_time < 0:
                    c.finish_time = t
                if step == j.step and j.key in self.open:
                    # a call that ends after its step did (a hedged copy that lost) changes
                    # nothing of the request's way on
                    h = rep.handoff(c)
                    if depth == 0:
                        j.context, j.kv_tokens = h.context_tokens, h.kv_tokens
                    j.nbytes = h.nbytes
                    if not rep.control:
                        j.location, j.holder = rep.location, rep.name
            j.preemptions += c.preemptions
            if not rep.control and not c.dropped_reason:
                # where this call's result is, for a later call's source= (while the request lives)
                self._served_on[id(c)] = (rep.name, rep.location)
            if c.annotations and depth == 0:
                # what the step's stage recorded becomes the request's (requests.csv columns)
                j.req.annotations = {**(j.req.annotations or {}), **c.annotations}
            on_done(c)

        step = j.step
        call.continuation = finished
        size = j.nbytes if nbytes is None else nbytes
        holder, src = origin if origin is not None else (j.holder, j.location)
        dst = rep.location
        if size > 0 and not rep.control and holder and holder != rep.name:
            if self.network is None or not src or not dst:
                self.unmodelled_moves += 1
            else:
                rec.bytes_in = size
                self.transfers += 1
                k = min(len(src), len(dst))
                try:
                    self.network.transfer(list(zip(src[:k], dst[:k])), size, lambda: self._arrive(rec, rep, call))
                except ValueError as exc:  # no path: checked at build time for steps; calls may still miss
                    call.dropped_reason = f"no_path: {exc}"
                    rec.queued_s = now
                    finished(call)
                return i
        self._arrive(rec, rep, call)
        return i

    def _forget(self, j: Journey) -> None:
        """Drop the ended request's call locations (``source=`` lookups)."""
        if self._served_on:
            for call_id in j.call_ids:
                self._served_on.pop(call_id, None)

    def _arrive(self, rec: StepRecord, rep: Any, call: Request) -> None:
        now = self.sim.now
        rec.transfer_s = now - rec.sent_s
        rec.queued_s = now
        call.arrival_time = now
        rep.submit(call)

    # -- end of run ---------------------------------------------------------------------------
    def unfinished(self) -> list[Request]:
        """Requests still on their way, each annotated with the step it stopped at."""
        out = []
        for j in self.open.values():
            last = j.records[-1] if j.records else None
            j.req.annotations = {**(j.req.annotations or {}), "stopped_at": last.step if last else "",
                                 "stopped_on": last.replica if last else ""}
            j.req.preemptions = j.preemptions
            out.append(j.req)
        return out


def _dist(values: list[float]) -> dict[str, float | None]:
    return distribution(np.asarray(values, dtype=float))


def request_type_summary(requests: list[Request], records: list[StepRecord],
                         submitted: Mapping[str, int]) -> dict[str, Any]:
    """The ``request_types`` section of ``summary.json``: per request type, request counts,
    TTFT and E2E (ms, over completed measured requests), and per step label the count of
    calls and their transfer, queueing and service times (ms: mean, p50, p90, p95, p99 over
    completed calls of measured requests) and mean bytes moved in."""
    out: dict[str, Any] = {}
    by_type: dict[str, list[Request]] = {}
    for r in requests:
        if not r.warmup:
            by_type.setdefault(r.request_type, []).append(r)
    recs: dict[str, dict[str, list[StepRecord]]] = {}
    for rec in records:
        if not rec.warmup:
            recs.setdefault(rec.request_type, {}).setdefault(rec.step, []).append(rec)
    for name in sorted(set(submitted) | set(by_type)):
        reqs = by_type.get(name, [])
        done = [r for r in reqs if r.completed]
        dropped = sum(1 for r in reqs if r.dropped_reason)
        total = submitted.get(name, len(reqs))
        steps = []
        for label, rs in sorted(recs.get(name, {}).items(), key=lambda kv: _step_key(kv[0])):
            ok = [r for r in rs if r.status == "completed"]
            steps.append({
                "step": label, "client": rs[0].client, "calls": len(rs), "completed": len(ok),
                "transfer_ms": _dist([r.transfer_s for r in ok]),
                "queue_ms": _dist([r.started_s - r.queued_s for r in ok]),
                "service_ms": _dist([r.ended_s - r.started_s for r in ok]),
                "bytes_in_mean": float(np.mean([r.bytes_in for r in ok])) if ok else 0.0,
            })
        out[name] = {
            "requests": {"total": total, "completed": len(done), "dropped": dropped,
                         "unfinished": total - len(done) - dropped},
            "ttft_ms": _dist([r.first_token_time - r.arrival_time for r in done]),
            "e2e_ms": _dist([r.finish_time - r.arrival_time for r in done]),
            "steps": steps,
        }
    return out


def _step_key(label: str) -> tuple[int, str]:
    head, _, rest = label.partition(":")
    return (int(head) if head.isdigit() else 0, rest)


__all__ = ["Coordinator", "Journey", "PERCENTILES", "STEP_COLUMNS", "StepRecord", "request_type_summary"]
