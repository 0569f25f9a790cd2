"""Request and token metrics, defined as vLLM's ``benchmark_serving`` defines them.

* **TTFT**: first token time minus arrival (send) time, per request.
* **TPOT**: ``(e2e - ttft) / (output_tokens - 1)`` per request with more than one output
  token.
* **ITL**: every gap between consecutive tokens of a request, pooled over all requests.
* **E2E latency**: finish time minus arrival time, per request.
* **Throughput**: completed requests, input tokens, output tokens and both together (vLLM's
  ``total_token_throughput``) divided by the benchmark duration (first arrival to last
  finish); ``total_input_tokens`` and ``total_output_tokens`` are the sums over completed
  requests, as vLLM reports them.
* **Goodput**: completed requests per second that meet every SLO given.

Percentiles are numpy's linear interpolation, as in ``benchmark_serving``. TTFT, TPOT and
E2E use exact per-request values (memory grows with requests, not events). ITL is pooled in
a DDSketch (relative accuracy 0.1 %, exact mean), so memory stays bounded however many
tokens are generated. Dropped requests are counted with their reasons and excluded from
latency statistics, as failed requests are in ``benchmark_serving``.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ddsketch import DDSketch

from .workload import Request

PERCENTILES = (50, 90, 95, 99)

#: Columns of ``requests.csv``, in order.
REQUEST_COLUMNS = (
    "id", "replica", "status", "dropped_reason", "arrival_s", "prompt_tokens", "output_tokens",
    "generated_tokens", "first_token_s", "finish_s", "ttft_ms", "tpot_ms", "e2e_ms",
    "max_itl_ms", "preemptions", "warmup",
)


def distribution(values_s: np.ndarray) -> dict[str, float | None]:
    """``{mean, std, p50, p90, p95, p99}`` in milliseconds of ``values_s`` (seconds); ``std``
    is the population standard deviation (``np.std``, as vLLM's ``bench serve`` reports it);
    ``None`` entries for an empty array."""
    if len(values_s) == 0:
        return {"mean": None, "std": None, **{f"p{p}": None for p in PERCENTILES}}
    ms = np.asarray(values_s, dtype=float) * 1e3
    out = {"mean": float(ms.mean()), "std": float(ms.std())}
    for p, v in zip(PERCENTILES, np.percentile(ms, PERCENTILES)):
        out[f"p{p}"] = float(v)
    return out


class MetricsCollector:
    """Collects finished requests and pooled inter-token latencies during a run."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._itl = DDSketch(relative_accuracy=0.001)
        self._itl_sum = 0.0
        self._itl_sumsq = 0.0
        self._itl_count = 0

    def add_itl(self, gap_s: float, count: int = 1) -> None:
        """Record ``count`` inter-token gaps of ``gap_s`` seconds each (of measured
        requests: stages leave warm-up requests' gaps out)."""
        if count > 0:
            self._itl.add(gap_s, count)
            self._itl_sum += gap_s * count
            self._itl_sumsq += gap_s * gap_s * count
            self._itl_count += count

    def request_done(self, req: Request) -> None:
        """Record a request that completed or was dropped."""
        self.requests.append(req)

    def itl_distribution(self) -> dict[str, float | None]:
        """Pooled ITL ``{mean, std, p50, ...}`` in milliseconds (mean and std exact, from the
        running sums; percentiles from the sketch)."""
        if self._itl_count == 0:
            return {"mean": None, "std": None, **{f"p{p}": None for p in PERCENTILES}}
        mean = self._itl_sum / self._itl_count
        var = max(self._itl_sumsq / self._itl_count - mean * mean, 0.0)
        out = {"mean": mean * 1e3, "std": var ** 0.5 * 1e3}
        for p in PERCENTILES:
            out[f"p{p}"] = float(self._itl.get_quantile_value(p / 100.0)) * 1e3
        return out

    def summary(self, submitted: int, slo: dict[str, float] | None = None,
                warmup_submitted: int = 0) -> dict[str, Any]:
        """Request counts, latency distributions (ms), throughput and goodput.

        ``submitted`` counts every request the workload sent, ``warmup_submitted`` those of
        them marked :attr:`Request.warmup`. Warm-up requests are left out of every figure
        (counts, latencies, duration, throughput, goodput) and counted on their own under
        ``requests.warmup``; the benchmark duration runs from the first measured arrival to
        the last measured completion. ITL comes from :meth:`add_itl`, which the stages call
        for measured requests only."""
        measured = [r for r in self.requests if not r.warmup]
        warm = [r for r in self.requests if r.warmup]
        submitted -= warmup_submitted
        done = [r for r in measured if r.completed]
        dropped = [r for r in measured if r.dropped_reason]
        reasons = Counter(_reason_key(r.dropped_reason) for r in dropped)
        arrival = np.array([r.arrival_time for r in done])
        first = np.array([r.first_token_time for r in done])
        finish = np.array([r.finish_time for r in done])
        n_out = np.array([r.generated_tokens for r in done])
        n_in = np.array([r.prompt_tokens for r in done])
        ttft = first - arrival
        e2e = finish - arrival
        multi = n_out > 1
        tpot = (e2e[multi] - ttft[multi]) / (n_out[multi] - 1)
        all_arrivals = [r.arrival_time for r in measured]
        duration = (float(finish.max()) - min(all_arrivals)) if len(done) else 0.0
        out: dict[str, Any] = {
            "requests": {
                "total": submitted,
                "completed": len(done),
                "dropped": len(dropped),
                "unfinished": submitted - len(done) - len(dropped),
                "dropped_reasons": dict(sorted(reasons.items())),
            },
            "benchmark_duration_s": duration,
            "ttft_ms": distribution(ttft),
            "tpot_ms": distribution(tpot),
            "itl_ms": self.itl_distribution(),
            "e2e_ms": distribution(e2e),
            "throughput": {
                "requests_per_s": len(done) / duration if duration > 0 else 0.0,
                "input_tokens_per_s": float(n_in.sum()) / duration if duration > 0 else 0.0,
                "output_tokens_per_s": float(n_out.sum()) / duration if duration > 0 else 0.0,
                "total_tokens_per_s": float(n_in.sum() + n_out.sum()) / duration if duration > 0 else 0.0,
            },
            "total_input_tokens": int(n_in.sum()),
            "total_output_tokens": int(n_out.sum()),
            "preemptions": int(sum(r.preemptions for r in measured)),
        }
        if warmup_submitted:
            wd = [r for r in warm if r.dropped_reason]
            out["requests"]["warmup"] = {
                "total": warmup_submitted,
                "completed": sum(r.completed for r in warm),
                "dropped": len(wd),
                "dropped_reasons": dict(sorted(Counter(_reason_key(r.dropped_reason) for r in wd).items())),
            }
        if slo:
            ok = np.ones(len(done), dtype=bool)
            if "ttft_ms" in slo:
                ok &= ttft * 1e3 <= slo["ttft_ms"]
            if "tpot_ms" in slo:
                t = np.zeros(len(done))
                t[multi] = tpot
                ok &= t * 1e3 <= slo["tpot_ms"]
            if "e2e_ms" in slo:
                ok &= e2e * 1e3 <= slo["e2e_ms"]
            out["goodput"] = {
                "slo": dict(slo),
                "requests_meeting_slo": int(ok.sum()),
                "requests_per_s": float(ok.sum()) / duration if duration > 0 else 0.0,
            }
        return out


def _reason_key(reason: str) -> str:
    """The reason's category: text before the first ':'."""
    return reason.split(":", 1)[0].strip()


def request_rows(requests: Iterable[Request]) -> Iterable[dict[str, Any]]:
    """One dict per request with the ``REQUEST_COLUMNS`` keys (times in s, latencies in ms)."""
    for r in sorted(requests, key=lambda r: r.id):
        ok = r.completed
        ttft = (r.first_token_time - r.arrival_time) * 1e3 if ok else None
        e2e = (r.finish_time - r.arrival_time) * 1e3 if ok else None
        tpot = (e2e - ttft) / (r.generated_tokens - 1) if ok and r.generated_tokens > 1 else None
        yield {
            "id": r.id, "replica": r.replica,
            "status": "completed" if ok else ("dropped" if r.dropped_reason else "unfinished"),
            "dropped_reason": r.dropped_reason, "arrival_s": r.arrival_time,
            "prompt_tokens": r.prompt_tokens, "output_tokens": r.output_tokens,
            "generated_tokens": r.generated_tokens,
            "first_token_s": r.first_token_time if r.first_token_time >= 0 else None,
            "finish_s": r.finish_time if r.finish_time >= 0 else None,
            "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": e2e,
            "max_itl_ms": r.max_itl * 1e3 if ok else None, "preemptions": r.preemptions,
            "warmup": r.warmup,
        }


#: Columns ``requests.csv`` adds after :data:`REQUEST_COLUMNS` in a multi-stage run: the
#: request's type, and for a request still on its way when the run stopped, the step it was
#: at (``"k:client"``) and the replica.
TYPED_COLUMNS = ("request_type", "stopped_at", "stopped_on")


def write_requests_csv(path: Path, requests: Iterable[Request], typed: bool = False) -> None:
    """Write ``requests.csv`` (columns :data:`REQUEST_COLUMNS`, plus :data:`TYPED_COLUMNS`
    when ``typed``, plus one column per key that a stage wrote into
    :attr:`Request.annotations`, in sorted order (a key named like a standard column gets the
    prefix ``annotation.``); empty cell = not applicable)."""
    reqs = sorted(requests, key=lambda r: r.id)
    base = REQUEST_COLUMNS + (TYPED_COLUMNS if typed else ())
    keys = sorted({k for r in reqs if r.annotations for k in r.annotations} - set(TYPED_COLUMNS))
    extra = {k: (f"annotation.{k}" if k in base else k) for k in keys}
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=base + tuple(extra.values()))
        w.writeheader()
        for r in reqs:
            (row,) = request_rows([r])
            ann = r.annotations or {}
            if typed:
                row.update(request_type=r.request_type, stopped_at=ann.get("stopped_at", ""),
                           stopped_on=ann.get("stopped_on", ""))
            for k, col in extra.items():
                row[col] = ann.get(k)
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
