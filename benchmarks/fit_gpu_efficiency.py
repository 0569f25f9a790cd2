"""Fit the GPU device model's efficiency factors on measured H100 SXM kernel tables.

Reads the ai-dynamo/aiconfigurator per-operator tables measured on H100 SXM under vLLM
0.24.0 (parquet), fits the :class:`hermes_plugins.devices.Efficiency` fields of the
``h100_sxm`` preset and the scale-up link's latency and bandwidth efficiency, and writes
them, with the error they leave per table, to ``plugins/hermes_plugins/data/
efficiency_h100_sxm.json`` (read by :func:`hermes_plugins.devices.fitted_efficiency`).

Rows used (the shapes LLM serving runs):

* GEMM: ``kernel_source == torch.nn.functional.linear``, bf16, ``1 <= m <= 16384``,
  ``n >= 128``, ``k >= 128``.
* Context and generation attention: FlashAttention 3 (``vllm_flash_attn_fa3``), bf16 KV
  cache, no sliding window (``window_size == 0``); all batch sizes, lengths, head counts
  and head dims in the table. Context rows prefill ``isl`` tokens per sequence with no
  cached prefix; in generation rows ``step`` is the KV length including the new token.
* All-reduce: vLLM custom all-reduce under CUDA graphs (``vLLM_custom_graph``), bf16.

Predictions go through the simulator's own code (``GPU.gemm_time``,
``GPU.attention_time`` with the step cost model's FLOP/byte formulas, and
``Topology.allreduce_time`` on a single-switch topology), so the errors written are the
errors hermes makes. The objective is the mean of ``|log(predicted / measured)|`` (a
relative, outlier-tolerant L1 loss), minimised with scipy's bounded Nelder-Mead. GEMM
tile sizes are discrete and chosen by a small grid.

Usage (from the repository root)::

    python benchmarks/fit_gpu_efficiency.py
    python benchmarks/fit_gpu_efficiency.py --data DIR --out FILE --test-subset tests/data/aiconfigurator_h100

Needs numpy, pyarrow and scipy (scipy is not a hermes dependency; this script only).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.optimize import minimize

from hermes_core import Topology
from hermes_plugins.devices import GPU, Efficiency, GPUConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "realdata" / "aiconfigurator_h100_vllm0.24.0"
DEFAULT_OUT = ROOT / "plugins" / "hermes_plugins" / "data" / "efficiency_h100_sxm.json"
SOURCE = "fit on aiconfigurator H100 SXM vLLM 0.24.0 tables (ai-dynamo/aiconfigurator @ 095f58a5)"
FILES = {
    "gemm": "gemm_vllm_0.24.0_gemm_perf.parquet",
    "context_attention": "attention_vllm_0.24.0_context_attention_perf.parquet",
    "generation_attention": "attention_vllm_0.24.0_generation_attention_perf.parquet",
    "allreduce": "comm_vllm_0.24.0_custom_allreduce_perf.parquet",
}
GEMM_TILES = [(64, 64), (64, 128), (128, 128), (128, 256)]


# ---------------------------------------------------------------------------- data

def _select(table: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {c: v[keep] for c, v in table.items()}


def read_table(path: Path) -> dict[str, np.ndarray]:
    """A parquet file as ``{column: numpy array}``."""
    t = pq.read_table(path)
    return {c: np.asarray(t.column(c).to_pylist()) for c in t.column_names}


def load_rows(data: Path) -> dict[str, dict[str, np.ndarray]]:
    """The filtered rows of each table (see the module docstring)."""
    g = read_table(data / FILES["gemm"])
    g = _select(g, (g["kernel_source"] == "torch.nn.functional.linear") & (g["gemm_dtype"] == "bfloat16")
                & (g["m"] >= 1) & (g["m"] <= 16384) & (g["n"] >= 128) & (g["k"] >= 128))
    out = {"gemm": g}
    for name in ("context_attention", "generation_attention"):
        a = read_table(data / FILES[name])
        out[name] = _select(a, (a["kernel_source"] == "vllm_flash_attn_fa3")
                            & (a["kv_cache_dtype"] == "bfloat16") & (a["window_size"] == 0))
    r = read_table(data / FILES["allreduce"])
    out["allreduce"] = _select(r, r["kernel_source"] == "vLLM_custom_graph")
    return out


# ---------------------------------------------------------------------------- model

def make_gpu(eff: dict, link: dict | None = None) -> GPU:
    """The h100_sxm preset with every Efficiency field given explicitly (the fit must not
    depend on an earlier fit file)."""
    full = {**Efficiency().model_dump(), **eff}
    cfg = {"preset": "h100_sxm", "efficiency": full}
    if link:
        cfg.update(link)
    return GPU(GPUConfig(**cfg))


def attention_work(a: dict[str, np.ndarray], phase: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-call FLOP and bytes by the step cost model's formulas (bf16 activations and
    KV): prefill of q = isl tokens on c = 0 cached, decode of one token on c = step - 1
    cached (``step`` is the KV length)."""
    b = a["batch_size"].astype(float)
    hq = a["num_heads"].astype(float)
    hkv = a["num_key_value_heads"].astype(float)
    d = a["head_dim"].astype(float)
    kv_tok = 2.0 * hkv * d * 2.0
    q_bytes = 2.0 * hq * d * 2.0
    if phase == "prefill":
        q = a["isl"].astype(float)
        flops = 4.0 * hq * d * b * q * (q + 1) / 2
        nbytes = b * q * kv_tok + b * q * q_bytes
    else:
        kv = a["step"].astype(float)
        flops = 4.0 * hq * d * b * kv
        nbytes = b * kv * kv_tok + b * q_bytes
    return flops, nbytes


