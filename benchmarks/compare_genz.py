"""Compare hermes and GenZ with measured H200 serving points (TTFT and TPOT).

GenZ (Bambhaniya et al., "Demystifying AI Platform Design for Distributed Inference of
Next-Generation LLM models", arXiv 2406.01698; ``pip install genz-llm``) is an analytical
roofline model of one prefill pass and one decode step. hermes simulates the whole
closed-loop benchmark (continuous batching, chunked prefill, paged KV cache, preemption).
This script puts both next to the measured points of the aiconfigurator silicon table
(``../shared/realdata/aiconfigurator_silicon_h200.csv``) and prints the absolute
percentage error (APE) of each tool per point, the median and mean APE per tool, and the
wall time each tool took per point.

Points (the selection rule): every row with ``mode == agg`` (aggregated serving; the
disaggregated rows need prefill-decode disaggregation, which neither the hermes core nor
GenZ's ``prefill_moddeling``/``decode_moddeling`` model), ``pp_size == 1``, precision
``fp8`` or ``bf16``, and a dense model both tools know: Llama-3.1-8B and Llama-3.1-70B
(any ``*Llama-3.1-8B*``/``*Llama-3.1-70B*`` checkpoint, Instruct and FP8 variants
included: same architecture). The other models are left out: Qwen3-235B-A22B (which
hermes models) is not in GenZ's catalog, DeepSeek-V3/R1 is in GenZ's but hermes refuses
multi-head latent attention, and gpt-oss, Kimi, GLM, MiniMax and Qwen3.5 are in neither
(or not modelled). The rows left out are counted by reason. In the
shipped file that is 199 of 967 rows (132 Llama-3.1-70B vLLM/TRT-LLM, 67 Llama-3.1-8B
SGLang/vLLM).

hermes, per point: ``hermes_core.run`` on a closed-loop scenario, ``concurrency =
batch_size`` clients, fixed ``isl``/``osl``, ``num_requests = 2 * concurrency``, one
replica of ``tp_size`` H200 SXM GPUs (``h200_sxm`` preset: 989.4 TFLOP/s bf16, 1978.9 fp8,
4.8 TB/s, 141 GB, NVLink 450 GB/s), chunked prefill with an 8192-token budget,
``max_num_seqs = max(256, concurrency)`` (the benchmark keeps ``concurrency`` requests in
the engine), ``max_model_len = isl + osl``. Precision: weights = the row's precision,
activations bf16 (attention runs in bf16), KV cache in the weights' precision (an FP8
checkpoint serves with an FP8 KV cache, aiconfigurator's convention, as ``hermes validate
serving`` assumes; GenZ's single ``bits`` does the same); change with ``--kv-cache``.
TTFT and TPOT are the means over all requests (``summary["ttft_ms"]["mean"]``,
``summary["tpot_ms"]["mean"]``). This plain scenario is the default (``--hermes plain``);
``--hermes validate`` runs each point as ``hermes validate serving`` does instead
(``hermes_plugins.validation.serving.simulate`` with its default protocol: each row with
the client and engine settings it was measured with, per-backend host time per step, the
warm-up left out of the means), when that module is present.

GenZ, per point (GenZ has no H200 entry in ``Systems/system_configs``; its ``H100_GPU``
is 989 TFLOP/s, 80 GB, 3.4 TB/s, 450 GB/s, and ``GH200_GPU`` gives 1979 TFLOP/s, which
GenZ's fp8 multiplier would double again, so the system is passed as a dict of H200 SXM datasheet
figures: ``{"Flops": 989, "Memory_size": 141, "Memory_BW": 4800, "ICN": 450,
"real_values": True}``; GenZ's ``bits="fp8"`` doubles the FLOP rate to 1978 and halves the
bytes; ``ICN_LL`` keeps GenZ's default 1 us):

* TTFT ~ ``prefill_moddeling(model, batch_size=1, input_tokens=isl, system_name=H200,
  bits, tensor_parallel=tp, system_eff=E)["Latency"]``: one request's prefill on an idle
  engine. This is the column compared. GenZ has no queue, so it cannot see a prompt
  waiting behind other prompts or sharing steps with decodes; the prefill of the whole
  batch at once (``batch_size=concurrency``, the synchronised start of a closed loop) is
  reported too, as ``genz_ttft_batch_ms`` in the JSON and a second summary line.
* TPOT ~ ``decode_moddeling(model, batch_size=concurrency, input_tokens=isl,
  output_tokens=osl // 2, Bb=1, ...)["Latency"]``: one decode step of the full batch at
  the mean context ``isl + osl/2`` (``Bb=1``: no beam search; GenZ's default is 4).
* ``bits`` is the row's precision and applies to weights, activations and KV cache alike
  (GenZ has one precision knob). ``system_eff`` (``--genz-efficiency``, default GenZ's own
  default 1.0) scales compute and memory rates.
* GenZ refuses a point whose weights + KV cache for the whole batch exceed the GPU memory
  (``ValueError: All params would not fit on chip``); such a point gets no GenZ value
  (reason listed), whereas a real engine (and hermes) queues or preempts instead.

Usage (from the repository root; a full run takes about 3.5 to 4 CPU-minutes: 3.5 minutes of
wall time with the default 2 worker processes on a 2-core machine shared with other jobs)::

    pip install genz-llm        # not a hermes dependency
    python benchmarks/compare_genz.py [--data FILE] [--limit N] [--json OUT] [--jobs N]
        [--hermes plain|validate] [--requests-per-client K] [--kv-cache auto|fp8|bf16]
        [--genz-efficiency E]

GenZ writes one small CSV per model it builds under ``/tmp/genz/data/model/`` (its own
fixed path).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / ".." / "shared" / "realdata" / "aiconfigurator_silicon_h200.csv"

# H200 SXM datasheet figures in GenZ's units: TFLOP/s (bf16 dense), GB, GB/s, GB/s per direction.
GENZ_H200 = {"Flops": 989, "Memory_size": 141, "Memory_BW": 4800, "ICN": 450, "real_values": True}

# (substring of the lower-cased model_path, hermes catalog name, GenZ model name)
MODELS = [
    ("llama-3.1-8b", "llama-3.1-8b", "meta-llama/Llama-3.1-8B"),
    ("llama-3.1-70b", "llama-3.1-70b", "meta-llama/Llama-3.1-70B"),
]
PRECISIONS = {"fp8", "bf16"}
REQUIRED = ["id", "backend", "model_path", "system", "precision", "mode", "isl", "osl",
            "batch_size", "tp_size", "pp_size", "silicon_ttft_ms", "silicon_tpot_ms"]

GENZ_MISSING = ("GenZ is not installed; it is not a hermes dependency. Install it with\n"
                "    pip install genz-llm\n"
                "and run this script again.")


# --------------------------------------------------------------------------- data

def map_model(model_path: str):
    p = model_path.lower()
    for key, hermes_name, genz_name in MODELS:
        if key in p:
            return hermes_name, genz_name
    return None


def load_points(path: Path):
    """Read the CSV; return (selected points, {reason: count} for the rows left out)."""
    if not path.is_file():
        sys.exit(f"error: {path}: no such file")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            sys.exit(f"error: {path}: missing column {missing[0]!r} (not an aiconfigurator silicon table?)")
        rows = list(reader)
    points, skipped = [], {}

    def skip(reason):
        skipped[reason] = skipped.get(reason, 0) + 1

    for r in rows:
        if r["mode"] != "agg":
            skip(f"mode {r['mode']} (disaggregated)")
            continue
        models = map_model(r["model_path"])
        if models is None:
            skip("model not Llama-3.1-8B/70B (not modelled by both tools)")
            continue
        if r["precision"] not in PRECISIONS:
            skip(f"precision {r['precision']}")
            continue
        if int(float(r["pp_size"] or 1)) != 1:
            skip("pp_size > 1")
            continue
        if r["system"] != "h200_sxm":
            skip(f"system {r['system']}")
            continue
        points.append({
            "id": r["id"], "backend": r["backend"], "model_path": r["model_path"],
            "hermes_model": models[0], "genz_model": models[1], "precision": r["precision"],
            "tp": int(float(r["tp_size"])), "isl": int(float(r["isl"])), "osl": int(float(r["osl"])),
            "concurrency": int(float(r["batch_size"])),
            "measured_ttft_ms": float(r["silicon_ttft_ms"]), "measured_tpot_ms": float(r["silicon_tpot_ms"]),
        })
    return points, skipped


# --------------------------------------------------------------------------- hermes

def kv_dtype(point, rule):
    if rule != "auto":
        return rule
    return point["precision"]  # fp8 checkpoint -> fp8 KV cache, bf16 -> bf16


def hermes_scenario(p, kv_rule, requests_per_client=2):
    c = p["concurrency"]
    return {
        "name": f"compare-genz-{p['id']}",
        "seed": 0,
        "workload": {"type": "closed_loop", "concurrency": c, "isl": p["isl"], "osl": p["osl"],
                     "num_requests": requests_per_client * c},
        "clients": [{
            "name": "m",
            "device": {"type": "gpu", "preset": "h200_sxm"},
            "stage": {
                "type": "llm_serving", "model": p["hermes_model"],
                "precision": {"weights": p["precision"], "activations": "bf16",
                              "kv_cache": kv_dtype(p, kv_rule)},
                "parallelism": {"tp": p["tp"]},
                "max_num_seqs": max(256, c),
                "max_num_batched_tokens": 8192,
                "max_model_len": p["isl"] + p["osl"],
                "batching": {"type": "chunked_prefill"},
            },
        }],
    }


_VALIDATE_POINTS: dict = {}


def run_hermes_validate(p, kv_rule, data):
    """The point as ``hermes validate serving`` simulates it (its module is imported here so
    that the plain mode does not depend on it)."""
    from hermes_plugins.validation import serving

    if data not in _VALIDATE_POINTS:
        _VALIDATE_POINTS[data] = {q.id: q for q in serving.read_points(Path(data))}
    q = _VALIDATE_POINTS[data][p["id"]]
    reason = serving.unsupported_reason(q)
    if reason:
        raise RuntimeError(f"hermes validate serving: {reason}")
    return serving.simulate(q, serving.Options(kv=kv_rule))


def run_hermes(p, kv_rule, requests_per_client=2, mode="plain", data=None):
    from hermes_core import load_scenario, run

    t0 = time.perf_counter()
    out = {"hermes_ttft_ms": None, "hermes_tpot_ms": None, "hermes_note": ""}
    if mode == "validate":
        try:
            out["hermes_ttft_ms"], out["hermes_tpot_ms"] = run_hermes_validate(p, kv_rule, data)
        except Exception as e:
            out["hermes_note"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        out["hermes_wall_s"] = time.perf_counter() - t0
        return out
    try:
        s = run(load_scenario(hermes_scenario(p, kv_rule, requests_per_client))).summary
        out["hermes_ttft_ms"] = s["ttft_ms"]["mean"]
        out["hermes_tpot_ms"] = s["tpot_ms"]["mean"]
        req = s["requests"]
        if req["completed"] < req["total"]:
            out["hermes_note"] = f"{req['completed']} of {req['total']} completed"
        if s.get("preemptions"):
            n = s["preemptions"] if isinstance(s["preemptions"], int) else s["preemptions"].get("total", "")
            out["hermes_note"] = (out["hermes_note"] + f" preemptions {n}").strip()
    except Exception as e:  # a CapacityError etc.: recorded, not fatal
        out["hermes_note"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    out["hermes_wall_s"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- GenZ

def import_genz():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from GenZ import decode_moddeling, prefill_moddeling  # noqa: F401
    except ImportError:
        return False
    return True


def run_genz(p, eff):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from GenZ import decode_moddeling, prefill_moddeling

    common = dict(model=p["genz_model"], system_name=dict(GENZ_H200), bits=p["precision"],
                  tensor_parallel=p["tp"], system_eff=eff)
    out = {"genz_ttft_ms": None, "genz_ttft_batch_ms": None, "genz_tpot_ms": None, "genz_note": ""}
    notes = []
    t0 = time.perf_counter()

    def call(key, fn, **kw):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[key] = float(fn(**common, **kw)["Latency"])
        except ValueError as e:  # "All params would not fit on chip ..."
            msg = str(e).splitlines()[0]
            notes.append(f"{key}: " + ("does not fit in 141 GB" if "fit on chip" in msg else msg[:120]))

    call("genz_ttft_ms", prefill_moddeling, batch_size=1, input_tokens=p["isl"])
    call("genz_tpot_ms", decode_moddeling, batch_size=p["concurrency"], input_tokens=p["isl"],
         output_tokens=p["osl"] // 2, Bb=1)
    t1 = time.perf_counter()
    call("genz_ttft_batch_ms", prefill_moddeling, batch_size=p["concurrency"], input_tokens=p["isl"])
    out["genz_wall_s"] = t1 - t0  # the two calls compared (prefill b=1 + decode)
    out["genz_batch_prefill_wall_s"] = time.perf_counter() - t1
    out["genz_note"] = "; ".join(notes)
    return out


# --------------------------------------------------------------------------- driver

def evaluate(args):
    p, kv_rule, eff, requests_per_client, mode, data = args
    row = dict(p)
    row.update(run_genz(p, eff))
    row.update(run_hermes(p, kv_rule, requests_per_client, mode, data))
    for key, m in (("hermes_ttft", "ttft"), ("hermes_tpot", "tpot"), ("genz_ttft", "ttft"),
                   ("genz_tpot", "tpot"), ("genz_ttft_batch", "ttft")):
        pred, meas = row[f"{key}_ms"], row[f"measured_{m}_ms"]
        row[f"{key}_ape"] = None if pred is None else abs(pred - meas) / meas * 100
        row[f"{key}_ratio"] = None if pred is None else pred / meas
    return row


def stats(values, ratios=None):
    v = [x for x in values if x is not None]
    if not v:
        return {"n": 0, "median": None, "mean": None}
    out = {"n": len(v), "median": statistics.median(v), "mean": statistics.fmean(v)}
    if ratios is not None:  # predicted / measured: > 1 over-predicts, < 1 under-predicts
        out["median_ratio"] = statistics.median([x for x in ratios if x is not None])
    return out


def fmt(x, nd=1):
    if x is None:
        return "-"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def summarise(rows):
    both = [r for r in rows if None not in (r["hermes_ttft_ms"], r["hermes_tpot_ms"],
                                              r["genz_ttft_ms"], r["genz_tpot_ms"])]
    out = {"points": len(rows), "points_both_tools": len(both)}
    for name, subset in (("all", rows), ("both", both)):
        out[name] = {
            k: stats([r[f"{k}_ape"] for r in subset], [r[f"{k}_ratio"] for r in subset])
            for k in ("hermes_ttft", "genz_ttft", "genz_ttft_batch", "hermes_tpot", "genz_tpot")
        }
    groups = {}
    for r in rows:
        groups.setdefault(f"{r['hermes_model']} {r['backend']}", []).append(r)
    out["groups"] = {
        g: {f"{tool}_{m}": stats([r[f"{tool}_{m}_ape"] for r in rs])
            for tool in ("hermes", "genz") for m in ("ttft", "tpot")}
        for g, rs in sorted(groups.items())
    }
    out["wall_s_per_point"] = {
        "hermes": stats([r["hermes_wall_s"] for r in rows]),
        "genz": stats([r["genz_wall_s"] for r in rows]),
        "genz_batch_prefill": stats([r["genz_batch_prefill_wall_s"] for r in rows]),
    }
    out["wall_s_total"] = {
        "hermes": sum(r["hermes_wall_s"] for r in rows),
        "genz": sum(r["genz_wall_s"] for r in rows),
    }
    return out


def print_table(rows):
    head = ["point", "C", "meas TTFT", "hermes", "GenZ", "APE h%", "APE G%",
            "meas TPOT", "hermes", "GenZ", "APE h%", "APE G%", "t_h s", "t_G s"]
    body = []
    for r in rows:
        point = f"{r['hermes_model'].split('-')[-1]} {r['backend']} tp{r['tp']} {r['isl']}/{r['osl']}"
        body.append([point, str(r["concurrency"]),
                     fmt(r["measured_ttft_ms"]), fmt(r["hermes_ttft_ms"]), fmt(r["genz_ttft_ms"]),
                     fmt(r["hermes_ttft_ape"], 0), fmt(r["genz_ttft_ape"], 0),
                     fmt(r["measured_tpot_ms"], 2), fmt(r["hermes_tpot_ms"], 2), fmt(r["genz_tpot_ms"], 2),
                     fmt(r["hermes_tpot_ape"], 0), fmt(r["genz_tpot_ape"], 0),
                     fmt(r["hermes_wall_s"], 2), fmt(r["genz_wall_s"], 2)])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print("TTFT and TPOT in ms; APE = |predicted - measured| / measured in %; t = wall time per point")
    print(line(head))
    print(line(["-" * w for w in widths]))
    for b in body:
        print(line(b))
    notes = [(r["id"], r["hermes_note"], r["genz_note"]) for r in rows if r["hermes_note"] or r["genz_note"]]
    if notes:
        print(f"\nnotes ({len(notes)} points):")
        for pid, hn, gn in notes:
            print(f"  {pid}: " + "; ".join(x for x in (f"hermes: {hn}" if hn else "", f"GenZ: {gn}" if gn else "") if x))


def print_summary(s, skipped):
    def ape_line(label, st):
        if not st["n"]:
            return f"  {label:<38} n=0"
        return (f"  {label:<38} n={st['n']:<4} median {st['median']:6.1f} %   mean {st['mean']:7.1f} %"
                f"   median predicted/measured {st['median_ratio']:.2f}")

    print(f"\nrows left out: {sum(skipped.values())}")
    for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4d}  {reason}")
    print(f"\nAPE summary ({s['points']} points; {s['points_both_tools']} modelled by both tools)")
    for name, title in (("all", "every point each tool modelled"), ("both", "points both tools modelled")):
        print(f" {title}:")
        a = s[name]
        print(ape_line("TTFT hermes (closed-loop mean)", a["hermes_ttft"]))
        print(ape_line("TTFT GenZ (prefill, batch 1)", a["genz_ttft"]))
        print(ape_line("TTFT GenZ (prefill, batch = C)", a["genz_ttft_batch"]))
        print(ape_line("TPOT hermes (closed-loop mean)", a["hermes_tpot"]))
        print(ape_line("TPOT GenZ (decode, batch = C)", a["genz_tpot"]))
    print(" per group (median APE %: TTFT hermes / GenZ, TPOT hermes / GenZ):")
    for g, a in s["groups"].items():
        med = lambda k: fmt(a[k]["median"], 1)
        print(f"  {g:<26} n={a['hermes_ttft']['n']:<4} TTFT {med('hermes_ttft'):>6} / {med('genz_ttft'):>6}"
              f"   TPOT {med('hermes_tpot'):>6} / {med('genz_tpot'):>6}")
    w = s["wall_s_per_point"]
    print(f"\nwall time per point: hermes median {w['hermes']['median']:.2f} s, mean {w['hermes']['mean']:.2f} s "
          f"(total {s['wall_s_total']['hermes']:.1f} s); GenZ (prefill + decode) median "
          f"{w['genz']['median']:.2f} s, mean {w['genz']['mean']:.2f} s (total {s['wall_s_total']['genz']:.1f} s)")


def git_state():
    """The repository's commit and whether the working tree differs from it (hermes's numbers
    depend on the performance model in the tree)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head, "modified": dirty}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="aiconfigurator silicon CSV (default: ../shared/realdata/aiconfigurator_silicon_h200.csv "
                         "relative to the repository root)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N selected points")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="write per-point results and the summary")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes evaluating points in parallel (default: min(2, CPUs)); each point "
                         "runs both tools in the same worker, so their wall times stay comparable")
    ap.add_argument("--kv-cache", choices=["auto", "fp8", "bf16"], default="auto",
                    help="hermes KV-cache dtype; auto (default): the weights' precision")
    ap.add_argument("--hermes", choices=["plain", "validate"], default="plain",
                    help="plain (default): the closed-loop scenario of benchmarks/README.md; validate: each point "
                         "as `hermes validate serving` simulates it (needs hermes_plugins.validation.serving)")
    ap.add_argument("--requests-per-client", type=int, default=2, metavar="K",
                    help="hermes closed loop sends K * concurrency requests (default 2)")
    ap.add_argument("--genz-efficiency", type=float, default=1.0,
                    help="GenZ system_eff (compute and memory efficiency; default 1.0, GenZ's default)")
    args = ap.parse_args(argv)

    if not import_genz():
        print(GENZ_MISSING, file=sys.stderr)
        return 2
    try:
        from importlib.metadata import version
        genz_version = version("genz-llm")
    except Exception:
        genz_version = "unknown"
    import hermes_core

    points, skipped = load_points(args.data.resolve())
    if args.limit is not None:
        points = points[: args.limit]
    if not points:
        sys.exit(f"error: {args.data}: no row both tools can model (aggregated, Llama-3.1-8B/70B, fp8/bf16, pp 1)")
    if args.hermes == "validate":
        try:
            from hermes_plugins.validation import serving  # noqa: F401
        except ImportError as e:
            sys.exit(f"error: --hermes validate needs hermes_plugins.validation.serving ({e})")
    print(f"{len(points)} points from {args.data}; hermes {hermes_core.__version__} ({args.hermes}), "
          f"GenZ (genz-llm) {genz_version}; {args.jobs} job(s)", flush=True)

    t0 = time.perf_counter()
    data = str(args.data.resolve())
    work = [(p, args.kv_cache, args.genz_efficiency, args.requests_per_client, args.hermes, data)
            for p in points]
    rows = []
    pool = ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else None
    try:
        results = pool.map(evaluate, work) if pool else map(evaluate, work)
        for i, row in enumerate(results, 1):
            rows.append(row)
            if i % 20 == 0:
                print(f"  {i}/{len(work)} points, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        if pool:
            pool.shutdown()
    total = time.perf_counter() - t0

    print_table(rows)
    s = summarise(rows)
    s["wall_s_run"] = total
    print_summary(s, skipped)
    print(f"whole run: {total:.1f} s wall on {os.cpu_count()} CPU(s), {args.jobs} job(s)")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "data": str(args.data), "hermes_version": hermes_core.__version__, "genz_version": genz_version,
            "genz_system": GENZ_H200, "genz_system_eff": args.genz_efficiency, "kv_cache_rule": args.kv_cache,
            "requests_per_client": args.requests_per_client, "hermes_mode": args.hermes,
            "hermes_git": git_state(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "jobs": args.jobs},
            "skipped": skipped, "summary": s, "points": rows,
        }
        args.json.write_text(json.dumps(doc, indent=1, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
