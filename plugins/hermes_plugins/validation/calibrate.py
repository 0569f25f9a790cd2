"""``hermes calibrate``: fit a GPU's efficiency factors to measured kernel tables and write a
device YAML.

::

    hermes calibrate --format aiconfigurator --tables DIR --preset h100_sxm -o my_h100.yaml
    hermes calibrate --format vidur-mlp --tables h100/ --preset h100_sxm -o my_h100.yaml

The fit is :func:`hermes_plugins.calibration.calibrate` (the procedure of
``benchmarks/fit_gpu_efficiency.py``); the procedure a user follows is in
``docs/calibration.md``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table as RichTable

from ..calibration import LABELS, by_bucket, calibrate, device_yaml, load_aiconfigurator, load_vidur_mlp


def _preset(ctx, param, value: str) -> str:
    from ..devices import ALIASES, PRESETS

    key = ALIASES.get(value, value)
    if key not in PRESETS:
        raise click.BadParameter(f"unknown preset '{value}'; allowed: {', '.join(sorted(PRESETS))} "
                                 f"(aliases: {', '.join(sorted(ALIASES))})")
    return key


def _kernels(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, kernel = v.partition("=")
        if not sep or not key or not kernel:
            raise click.BadParameter(f"expected KIND[:DTYPE]=KERNEL_SOURCE, got '{v}'")
        out[key.strip()] = kernel.strip()
    return out


def _fmt(e: dict) -> str:
    return f"{e['median_ape']:.1f} / {e['mean_ape']:.1f}" if e.get("n") else "-"


def print_errors(console: Console, cal) -> None:
    """One row per table: rows, and median / mean APE of the hand-set factors, the
    preset's shipped factors and the calibrated ones."""
    t = RichTable(title=f"error vs measurement ({cal.preset}): median / mean APE %")
    for c in ("table", "rows", "hand-set", "preset default", "calibrated"):
        t.add_column(c, justify="left" if c == "table" else "right")
    for kind, e in cal.errors.items():
        t.add_row(LABELS.get(kind, kind), f"{e['calibrated']['n']:,}", _fmt(e["hand-set"]), _fmt(e["preset"]),
                  f"[bold]{_fmt(e['calibrated'])}")
    console.print(t)


M_BUCKETS = [(1, 16), (17, 128), (129, 512), (513, 4096), (4097, 16384)]
#: Per table kind: the (column of the rows, inclusive ranges, label) its errors are broken down by.
BUCKETS = {
    "gemm": [(lambda c: c["m"], M_BUCKETS, "m"),
             (lambda c: np.minimum(c["n"], c["k"]), [(128, 512), (513, 2048), (2049, 65536)], "min(n,k)")],
    "gemm_fp8": [(lambda c: c["m"], M_BUCKETS, "m")],
    "moe": [(lambda c: c["tokens"], [(1, 64), (65, 1024), (1025, 2**40)], "tokens")],
    "context_attention": [(lambda c: c["isl"], [(1, 256), (257, 2048), (2049, 16384)], "isl"),
                          (lambda c: c["head_dim"], [(64, 64), (128, 128), (192, 192), (256, 256)], "head_dim")],
    "generation_attention": [(lambda c: c["step"], [(1, 255), (256, 4095), (4096, 131071)], "kv_len"),
                             (lambda c: c["batch"], [(1, 64), (65, 256), (257, 2048)], "batch")],
    "allreduce": [(lambda c: c["num_gpus"], [(2, 2), (4, 4), (8, 8)], "gpus"),
                  (lambda c: c["nbytes"], [(1, 131072), (131073, 8388608), (8388609, 2**40)], "bytes")],
}


def report_json(cal) -> dict:
    """The full result: device mapping, errors per table and by shape bucket (:data:`BUCKETS`)."""
    from ..calibration import make_gpu, predict_all

    eff = {k: v for k, v in cal.efficiency.items() if k != "source"}
    preds = predict_all(make_gpu(cal.preset, eff, cal.link or None, base="preset"), cal.rows)
    buckets = {}
    for kind, t in cal.rows.items():
        c, meas = t.cols, t.cols["latency_s"]
        buckets[kind] = {k: v for col, ranges, label in BUCKETS[kind]
                         for k, v in by_bucket(preds[kind], meas, col(c), ranges, label).items()}
    return {"device": cal.device(), "errors": cal.errors, "errors_by_bucket": buckets, "gemm_tiles": cal.gemm_tiles,
            "sources": cal.sources, "notes": cal.notes}


@click.command("calibrate")
@click.option("--format", "fmt", type=click.Choice(["aiconfigurator", "vidur-mlp"]), default="aiconfigurator",
              show_default=True, help="Table format: aiconfigurator per-operator tables (GEMM, attention, "
              "all-reduce; parquet or CSV) or Vidur *_mlp.csv profiles (GEMMs only).")
@click.option("--tables", "-t", "tables", multiple=True, required=True, type=click.Path(),
              help="A table file or a directory of them (repeatable).")
@click.option("--preset", default="h100_sxm", show_default=True, callback=_preset,
              help="GPU preset whose datasheet figures the factors apply to: a100_sxm_80gb, h100_sxm, "
              "h200_sxm or b200 (aliases a100, h100, h200).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Device YAML to write.")
@click.option("--kernel", "kernels", multiple=True, callback=_kernels, metavar="KIND[:DTYPE]=KERNEL",
              help="kernel_source to use when a table holds several, e.g. allreduce=NCCL (repeatable).")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Also write the full result (errors per table and per shape bucket) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the error table.")
def calibrate_command(fmt, tables, preset, output, kernels, report, quiet) -> None:
    """Fit a GPU's efficiency factors (GEMM compute/memory efficiency, launch overhead,
    occupancy, attention efficiencies, link bandwidth share, collective latency) to measured
    kernel tables and write a device YAML (type: gpu) for scenarios."""
    console = Console()
    err = Console(stderr=True)
    if fmt == "aiconfigurator":
        loaded = load_aiconfigurator(tables, kernels)
    else:
        if kernels:
            raise click.BadParameter("--kernel applies to --format aiconfigurator only", param_hint="--kernel")
        loaded = load_vidur_mlp(tables)
    if not quiet:
        for kind, t in loaded.items():
            label = "GEMM" if kind == "gemm" else LABELS.get(kind, kind)  # all dtypes; the fit splits them
            err.print(f"read {label}: {len(t):,} rows from {', '.join(f.name for f in t.files)}",
                      highlight=False)
        err.print(f"fitting {preset} (bounded Nelder-Mead on mean |log(predicted / measured)|)")
    log = (lambda s: None) if quiet else (lambda s: err.print(s, highlight=False))
    cal = calibrate(loaded, preset, log=log)
    command = " ".join(["hermes calibrate --format", fmt, *(f"--tables {shlex.quote(t)}" for t in tables),
                        "--preset", preset, *(f"--kernel {shlex.quote(k + '=' + v)}" for k, v in kernels.items()),
                        "-o", shlex.quote(output)])
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(device_yaml(cal, command))
    print_errors(console, cal)
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(report_json(cal), indent=2) + "\n")
    if not quiet:
        for n in cal.notes:
            console.print(f"note: {n}", highlight=False)
    console.print(f"wrote {out}" + (f" and {report}" if report else ""), highlight=False)
