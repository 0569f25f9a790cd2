"""Fit the GPU model's MoE efficiency (``moe_compute``, ``moe_launch_us``) on measured
fused-MoE layers.

Reads aiconfigurator ``moe_perf`` tables (one fused MoE layer: routing, the expert GEMMs,
activation, combine; latency per ``num_tokens``, expert shape, ``moe_tp_size`` and
``moe_dtype``), predicts each row with the simulator's own MoE model
(:func:`hermes_plugins.stages.step_cost.moe_layer_time` on the ``h200_sxm`` preset with the
fitted dense efficiency factors) and fits the two factors that only MoE layers use, by
minimising the mean ``|log(predicted / measured)|`` (bounded Nelder-Mead,
:func:`hermes_plugins.calibration.minimise`). The result goes into the ``"moe"`` section
of ``plugins/hermes_plugins/data/efficiency_h100_sxm.json`` (read by
:func:`hermes_plugins.devices.fitted_efficiency`), with the error it leaves per engine,
dtype and token range, and a held-out check (fit without Qwen3-235B-A22B's expert shape,
error on it).

Rows used: ``moe_ep_size == 1``, the table's preferred routing distribution
(``power_law_1.01``), dtypes ``bfloat16`` (16-bit weights) and ``fp8_block`` (priced as
FP8 weights). The fit and the predictions are :func:`hermes_plugins.calibration.fit_moe`
and :func:`~hermes_plugins.calibration.predict_moe`, which ``hermes calibrate`` runs on any
``moe_perf`` table it is given. The default tables are the two shipped with hermes
(``plugins/hermes_plugins/data/aiconfigurator_h200/``: Qwen3-235B-A22B's expert shape only);
the published fit used the full H200 tables of ai-dynamo/aiconfigurator @ 095f58a5
(``systems/data/h200_sxm/moe/sglang/0.5.6.post2`` and ``.../moe/vllm/0.14.0``, every expert
shape they measured)::

    python benchmarks/fit_moe_efficiency.py AIC/h200_sxm/moe/sglang/0.5.6.post2 AIC/h200_sxm/moe/vllm/0.14.0

With ``--mxfp4`` it fits instead ``moe_compute_mxfp4``, the compute factor of experts with
MXFP4 weights (vLLM's ``vllm_mxfp4_moe`` kernels, which dequantize to BF16 on Hopper), on the
table's ``w4a16_mxfp4`` rows with ``moe_launch_us`` kept from the ``"moe"`` section, and
writes the ``"moe_mxfp4"`` section. Its default table is the one shipped with hermes
(``data/aiconfigurator_h200/vllm_0.18.0``: gpt-oss-120b's experts, hidden 2880, inter
2880, 128 experts, top-4, moe_tp 1)::

    python benchmarks/fit_moe_efficiency.py --mxfp4

With ``--marlin`` it fits ``moe_compute_marlin`` (and its token block), the factors of the
Marlin W4A16 fused-MoE kernels (vLLM ``MarlinExperts``, which an engine runs for MXFP4
experts with ``VLLM_MXFP4_USE_MARLIN=1``), on the MXFP4 Marlin rows of its table and checks
them on the table's other Marlin shape (4-bit integer weights, ``int4_wo``, priced as the
same W4A16 kernel), writing the ``"moe_marlin"`` section. Its default table is the one
shipped with hermes (``data/aiconfigurator_h200/vllm_0.24.0``: vLLM 0.24.0's Marlin rows on
H200, hidden 3584 / inter 3072 / 896 experts / top-16 MXFP4 and hidden 7168 / inter 2048 /
384 experts / top-8 int4, moe_tp 1-32)::

    python benchmarks/fit_moe_efficiency.py --marlin

Needs pyarrow for parquet tables (``pip install "hermes-sim[parquet]"``).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from hermes_plugins.calibration import (MOE_BLOCKS, Table, by_bucket, errors, fit_moe, load_aiconfigurator, log_err,
                                        make_gpu, minimise, predict_moe)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "plugins" / "hermes_plugins" / "data"
DEFAULT_TABLES = [DATA / "aiconfigurator_h200" / "sglang_0.5.6.post2", DATA / "aiconfigurator_h200" / "vllm_0.14.0"]
DEFAULT_OUT = DATA / "efficiency_h100_sxm.json"
PRESET = "h200_sxm"
DTYPES = ("bf16", "fp8_block")  # table moe_dtype: 16-bit and block-FP8 experts
HELD_OUT = (4096, 1536, 128, 8)  # Qwen3-235B-A22B: hidden, inter, experts, top-k
MXFP4_TABLES = [DATA / "aiconfigurator_h200" / "vllm_0.18.0"]
MARLIN_TABLES = [DATA / "aiconfigurator_h200" / "vllm_0.24.0"]
DISTRIBUTION = "power_law_1.01"  # the routing the tables prefer (aiconfigurator's default)


def load(paths: list[Path], dtypes=DTYPES) -> dict[str, np.ndarray]:
    """The fit rows of every table (``dtypes``, routing :data:`DISTRIBUTION` where the
    table records one), concatenated, with an ``engine`` column."""
    parts = []
    for p in paths:
        t = load_aiconfigurator([p])["moe"]
        c = t.cols
        keep = np.isin(c["dtype"], list(dtypes)) & (c["ep"] == 1)
        if np.any(c["distribution"] == DISTRIBUTION):
            keep &= c["distribution"] == DISTRIBUTION
        part = {k: v[keep] for k, v in c.items()}
        label = Path(p).name if Path(p).is_dir() else Path(p).parent.name
        part["engine"] = np.full(int(keep.sum()), f"{t.cols['kernel'][0]} {label}" if len(t) else label, dtype=object)
        parts.append(part)
    return {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}


def predict(rows: dict[str, np.ndarray], moe_compute: float, moe_launch_us: float, block: int = 0) -> np.ndarray:
    """Modelled seconds of every row (the shipped dense factors, these MoE factors)."""
    gpu = make_gpu(PRESET, {"moe_compute": moe_compute, "moe_launch_us": moe_launch_us, "moe_block_m_min": block},
                   base="preset")
    return predict_moe(gpu, Table("moe", rows))


def fit(rows: dict[str, np.ndarray]) -> tuple[float, float, int]:
    """``(moe_compute, moe_launch_us, moe_block_m_min)`` fitted on ``rows``."""
    p = fit_moe(Table("moe", rows), PRESET, log=lambda _: None)
    return round(p["moe_compute"], 4), round(p["moe_launch_us"], 3), int(p["moe_block_m_min"])


def report(rows, pred) -> dict:
    meas = rows["latency_s"]
    out = {"all": errors(pred, meas)}
    for eng in sorted(set(rows["engine"])):
        for dt in sorted(set(rows["dtype"])):
            sel = (rows["engine"] == eng) & (rows["dtype"] == dt)
            if sel.any():
                out[f"{eng} {dt}"] = errors(pred[sel], meas[sel])
    for lo, hi in ((1, 16), (17, 512), (513, 4096), (4097, 1 << 20)):
        sel = (rows["tokens"] >= lo) & (rows["tokens"] <= hi)
        if sel.any():
            out[f"tokens {lo}-{hi}"] = errors(pred[sel], meas[sel])
    return out


def _rel(p: Path) -> str:
    """``p`` relative to the repository when it is inside it."""
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


#: Token-count buckets of the per-kernel fits' reports.
TOKEN_BUCKETS = [(1, 7), (8, 63), (64, 511), (512, 4095), (4096, 1 << 20)]


def predict_w4(rows: dict[str, np.ndarray], base: dict, x: float, block: int) -> np.ndarray:
    """Modelled seconds of ``rows`` (MXFP4-priced experts) with ``x`` and ``block`` as the
    MXFP4 compute factor and token block, on top of ``base``."""
    gpu = make_gpu(PRESET, {**base, "moe_compute_mxfp4": x, "moe_block_m_min_mxfp4": block}, base="preset")
    return predict_moe(gpu, Table("moe", rows))


def fit_w4(rows: dict[str, np.ndarray], base: dict, start: float, label: str) -> tuple[list, float, int]:
    """``(trials, factor, block)``: the compute factor of ``rows``' kernel fitted once per
    candidate token block (:data:`MOE_BLOCKS`, the kernels pick their own), the block with
    the lowest mean ``|log error|`` kept; ``trials`` are ``(loss, factor, block)``."""
    trials = []
    for block in MOE_BLOCKS:
        res = minimise(lambda v, b=block: log_err(predict_w4(rows, base, float(v[0]), b), rows["latency_s"]),
                       [start], [(0.02, 1.0)])
        trials.append((res.fun, round(float(res.x[0]), 4), block))
        print(f"  {label} block >= {block}: mean|log| {res.fun:.4f}  moe_compute_{label} {res.x[0]:.4f}")
    _, x, block = min(trials)
    return trials, x, block


def w4_section(fields: tuple[str, str], trials: list, x: float, block: int, tables: list[Path],
               what: str, version: str) -> dict:
    """The common head of a W4A16 section: the fitted ``fields`` (compute share, smallest
    block), the loss per candidate block and the provenance of ``what`` rows of
    aiconfigurator's vLLM ``version`` H200 table."""
    return {
        "efficiency": {fields[0]: x, fields[1]: block},
        "block_losses": {str(b): round(f, 4) for f, _, b in trials},
        "source": f"fit on aiconfigurator H200 vLLM {version} {what} fused-MoE rows ({', '.join(_rel(p) for p in tables)}; "
                  f"full table: aic-core/src/aiconfigurator_core/systems/data/h200_sxm/moe/vllm/{version}/moe_perf.parquet), "
                  f"ai-dynamo/aiconfigurator @ 095f58a5, routing {DISTRIBUTION}, moe_launch_us from the moe section, "
                  f"{datetime.date.today().isoformat()}",
    }


