"""Fit the GPU device model's efficiency factors on measured H100 SXM kernel tables.

Reads the ai-dynamo/aiconfigurator per-operator tables measured on H100 SXM under vLLM
0.24.0 (parquet), fits the :class:`hermes_plugins.devices.Efficiency` fields of the
``h100_sxm`` preset and the scale-up link's all-reduce algorithms (bandwidth share and
latency of the ring, one-shot and switch all-reduce), and writes
them, with the error they leave per table, to ``plugins/hermes_plugins/data/
efficiency_h100_sxm.json`` (read by :func:`hermes_plugins.devices.fitted_efficiency`).

Rows used (the shapes LLM serving runs):

* GEMM: ``kernel_source == torch.nn.functional.linear``, bf16, ``1 <= m <= 16384``,
  ``n >= 128``, ``k >= 128``.
* FP8 GEMM: ``kernel_source == CutlassFP8ScaledMMLinearKernel`` (per-tensor FP8, dynamic
  activation scale), ``1 <= m <= 16384``, ``512 <= n <= 51200``, ``1024 <= k <= 51200``:
  the FP8 GEMM fields are fitted (share of the FP8 peak, tile, per-tile overhead, occupancy
  exponent, launch time: :func:`hermes_plugins.calibration.fit_gemm_fp8`), the memory share
  and roofline are the bf16 fit's, and the call's activation quantization is priced as a
  memory kernel
  (:func:`hermes_plugins.calibration.predict_gemm_fp8`).
* Context and generation attention: FlashAttention 3 (``vllm_flash_attn_fa3``), bf16 KV
  cache, no sliding window (``window_size == 0``); all batch sizes, lengths, head counts
  and head dims in the table. Context rows prefill ``isl`` tokens per sequence with no
  cached prefix; in generation rows ``step`` is the KV length including the new token.
* All-reduce: vLLM custom all-reduce under CUDA graphs (``vLLM_custom_graph``), bf16.
  ``message_size`` is an element count (aiconfigurator's collector all-reduces a tensor
  of that many elements), so the bytes are twice it.

Predictions go through the simulator's own code (``GPU.gemm_time``,
``GPU.attention_time`` with the step cost model's FLOP/byte formulas, and
``Topology.allreduce_time`` on a single-switch topology), so the errors written are the
errors hermes makes. The objective is the mean of ``|log(predicted / measured)|`` (a
relative, outlier-tolerant L1 loss), minimised with a bounded Nelder-Mead (numpy; the same
algorithm and iterates as scipy's). GEMM tile sizes are discrete and chosen by a small
grid. The reading and fitting code is :mod:`hermes_plugins.calibration`, shared with
``hermes calibrate``.

Usage (from the repository root)::

    python benchmarks/fit_gpu_efficiency.py
    python benchmarks/fit_gpu_efficiency.py --data DIR --out FILE --test-subset tests/data/aiconfigurator_h100

Needs pyarrow for the parquet tables (``pip install "hermes-sim[parquet]"``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

import numpy as np

from hermes_plugins.calibration import (
    HAND_SET_LINK, by_bucket, errors, fit_attention, fit_gemm, fit_gemm_fp8, fit_link, fit_rows,
    load_aiconfigurator, make_gpu, predict_allreduce, predict_attention, predict_gemm, predict_gemm_fp8,
)
from hermes_plugins.devices import Efficiency

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "realdata" / "aiconfigurator_h100_vllm0.24.0"
DEFAULT_OUT = ROOT / "plugins" / "hermes_plugins" / "data" / "efficiency_h100_sxm.json"
SOURCE = "fit on aiconfigurator H100 SXM vLLM 0.24.0 tables (ai-dynamo/aiconfigurator @ 095f58a5)"
PRESET = "h100_sxm"


def load_rows(data: Path):
    """The filtered rows of each table (see the module docstring)."""
    return fit_rows(load_aiconfigurator([data]))


# ---------------------------------------------------------------------------- test subset

SUBSET = {  # table: (rows, [(CSV column, hermes column)])
    "gemm": (300, [("m", "m"), ("n", "n"), ("k", "k")]),
    "context_attention": (200, [("batch_size", "batch"), ("isl", "isl"), ("num_heads", "heads"),
                                ("num_key_value_heads", "kv_heads"), ("head_dim", "head_dim")]),
    "generation_attention": (200, [("batch_size", "batch"), ("step", "step"), ("num_heads", "heads"),
                                   ("num_key_value_heads", "kv_heads"), ("head_dim", "head_dim")]),
    "allreduce": (None, [("num_gpus", "num_gpus"), ("message_size", "nbytes")]),
    "gemm_fp8": (200, [("m", "m"), ("n", "n"), ("k", "k")]),
}
#: Constant columns a subset file carries (the rows' dtype, so the file reads back as FP8).
SUBSET_CONSTANT = {"gemm_fp8": {"gemm_dtype": "fp8"}}


def write_subset(rows, out_dir: Path, seed: int = 0) -> None:
    """A uniform random sample (fixed seed) of each filtered table as CSV, sorted, in the
    aiconfigurator columns (``latency`` in ms, ``message_size`` in elements)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (count, cols) in SUBSET.items():
        t = rows[name].cols
        n = len(t["latency_s"])
        idx = np.arange(n) if count is None or count >= n else np.sort(rng.choice(n, count, replace=False))
        order = np.lexsort([t[h][idx] for _, h in reversed(cols)])
        idx = idx[order]
        with open(out_dir / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            const = SUBSET_CONSTANT.get(name, {})
            w.writerow([c for c, _ in cols] + list(const) + ["latency"])
            for i in idx:
                vals = [int(t[h][i]) // 2 if c == "message_size" else int(t[h][i]) for c, h in cols]
                w.writerow(vals + list(const.values()) + [repr(float(t["latency_ms"][i]))])
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
    g8 = rows["gemm_fp8"]
    print(f"rows: gemm {len(g)}, gemm fp8 {len(g8)}, context attention {len(ctx)}, "
          f"generation attention {len(gen)}, all-reduce {len(ar)}")

    eff = fit_gemm(g, PRESET)[0]
    eff.update(fit_gemm_fp8(g8, PRESET, eff))
    eff.update(fit_attention(ctx, gen, PRESET))
    link = fit_link(ar, PRESET)
    eff = {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in eff.items()}
    link = {k: round(float(v), 4) for k, v in link.items()}
    eff["memory_kernels"] = Efficiency().memory_kernels  # no elementwise-kernel table to fit
    eff["source"] = f"{SOURCE}, {datetime.date.today().isoformat()}"

    gpu = make_gpu(PRESET, eff, link)
    ms = {k: t.cols["latency_s"] for k, t in rows.items()}
    p_g, p_c = predict_gemm(gpu, g), predict_attention(gpu, ctx, "prefill")
    p_8 = predict_gemm_fp8(gpu, g8)
    p_d, p_a = predict_attention(gpu, gen, "decode"), predict_allreduce(gpu, ar)
    default_gpu = make_gpu(PRESET, {}, HAND_SET_LINK)
    gc, cc, dc, ac = g.cols, ctx.cols, gen.cols, ar.cols
    result = {
        "efficiency": eff,
        "errors": {
            "gemm_bf16": {**errors(p_g, ms["gemm"]),
                          "rows": "torch.nn.functional.linear, bf16, 1 <= m <= 16384, n >= 128, k >= 128",
                          "by": {**by_bucket(p_g, ms["gemm"], gc["m"], [(1, 16), (17, 128), (129, 512), (513, 4096), (4097, 16384)], "m"),
                                 **by_bucket(p_g, ms["gemm"], np.minimum(gc["n"], gc["k"]),
                                             [(128, 512), (513, 2048), (2049, 65536)], "min(n,k)")}},
            "gemm_fp8": {**errors(p_8, ms["gemm_fp8"]),
                         "rows": "CutlassFP8ScaledMMLinearKernel (per-tensor FP8, dynamic activation scale), "
                                 "1 <= m <= 16384, 512 <= n <= 51200, 1024 <= k <= 51200; "
                                 "GEMM + activation quantization (5 bytes per input element)",
                         "by": by_bucket(p_8, ms["gemm_fp8"], g8.cols["m"],
                                         [(1, 16), (17, 128), (129, 512), (513, 4096), (4097, 16384)], "m")},
            "context_attention": {**errors(p_c, ms["context_attention"]),
                                  "rows": "vllm_flash_attn_fa3, bf16 KV cache, window_size 0",
                                  "by": {**by_bucket(p_c, ms["context_attention"], cc["isl"], [(1, 256), (257, 2048), (2049, 16384)], "isl"),
                                         **by_bucket(p_c, ms["context_attention"], cc["head_dim"], [(64, 64), (128, 128), (192, 192), (256, 256)], "head_dim")}},
            "generation_attention": {**errors(p_d, ms["generation_attention"]),
                                     "rows": "vllm_flash_attn_fa3, bf16 KV cache, window_size 0",
                                     "by": {**by_bucket(p_d, ms["generation_attention"], dc["step"], [(1, 255), (256, 4095), (4096, 131071)], "kv_len"),
                                            **by_bucket(p_d, ms["generation_attention"], dc["batch"], [(1, 64), (65, 256), (257, 2048)], "batch")}},
            "allreduce_custom_graph": {**errors(p_a, ms["allreduce"]),
                                       "rows": "vLLM_custom_graph, bf16, 2/4/8 GPUs, 256 B - 1 GiB (128 - 512 Mi elements)",
                                       "by": {**by_bucket(p_a, ms["allreduce"], ac["num_gpus"], [(2, 2), (4, 4), (8, 8)], "gpus"),
                                              **by_bucket(p_a, ms["allreduce"], ac["nbytes"],
                                                          [(256, 131072), (131073, 8388608), (8388609, 1073741824)], "bytes")}},
        },
        "errors_with_hand_set_factors": {
            "gemm_bf16": errors(predict_gemm(default_gpu, g), ms["gemm"]),
            "gemm_fp8": errors(predict_gemm_fp8(default_gpu, g8), ms["gemm_fp8"]),
            "context_attention": errors(predict_attention(default_gpu, ctx, "prefill"), ms["context_attention"]),
            "generation_attention": errors(predict_attention(default_gpu, gen, "decode"), ms["generation_attention"]),
            "allreduce_custom_graph": errors(predict_allreduce(default_gpu, ar), ms["allreduce"]),
        },
        "link": {
            **link,
            "formula": "hermes_core.Topology.allreduce_time on a single switch, the fastest of: ring "
                       "2(n-1)/n * bytes / (datasheet * link_bandwidth_efficiency) + collective_latency; one-shot "
                       "(n-1) * bytes / (datasheet * one_shot_bandwidth_efficiency) + one_shot_latency; switch "
                       "(NVLink SHARP) bytes / (datasheet * switch_bandwidth_efficiency) + switch_latency",
            "datasheet_link_bandwidth_GBps": 450,
            "source": f"{SOURCE}, vLLM custom all-reduce (CUDA graph), bytes = 2 x message_size (bf16 elements), "
                      f"{datetime.date.today().isoformat()}",
        },
        "not_fitted": {"memory_kernels": "no elementwise-kernel table in the source; hand-set value kept"},
    }
    if args.out.exists():  # keep the MoE factors benchmarks/fit_moe_efficiency.py wrote
        previous = json.loads(args.out.read_text())
        result.update({k: v for k, v in previous.items() if k.startswith("moe")})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    print(json.dumps({k: {m: v[m] for m in ("n", "median_ape", "mean_ape", "p90_ape")}
                      for k, v in result["errors"].items()}, indent=1))
    if args.test_subset:
        write_subset(rows, args.test_subset)


if __name__ == "__main__":
    main()
