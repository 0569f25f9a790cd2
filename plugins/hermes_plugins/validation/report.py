"""Predicted-versus-measured reports shared by the ``hermes validate`` commands.

A validation produces rows, each a dict with group columns, ``predicted`` and
``measured`` (same unit), from which :func:`ape_summary` computes the absolute
percentage error ``APE = |predicted - measured| / measured * 100`` and its median and mean
per group and overall. Rows the simulator cannot model are kept apart as
``(row description, reason)`` and always reported.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def ape(predicted: float, measured: float) -> float:
    """Absolute percentage error (%) of ``predicted`` against ``measured`` (> 0)."""
    return abs(predicted - measured) / measured * 100.0


def _stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "median_ape": float(np.median(a)), "mean_ape": float(a.mean()),
            "p90_ape": float(np.percentile(a, 90))}


def ape_summary(rows: Iterable[dict[str, Any]], groups: Sequence[str], metric: str = "") -> dict[str, Any]:
    """``{"overall": stats, "groups": {column: {value: stats}}}`` over ``rows`` that hold
    ``predicted`` and ``measured`` (``metric`` prefixes those keys, e.g. ``ttft_``). Stats:
    ``n``, ``median_ape``, ``mean_ape``, ``p90_ape`` (%)."""
    pk, mk = f"{metric}predicted", f"{metric}measured"
    rows = [r for r in rows if r.get(pk) is not None and r.get(mk)]
    if not rows:
        return {"overall": {"n": 0}, "groups": {}}
    errs = [ape(r[pk], r[mk]) for r in rows]
    out: dict[str, Any] = {"overall": _stats(errs), "groups": {}}
    for g in groups:
        by: dict[Any, list[float]] = {}
        for r, e in zip(rows, errs):
            by.setdefault(r[g], []).append(e)
        out["groups"][g] = {str(k): _stats(v) for k, v in sorted(by.items(), key=lambda kv: str(kv[0]))}
    return out


def print_summary(console: Console, title: str, summary: dict[str, Any], unsupported: Sequence[tuple[str, str]] = ()) -> None:
    """Render one table: a row per group value and an overall row."""
    t = Table(title=title)
    for c in ("group", "value", "n", "median APE %", "mean APE %", "p90 APE %"):
        t.add_column(c, justify="right" if c not in ("group", "value") else "left")
    for g, vals in summary["groups"].items():
        for v, s in vals.items():
            t.add_row(g, v, str(s["n"]), f"{s['median_ape']:.1f}", f"{s['mean_ape']:.1f}", f"{s['p90_ape']:.1f}")
    o = summary["overall"]
    if o.get("n"):
        t.add_row("[bold]overall", "", str(o["n"]), f"[bold]{o['median_ape']:.1f}", f"{o['mean_ape']:.1f}", f"{o['p90_ape']:.1f}")
    console.print(t)
    if unsupported:
        reasons = Counter(r for _, r in unsupported)
        console.print(f"[yellow]{len(unsupported)} rows not simulated:[/] "
                      + "; ".join(f"{n} x {r}" for r, n in reasons.most_common()))


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the per-row CSV (all keys of all rows, in first-seen order)."""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