def fit_mxfp4(tables: list[Path], out: Path) -> None:
    """Fit ``moe_compute_mxfp4`` on the ``w4a16_mxfp4`` rows of ``tables`` and write the
    ``"moe_mxfp4"`` section of ``out``."""
    rows = load(tables, ("w4a16_mxfp4",))
    if not len(rows["latency_s"]):
        raise SystemExit(f"no w4a16_mxfp4 rows with routing {DISTRIBUTION} in {', '.join(map(str, tables))}")
    doc = json.loads(out.read_text()) if out.exists() else {}
    base = dict(doc.get("moe", {}).get("efficiency", {}))

    def pred(x: float, block: int) -> np.ndarray:
        return predict_w4(rows, base, x, block)

    meas = rows["latency_s"]
    trials, x, block = fit_w4(rows, base, 0.5, "mxfp4")
    after = report(rows, pred(x, block))
    doc["moe_mxfp4"] = {
        **w4_section(("moe_compute_mxfp4", "moe_block_m_min_mxfp4"), trials, x, block, tables, "MXFP4", "0.18.0"),
        "rows": int(len(meas)),
        "errors": after,
        "errors_with_moe_compute": report(rows, pred(base.get("moe_compute", 1.0), base.get("moe_block_m_min", 0))),
        "by_tokens": by_bucket(pred(x, block), meas, rows["tokens"], TOKEN_BUCKETS, "tokens"),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps({k: doc["moe_mxfp4"][k] for k in ("efficiency", "by_tokens")}, indent=1))


