"""Chrome trace-event JSON of a run (``hermes run --trace FILE``), for ui.perfetto.dev.

Format: the Trace Event Format (Google, "Trace Event Format", the JSON object form with a
``traceEvents`` list; times in microseconds). What a traced run draws:

* one process per client (``pid``), one thread per replica (``tid``, named with the
  replica's devices: ``prefill/0 on p/gpu0 .. p/gpu7 (8 devices)``): a complete event
  (``ph: "X"``) per engine step or stage service that the stage recorded in
  :attr:`~hermes_core.StageContext.trace`;
* per call of a multi-stage request, an async slice (``ph: "b"`` / ``"e"``, category
  ``request``) from the moment the call reached the client to its end, under the client's
  process, named ``"<request type> #<id> <step>"``;
* a flow (``ph: "s"`` at the end of one call, ``ph: "f"`` at the start of the next, same
  ``id``) that follows each request from client to client;
* one process ``network`` with one async slice per delivered flow (``src->dst``, bytes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Result


def _us(t: float) -> float:
    return round(t * 1e6, 3)


def chrome_trace(result: Result) -> dict[str, Any]:
    """The trace-event JSON object of a traced ``result`` (see the module docstring)."""
    events: list[dict[str, Any]] = []
    pids: dict[str, int] = {}
    tids: dict[str, tuple[int, int]] = {}
    devices: dict[str, list[str]] = {}
    for d in result.summary.get("utilisation", []):
        devices.setdefault(d.get("replica", ""), []).append(d["device"])

    def track(replica: str) -> tuple[int, int]:
        hit = tids.get(replica)
        if hit is not None:
            return hit
        client = replica.split("/", 1)[0]
        if client not in pids:
            pids[client] = len(pids) + 1
            events.append({"ph": "M", "name": "process_name", "pid": pids[client], "tid": 0,
                           "args": {"name": client}})
        pid = pids[client]
        tid = sum(1 for p, _ in tids.values() if p == pid) + 1
        tids[replica] = (pid, tid)
        devs = devices.get(replica, [])
        label = replica if not devs else f"{replica} on {devs[0]}" if len(devs) == 1 else \
            f"{replica} on {devs[0]} .. {devs[-1]} ({len(devs)} devices)"
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": label}})
        return pid, tid

    for stage, slices in sorted((result.stage_trace or {}).items()):
        pid, tid = track(stage)
        for start, dur, name, args in slices:
            events.append({"ph": "X", "name": name, "cat": "engine", "pid": pid, "tid": tid,
                           "ts": _us(start), "dur": _us(dur), "args": args})
    previous: dict[tuple[str, int], Any] = {}
    flow_id = 0
    for k, rec in enumerate(result.steps):
        if rec.queued_s < 0:
            continue
        pid, tid = track(rec.replica)
        end = rec.ended_s if rec.ended_s >= 0 else result.summary.get("simulated_time_s", rec.queued_s)
        name = f"{rec.request_type} #{rec.request_id} {rec.step}"
        args = {"status": rec.status, "queue_ms": (rec.started_s - rec.queued_s) * 1e3 if rec.started_s >= 0 else None,
                "transfer_ms": rec.transfer_s * 1e3, "bytes_in": rec.bytes_in}
        events.append({"ph": "b", "cat": "request", "name": name, "id": k + 1, "pid": pid, "tid": tid,
                       "ts": _us(rec.queued_s), "args": args})
        events.append({"ph": "e", "cat": "request", "name": name, "id": k + 1, "pid": pid, "tid": tid,
                       "ts": _us(end)})
        key = (rec.request_type, rec.request_id)
        prev = previous.get(key)
        if prev is not None and prev.ended_s >= 0:
            flow_id += 1
            ppid, ptid = track(prev.replica)
            events.append({"ph": "s", "cat": "journey", "name": "request", "id": flow_id, "pid": ppid,
                           "tid": ptid, "ts": _us(prev.ended_s)})
            events.append({"ph": "f", "bp": "e", "cat": "journey", "name": "request", "id": flow_id,
                           "pid": pid, "tid": tid, "ts": _us(rec.queued_s)})
        previous[key] = rec
    if result.flow_trace:
        npid = len(pids) + 1
        events.append({"ph": "M", "name": "process_name", "pid": npid, "tid": 0, "args": {"name": "network"}})
        events.append({"ph": "M", "name": "thread_name", "pid": npid, "tid": 1, "args": {"name": "flows"}})
        for k, (start, end, src, dst, nbytes) in enumerate(result.flow_trace):
            name = f"{src}->{dst}"
            events.append({"ph": "b", "cat": "flow", "name": name, "id": f"f{k}", "pid": npid, "tid": 1,
                           "ts": _us(start), "args": {"bytes": nbytes}})
            events.append({"ph": "e", "cat": "flow", "name": name, "id": f"f{k}", "pid": npid, "tid": 1,
                           "ts": _us(end)})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"scenario": result.summary.get("scenario"), "seed": result.summary.get("seed")}}