def predict_gemm(gpu: GPU, g) -> np.ndarray:
    return gpu.gemm_time(g["m"], g["n"], g["k"], "bf16")


def predict_attention(gpu: GPU, a, phase: str) -> np.ndarray:
    flops, nbytes = attention_work(a, phase)
    return gpu.attention_time(flops, nbytes, phase, "bf16")


def predict_allreduce(gpu: GPU, r) -> np.ndarray:
    """Ring all-reduce over n GPUs behind one NVSwitch, as the simulator builds it."""
    out = np.empty(len(r["latency"]))
    for n in np.unique(r["num_gpus"]):
        names = [f"d{i}" for i in range(int(n))]
        topo = Topology.single_switch(names, gpu.link_bandwidth, gpu.link_latency)
        sel = r["num_gpus"] == n
        out[sel] = topo.allreduce_time(names, r["message_size"][sel].astype(float), gpu.collective_latency)
    return out


# ---------------------------------------------------------------------------- fitting

def log_err(pred: np.ndarray, meas_ms: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log(np.maximum(pred, 1e-12) / (meas_ms * 1e-3)))))


def errors(pred: np.ndarray, meas_ms: np.ndarray) -> dict:
    """n rows and median / mean / p90 absolute percentage error (in %)."""
    ape = np.abs(pred / (meas_ms * 1e-3) - 1) * 100
    return {"n": int(len(ape)), "median_ape": round(float(np.median(ape)), 2),
            "mean_ape": round(float(np.mean(ape)), 2), "p90_ape": round(float(np.quantile(ape, 0.9)), 2)}


def by_bucket(pred, meas_ms, key: np.ndarray, ranges: list[tuple[int, int]], label: str) -> dict:
    """Median APE (%) and median predicted/measured ratio per inclusive range of ``key``."""
    out = {}
    for lo, hi in ranges:
        sel = (key >= lo) & (key <= hi)
        if sel.any():
            e = errors(pred[sel], meas_ms[sel])
            bias = float(np.median(pred[sel] / (meas_ms[sel] * 1e-3)))
            out[f"{label} {lo}-{hi}" if lo != hi else f"{label} {lo}"] = {
                "n": e["n"], "median_ape": e["median_ape"], "median_pred_over_meas": round(bias, 3)}
    return out


def nelder_mead(objective, x0, bounds):
    best = None
    for _ in range(3):  # restarts: Nelder-Mead stalls on flat ridges
        res = minimize(objective, x0 if best is None else best.x, method="Nelder-Mead", bounds=bounds,
                       options={"maxiter": 4000, "xatol": 1e-5, "fatol": 1e-8})
        if best is not None and best.fun - res.fun < 1e-7:
            best = res if res.fun < best.fun else best
            break
        best = res
    return best