def fit_marlin(tables: list[Path], out: Path) -> None:
    """Fit ``moe_compute_marlin`` and ``moe_block_m_min_marlin`` on the ``w4a16_mxfp4``
    Marlin rows of ``tables``, check them on the ``int4_wo`` Marlin rows (held out: another
    expert shape and 4-bit format, the same W4A16 kernel, priced as MXFP4 weights) and write
    the ``"moe_marlin"`` section of ``out``."""
    rows = load(tables, ("w4a16_mxfp4", "int4_wo"))
    marlin = np.array(["marlin" in str(k) for k in rows["kernel"]])
    rows = {k: v[marlin] for k, v in rows.items()}
    fit_sel = rows["dtype"] == "w4a16_mxfp4"
    if not fit_sel.any():
        raise SystemExit(f"no Marlin w4a16_mxfp4 rows with routing {DISTRIBUTION} in {', '.join(map(str, tables))}")
    rows["dtype"] = np.full(len(fit_sel), "w4a16_mxfp4", dtype=object)  # both priced as W4A16 MXFP4
    train = {k: v[fit_sel] for k, v in rows.items()}
    test = {k: v[~fit_sel] for k, v in rows.items()}
    doc = json.loads(out.read_text()) if out.exists() else {}
    base = {**doc.get("moe", {}).get("efficiency", {}), **doc.get("moe_mxfp4", {}).get("efficiency", {})}

    def pred(part, x: float, block: int) -> np.ndarray:
        return predict_w4(part, base, x, block)

    trials, x, block = fit_w4(train, base, 0.3, "marlin")
    section = {
        **w4_section(("moe_compute_marlin", "moe_block_m_min_marlin"), trials, x, block, tables, "Marlin", "0.24.0"),
        "rows": int(fit_sel.sum()),
        "errors": errors(pred(train, x, block), train["latency_s"]),
        "by_tokens": by_bucket(pred(train, x, block), train["latency_s"], train["tokens"], TOKEN_BUCKETS, "tokens"),
        "held_out": {"shape": "hidden 7168, inter 2048, 384 experts, top-8, int4 weights (int4_wo)",
                     "errors_on_it": errors(pred(test, x, block), test["latency_s"]) if len(test["tokens"]) else {"n": 0},
                     "with_mxfp4_factors": errors(pred(test, base.get("moe_compute_mxfp4", 1.0),
                                                      base.get("moe_block_m_min_mxfp4", 0)), test["latency_s"])
                     if len(test["tokens"]) else {"n": 0}},
    }
    doc["moe_marlin"] = section
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps({k: section[k] for k in ("efficiency", "errors", "by_tokens", "held_out")}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="*", type=Path, help="moe_perf tables or directories (default: the shipped ones)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--mxfp4", action="store_true", help="fit moe_compute_mxfp4 on MXFP4 rows instead")
    ap.add_argument("--marlin", action="store_true", help="fit moe_compute_marlin on Marlin rows instead")
    args = ap.parse_args()
    if args.marlin:
        fit_marlin(args.tables or MARLIN_TABLES, args.out)
        return
    if args.mxfp4:
        fit_mxfp4(args.tables or MXFP4_TABLES, args.out)
        return
    args.tables = args.tables or DEFAULT_TABLES
    rows = load(args.tables)
    shape = np.column_stack([rows["hidden"], rows["inter"], rows["experts"], rows["topk"]])
    held = np.all(shape == np.array(HELD_OUT), axis=1)
    compute, launch, block = fit(rows)
    before = report(rows, predict(rows, 1.0, 0.0))
    after = report(rows, predict(rows, compute, launch, block))
    result: dict = {
        "efficiency": {"moe_compute": compute, "moe_launch_us": launch, "moe_block_m_min": block},
        "source": f"fit on aiconfigurator H200 fused-MoE tables ({', '.join(str(p) for p in args.tables)}), "
                  f"ai-dynamo/aiconfigurator @ 095f58a5, {datetime.date.today().isoformat()}",
        "rows": int(len(rows["latency_s"])),
        "errors": after,
        "errors_without_moe_factors": before,
    }
    if held.any() and (~held).any():
        sub = {k: v[~held] for k, v in rows.items()}
        c2, l2, b2 = fit(sub)
        test = {k: v[held] for k, v in rows.items()}
        result["held_out"] = {"shape": "hidden 4096, inter 1536, 128 experts, top-8 (Qwen3-235B-A22B)",
                              "fit_without_it": {"moe_compute": c2, "moe_launch_us": l2, "moe_block_m_min": b2},
                              "errors_on_it": errors(predict(test, c2, l2, b2), test["latency_s"])}
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc["moe"] = result
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    print(json.dumps({"efficiency": result["efficiency"],
                      "errors": {k: {m: v[m] for m in ("n", "median_ape", "mean_ape")} for k, v in after.items()},
                      "before": {k: before[k]["median_ape"] for k in before},
                      "held_out": result.get("held_out")}, indent=1))


if __name__ == "__main__":
    main()
