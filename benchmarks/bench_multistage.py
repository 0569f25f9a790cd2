"""Time the disaggregated prefill/decode example on the full Azure conversation trace.

Prints simulated requests per wall-second for ``examples/disagg_llama70b_h100_ib_azure.yaml``
(Llama-3.1-70B, prefill on one 8xH100 server, decode on another, KV cache over InfiniBand
NDR; 19,366 requests, each a prefill call, a KV transfer of 8 flows and a decode call), the
flows simulated per wall-second, and the same figures for the single-server scenario
(``examples/azure_conv_llama70b_tp8_h100.yaml``) run in the same process for comparison.

    python benchmarks/bench_multistage.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from hermes_core import load_scenario, run
from hermes_core.plugins import default_registry

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "disaggregated": ROOT / "examples" / "disagg_llama70b_h100_ib_azure.yaml",
    "single_server": ROOT / "examples" / "azure_conv_llama70b_tp8_h100.yaml",
}


def bench(path: Path, repeat: int) -> dict:
    """Best wall time of ``repeat`` runs and the figures of the last."""
    walls = []
    s = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        s = run(load_scenario(path)).summary
        walls.append(time.perf_counter() - t0)
    best = min(walls)
    out = {
        "scenario": s["scenario"],
        "requests": s["requests"]["total"],
        "completed": s["requests"]["completed"],
        "wall_s_best": round(best, 2),
        "wall_s_all": [round(w, 2) for w in walls],
        "requests_per_wall_s": round(s["requests"]["total"] / best, 1),
        "events": s["events"],
    }
    if "transfers" in s:
        out["flows"] = s["transfers"]["flows"]
        out["flows_per_wall_s"] = round(s["transfers"]["flows"] / best, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="runs per scenario (the best is reported)")
    args = ap.parse_args()
    default_registry()  # plugin loading is not part of the figure
    res = {"python": platform.python_version(), "machine": platform.machine()}
    for name, path in SCENARIOS.items():
        res[name] = bench(path, args.repeat)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