def fit_gemm(g) -> tuple[dict, list]:
    names = ["gemm_compute", "gemm_memory", "launch_us", "gemm_k_overhead", "gemm_occupancy_exponent"]
    bounds = [(0.05, 1.0), (0.05, 1.0), (0.0, 50.0), (0.0, 4096.0), (0.0, 1.0)]
    trials = []
    for tm, tn in GEMM_TILES:
        def obj(x, tm=tm, tn=tn):
            return log_err(predict_gemm(make_gpu({**dict(zip(names, x)), "tile_m": tm, "tile_n": tn}), g), g["latency"])
        res = nelder_mead(obj, [0.8, 0.85, 3.0, 128.0, 0.5], bounds)
        trials.append((res.fun, {**dict(zip(names, res.x)), "tile_m": tm, "tile_n": tn}))
        print(f"  gemm tile {tm}x{tn}: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
    best = min(trials, key=lambda t: t[0])[1]
    return best, [{"tile": f"{t[1]['tile_m']}x{t[1]['tile_n']}", "mean_abs_log": round(t[0], 4)} for t in trials]


def fit_attention(ctx, gen) -> dict:
    """Prefill and decode factors and the shared per-call cost, on both tables at once.
    Decode attention is memory-bound on every measured shape (FLOP/byte ~ h_q/h_kv <= 64,
    far below the ridge), so its compute efficiency is not identifiable: it is set to the
    prefill value."""
    names = ["attention_prefill_compute", "attention_prefill_memory", "attention_decode_memory",
             "attention_launch_us"]
    bounds = [(0.05, 1.0)] * 3 + [(0.0, 100.0)]

    def params(x):
        p = dict(zip(names, x))
        return {**p, "attention_decode_compute": p["attention_prefill_compute"]}

    def obj(x):
        gpu = make_gpu(params(x))
        return 0.5 * (log_err(predict_attention(gpu, ctx, "prefill"), ctx["latency"])
                      + log_err(predict_attention(gpu, gen, "decode"), gen["latency"]))
    res = nelder_mead(obj, [0.6, 0.4, 0.8, 12.0], bounds)
    print(f"  attention: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
    return params(res.x)


def fit_link(r) -> dict:
    # NVSwitch hops add no latency of their own here: the measured latency does not grow
    # with the GPU count, so all fixed cost goes into collective_latency_us.
    names = ["link_bandwidth_efficiency", "collective_latency_us"]

    def obj(x):
        return log_err(predict_allreduce(make_gpu({}, {"link_latency_us": 0.0, **dict(zip(names, x))}), r), r["latency"])
    res = nelder_mead(obj, [0.4, 4.0], [(0.01, 1.0), (0.0, 50.0)])
    print(f"  link: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
    return {"link_latency_us": 0.0, **dict(zip(names, res.x))}


# ---------------------------------------------------------------------------- test subset

SUBSET = {  # table: (rows, columns kept)
    "gemm": (300, ["m", "n", "k", "latency"]),
    "context_attention": (200, ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "latency"]),
    "generation_attention": (200, ["batch_size", "step", "num_heads", "num_key_value_heads", "head_dim", "latency"]),
    "allreduce": (None, ["num_gpus", "message_size", "latency"]),
}


def write_subset(rows, out_dir: Path, seed: int = 0) -> None:
    """A uniform random sample (fixed seed) of each filtered table as CSV, sorted."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (count, cols) in SUBSET.items():
        t = rows[name]
        n = len(t["latency"])
        idx = np.arange(n) if count is None or count >= n else np.sort(rng.choice(n, count, replace=False))
        order = np.lexsort([t[c][idx] for c in reversed(cols[:-1])])
        idx = idx[order]
        with open(out_dir / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for i in idx:
                w.writerow([repr(float(t[c][i])) if c == "latency" else int(t[c][i]) for c in cols])
        print(f"  wrote {out_dir / (name + '.csv')} ({len(idx)} rows)")


# ---------------------------------------------------------------------------- main

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the aiconfigurator parquet tables")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    ap.add_argument("--test-subset", type=Path, default=None,
                    help="also write small CSV samples of the filtered tables to this directory")
    args = ap.parse_args(argv)

    rows = load_rows(args.data)
    g, ctx, gen, ar = rows["gemm"], rows["context_attention"], rows["generation_attention"], rows["allreduce"]
    print(f"rows: gemm {len(g['m'])}, context attention {len(ctx['isl'])}, "
          f"generation attention {len(gen['step'])}, all-reduce {len(ar['latency'])}")

    eff = {**fit_gemm(g)[0], **fit_attention(ctx, gen)}
    link = fit_link(ar)
    eff = {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in eff.items()}
    link = {k: round(float(v), 4) for k, v in link.items()}
    eff["memory_kernels"] = Efficiency().memory_kernels  # no elementwise-kernel table to fit
    eff["source"] = f"{SOURCE}, {datetime.date.today().isoformat()}"

    gpu = make_gpu(eff, link)
    p_g, p_c = predict_gemm(gpu, g), predict_attention(gpu, ctx, "prefill")
    p_d, p_a = predict_attention(gpu, gen, "decode"), predict_allreduce(gpu, ar)
    default_gpu = make_gpu({}, {"link_bandwidth_efficiency": 1.0, "link_latency_us": 2.0, "collective_latency_us": 0.0})
    result = {
        "efficiency": eff,
        "errors": {
            "gemm_bf16": {**errors(p_g, g["latency"]),
                          "rows": "torch.nn.functional.linear, bf16, 1 <= m <= 16384, n >= 128, k >= 128",
                          "by": {**by_bucket(p_g, g["latency"], g["m"], [(1, 16), (17, 128), (129, 512), (513, 4096), (4097, 16384)], "m"),
                                 **by_bucket(p_g, g["latency"], np.minimum(g["n"], g["k"]),
                                             [(128, 512), (513, 2048), (2049, 65536)], "min(n,k)")}},
            "context_attention": {**errors(p_c, ctx["latency"]),
                                  "rows": "vllm_flash_attn_fa3, bf16 KV cache, window_size 0",
                                  "by": {**by_bucket(p_c, ctx["latency"], ctx["isl"], [(1, 256), (257, 2048), (2049, 16384)], "isl"),
                                         **by_bucket(p_c, ctx["latency"], ctx["head_dim"], [(64, 64), (128, 128), (192, 192), (256, 256)], "head_dim")}},
            "generation_attention": {**errors(p_d, gen["latency"]),
                                     "rows": "vllm_flash_attn_fa3, bf16 KV cache, window_size 0",
                                     "by": {**by_bucket(p_d, gen["latency"], gen["step"], [(1, 255), (256, 4095), (4096, 131071)], "kv_len"),
                                            **by_bucket(p_d, gen["latency"], gen["batch_size"], [(1, 64), (65, 256), (257, 2048)], "batch")}},
            "allreduce_custom_graph": {**errors(p_a, ar["latency"]),
                                       "rows": "vLLM_custom_graph, bf16, 2/4/8 GPUs, 128 B - 512 MiB",
                                       "by": {**by_bucket(p_a, ar["latency"], ar["num_gpus"], [(2, 2), (4, 4), (8, 8)], "gpus"),
                                              **by_bucket(p_a, ar["latency"], ar["message_size"],
                                                          [(128, 65536), (65537, 4194304), (4194305, 536870912)], "bytes")}},
        },
        "errors_with_hand_set_factors": {
            "gemm_bf16": errors(predict_gemm(default_gpu, g), g["latency"]),
            "context_attention": errors(predict_attention(default_gpu, ctx, "prefill"), ctx["latency"]),
            "generation_attention": errors(predict_attention(default_gpu, gen, "decode"), gen["latency"]),
            "allreduce_custom_graph": errors(predict_allreduce(default_gpu, ar), ar["latency"]),
        },
        "link": {
            **link,
            "formula": "hermes_core.Topology.allreduce_time on a single switch: "
                       "2(n-1)/n * bytes / (link_bandwidth * link_bandwidth_efficiency) + 2 * link_latency + collective_latency",
            "datasheet_link_bandwidth_GBps": 450,
            "source": f"{SOURCE}, vLLM custom all-reduce (CUDA graph), {datetime.date.today().isoformat()}",
        },
        "not_fitted": {"memory_kernels": "no elementwise-kernel table in the source; hand-set value kept"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    print(json.dumps({k: {m: v[m] for m in ("n", "median_ape", "mean_ape", "p90_ape")}
                      for k, v in result["errors"].items()}, indent=1))
    if args.test_subset:
        write_subset(rows, args.test_subset)


if __name__ == "__main__":
    main()
