"""Time the full Azure conversation scenario and one step-cost evaluation.

Prints simulated requests per wall-second for the 1-hour Azure LLM inference trace 2023
(conversation, 19,366 requests) on Llama-3.1-70B TP8 / 8xH100 with chunked prefill, and
the time of one step-cost evaluation for a 256-sequence batch (aggregating the batch and
pricing it). Goals (docs/performance.md): <= 15 s wall for the scenario on a 2-core
machine, <= 50 us per step-cost evaluation.

    python benchmarks/bench_azure_conv.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from hermes_core import Request, Sequence, load_scenario, run
from hermes_core.plugins import default_registry

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "examples" / "azure_conv_llama70b_tp8_h100.yaml"


def bench_scenario(repeat: int) -> dict:
    walls = []
    summary = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run(load_scenario(SCENARIO))
        walls.append(time.perf_counter() - t0)
        summary = result.summary
    best = min(walls)
    n = summary["requests"]["total"]
    return {
        "scenario": summary["scenario"],
        "requests": n,
        "completed": summary["requests"]["completed"],
        "simulated_time_s": round(summary["simulated_time_s"], 1),
        "engine_steps": summary["clients"]["llama70b"]["llama70b/0"]["steps"],
        "wall_s_best": round(best, 2),
        "wall_s_all": [round(w, 2) for w in walls],
        "requests_per_wall_s": round(n / best, 1),
        "steps_per_wall_s": round(summary["clients"]["llama70b"]["llama70b/0"]["steps"] / best, 1),
    }


def bench_step_cost(iterations: int = 20000) -> dict:
    """Build the 70B TP8 H100 engine, then time aggregating + pricing a 256-sequence batch
    (248 decodes with 200..4000 cached tokens and 8 prefill chunks of 512 tokens)."""
    sc = load_scenario(SCENARIO, ["workload.max_requests=1"])
    from hermes_core import api

    reg = default_registry()
    stage_holder = {}
    orig = api._build_client

    def capture(*a, **k):
        client = orig(*a, **k)
        stage_holder["stage"] = client.stages[0]
        return client

    api._build_client = capture
    try:
        run(sc, registry=reg)
    finally:
        api._build_client = orig
    stage = stage_holder["stage"]
    rng = np.random.default_rng(0)
    seqs, num_new = [], []
    for i in range(248):
        s = Sequence(Request(i, 0.0, int(rng.integers(200, 4000)), 100))
        s.num_computed = s.num_tokens - 1
        seqs.append(s)
        num_new.append(1)
    for i in range(8):
        s = Sequence(Request(1000 + i, 0.0, 4096, 100))
        s.num_computed = 1024
        seqs.append(s)
        num_new.append(512)
    cost = stage.cost

    from hermes_core import Batch

    def evaluate():
        batch = Batch()
        for seq, q in zip(seqs, num_new):
            batch.add(seq, q)
        return cost.step(batch.tokens, batch.sampled, batch.pf_pairs, batch.pf_kv, batch.pf_q,
                         batch.dec_n, batch.dec_kv)

    evaluate()
    t0 = time.perf_counter()
    for _ in range(iterations):
        evaluate()
    per = (time.perf_counter() - t0) / iterations
    b = Batch()
    for seq, q in zip(seqs, num_new):
        b.add(seq, q)
    args = (b.tokens, b.sampled, b.pf_pairs, b.pf_kv, b.pf_q, b.dec_n, b.dec_kv)
    t0 = time.perf_counter()
    for _ in range(iterations):
        cost.step(*args)
    price_only = (time.perf_counter() - t0) / iterations
    return {"batch_sequences": len(seqs), "step_time_ms": round(evaluate()[0] * 1e3, 3),
            "build_and_price_us": round(per * 1e6, 2), "price_only_us": round(price_only * 1e6, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="scenario runs (the best is reported)")
    args = ap.parse_args()
    out = {"machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
           "scenario": bench_scenario(args.repeat), "step_cost": bench_step_cost()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
