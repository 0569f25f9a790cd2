"""``hermes validate ops``: per-operator kernel times, predicted by a device model versus
measured.

Format ``vidur-mlp``: the per-operator profiles of microsoft/vidur
(``data/profiling/compute/<gpu>/<model>/mlp.csv``). One row per (``num_tokens``,
``num_tensor_parallel_workers``); the model's dimensions are columns (``n_head``,
``n_kv_head``, ``n_embd``, ``n_expanded_embd``, ``vocab_size``, ``use_gated_mlp``) and each
operator's kernel time is ``time_stats.<op>.{min,max,mean,median,std}`` in ms. Vidur sums
the GPU time of the kernels each operator launches (PyTorch profiler, fp16 weights and
activations, 20 repetitions), so there is no launch gap in the measurement.

Each operator is priced by the device's own methods on the shapes hermes's step cost model
uses (:meth:`hermes_core.ModelSpec.layer_operators` on one tensor-parallel shard):

=========================  ===================  =====================================
Vidur operator             hermes operator      priced as
=========================  ===================  =====================================
attn_pre_proj              qkv_proj             ``gemm_time(m, (h_q + 2 h_kv) d / tp, h)``
attn_post_proj             o_proj               ``gemm_time(m, h, h_q d / tp)``
mlp_up_proj                gate_up_proj         ``gemm_time(m, 2 I / tp, h)`` (``I / tp`` if not gated)
mlp_down_proj              down_proj            ``gemm_time(m, h, I / tp)``
emb                        embedding            ``memory_time(m * 2 h * bytes)``
input_layernorm            rms_norm             ``memory_time(m * 2 h * bytes)``
post_attention_layernorm   rms_norm             ``memory_time(m * 2 h * bytes)``
attn_rope                  rope                 ``memory_time(m * 2 (h_q + h_kv) d / tp * bytes)``
mlp_act                    act_mul              ``memory_time(m * 3 I / tp * bytes)`` (``2 I / tp`` if not gated)
add                        residual_add         ``memory_time(m * 3 h * bytes)``
=========================  ===================  =====================================

with ``m = num_tokens``, ``h = n_embd``, ``d = n_embd / n_head`` and ``I = n_expanded_embd``.
Vidur's eager PyTorch model runs the norms and the residual add as separate kernels, so they
are priced unfused (``rms_norm``, ``residual_add``), not as the serving engines' fused
add + RMSNorm of :meth:`~hermes_core.ModelSpec.layer_operators`.
The measured value compared is the median.

Device check: a file's rows must come from the device family hermes is asked to predict.
The family is read from a ``device`` column when the file has one, otherwise from the
file's path (Vidur keeps each GPU's profiles in a folder named after it: ``h100/``,
``a100/``); only known families are recognised (those of the gpu presets: a100, h100, h200,
b200). A mismatch is an error naming the file and where the family came from;
``--no-device-check`` compares anyway (e.g. to see how far an H100 model is from A100
data). A device that is not a gpu preset has no family and is not checked.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import yaml
from rich.console import Console

from hermes_core import DTYPE_BYTES, ConfigError, HardwareNode, ModelSpec, WorkloadError, default_registry

from ..calibration import VIDUR_ZERO_INPUT_REASON, vidur_zero_input
from .report import ape_summary, print_summary, write_rows

FORMATS = ("vidur-mlp",)

#: Columns every vidur-mlp file must have besides the ``time_stats.*`` ones.
MODEL_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp",
                 "num_tokens", "num_tensor_parallel_workers")

#: Vidur operator -> hermes operator (ModelSpec names).
VIDUR_OPERATORS = {
    "emb": "embedding",
    "input_layernorm": "rms_norm",
    "attn_pre_proj": "qkv_proj",
    "attn_rope": "rope",
    "attn_post_proj": "o_proj",
    "post_attention_layernorm": "rms_norm",
    "mlp_up_proj": "gate_up_proj",
    "mlp_act": "act_mul",
    "mlp_down_proj": "down_proj",
    "add": "residual_add",
}

_TIME_COL = re.compile(r"^time_stats\.(?P<op>.+)\.median$")


# ---------------------------------------------------------------------------- device

def known_families() -> dict[str, str]:
    """Device family tokens (``a100``, ``h100``, ...) -> a gpu preset of that family."""
    from hermes_plugins.devices import ALIASES, PRESETS

    fams = {name.split("_")[0]: name for name in PRESETS}
    fams.update({a: p for a, p in ALIASES.items()})
    return fams


def build_device(spec: str, registry=None) -> HardwareNode:
    """A device from ``--device``: a gpu preset name (``h100_sxm``, ``a100``), the name of a
    registered device type, or a YAML file holding a device mapping (``{type: gpu, preset:
    h100_sxm, efficiency: {...}}``, as ``hermes calibrate`` writes; ``type`` defaults to
    ``gpu`` and a top-level ``device:`` key is unwrapped). Raises :class:`ConfigError` naming the option or the file."""
    reg = registry or default_registry()
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--device: file '{spec}' does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if isinstance(data, dict) and set(data) == {"device"}:
            data = data["device"]
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a device mapping such as "
                              "{type: gpu, preset: h100_sxm, efficiency: {...}}")
        data = {"type": "gpu", **data}  # a gpu unless the file says otherwise
        where = str(path)
    elif spec in reg.names("devices"):
        data, where = {"type": spec}, "--device"
    else:
        data, where = {"type": "gpu", "preset": spec}, "--device"
    comp, cfg = reg.validate("devices", data, where)
    return comp.obj(cfg)


def device_family(device: HardwareNode) -> str | None:
    """``h100`` for a gpu built from an H100 preset; ``None`` for other devices."""
    preset = getattr(getattr(device, "config", None), "preset", None)
    if not isinstance(preset, str):
        return None
    return preset.split("_")[0].lower()


def _families_in(text: str) -> list[str]:
    fams = known_families()
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t in fams]


def check_device(path: Path, header: Sequence[str], rows: Sequence[dict[str, str]], device: HardwareNode) -> None:
    """Raise :class:`WorkloadError` if the file's rows were measured on another device
    family than ``device`` (see the module docstring for the rule)."""
    fam = device_family(device)
    if fam is None:
        return
    want = f"--device is {device.name} ({fam})"
    if "device" in header:
        for i, r in enumerate(rows, start=2):
            found = _families_in(r.get("device") or "")
            if found and found[-1] != fam:
                raise WorkloadError(f"{path}:{i}: column 'device' says {r['device']!r} ({found[-1]}), but {want}; "
                                    "pass a matching --device, or --no-device-check to compare anyway")
        return
    parts = [p for p in path.resolve().parts[-4:]]
    for part in reversed(parts):
        found = _families_in(part if part != parts[-1] else Path(part).stem)
        if found:
            if found[-1] != fam:
                raise WorkloadError(
                    f"{path}: measured on {found[-1]} (no 'device' column; family taken from the path "
                    f"component '{part}'), but {want}; pass --device {known_families()[found[-1]]} or a "
                    "device YAML of that preset, or --no-device-check to compare anyway")
            return


# ---------------------------------------------------------------------------- file

def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file; :class:`WorkloadError` naming the file if it cannot be
    read."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = list(reader)
    except FileNotFoundError:
        raise WorkloadError(f"{path}: file does not exist") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WorkloadError(f"{path}: not a CSV file ({exc})") from None
    return header, rows


def check_vidur_mlp_header(path: Path, header: Sequence[str]) -> list[str]:
    """The operator names of a vidur-mlp header (``time_stats.<op>.median`` columns).

    Raises :class:`WorkloadError` naming the file and the missing column(s): all model
    columns missing means the file is in another format."""
    missing = [c for c in MODEL_COLUMNS if c not in header]
    ops = [m.group("op") for c in header if (m := _TIME_COL.match(c))]
    if len(missing) == len(MODEL_COLUMNS) or (not ops and missing):
        raise WorkloadError(
            f"{path}: not in vidur-mlp format: no columns {', '.join(MODEL_COLUMNS)} and no "
            "time_stats.<operator>.median columns (expected Vidur's profiling/compute/<gpu>/<model>/mlp.csv)")
    if missing:
        also = f"; also missing: {', '.join(missing[1:])}" if missing[1:] else ""
        raise WorkloadError(f"{path}: missing column '{missing[0]}' (vidur-mlp format needs "
                            f"{', '.join(MODEL_COLUMNS)}){also}")
    if not ops:
        raise WorkloadError(f"{path}: no time_stats.<operator>.median column (vidur-mlp format); "
                            f"known operators: {', '.join(VIDUR_OPERATORS)}")
    return ops


def _int(path: Path, line: int, row: dict[str, str], col: str) -> int:
    raw = (row.get(col) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        raise WorkloadError(f"{path}:{line}: column '{col}': not a number (got {raw!r})") from None
    if not math.isfinite(v) or v != int(v) or v < 0:
        raise WorkloadError(f"{path}:{line}: column '{col}': must be a whole number >= 0 (got {raw!r})")
    return int(v)


def _bool(path: Path, line: int, row: dict[str, str], col: str) -> bool:
    raw = (row.get(col) or "").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise WorkloadError(f"{path}:{line}: column '{col}': expected True or False (got {raw!r})")


def _measured_ms(path: Path, line: int, row: dict[str, str], col: str) -> float | None:
    raw = (row.get(col) or "").strip()
    if raw == "" or raw.lower() == "nan":
        return None
    try:
        return float(raw)
    except ValueError:
        raise WorkloadError(f"{path}:{line}: column '{col}': not a number (got {raw!r})") from None


# ---------------------------------------------------------------------------- prediction

def _shard_operators(dims: dict[str, Any], tp: int) -> dict[str, tuple[str, int, int, float]]:
    """hermes operator -> (kind, n, k, activation elements per token) on one of ``tp``
    shards of a model with Vidur's dimensions."""
    h, nh = dims["n_embd"], dims["n_head"]
    spec = ModelSpec(name="vidur", hidden=h, layers=1, heads=nh, kv_heads=dims["n_kv_head"],
                     head_dim=h // nh, intermediate=dims["n_expanded_embd"], vocab=dims["vocab_size"],
                     max_position_embeddings=4096)
    inputs, _ = spec.head_operators(tp)
    ops = {o.name: (o.kind, o.n, o.k, o.elems_per_token) for o in [*inputs, *spec.layer_operators(tp)]}
    # Vidur's eager model launches the norms and the residual add unfused
    ops["rms_norm"] = ("memory", 0, 0, 2.0 * h)
    ops["residual_add"] = ("memory", 0, 0, 3.0 * h)
    if not dims["use_gated_mlp"]:  # one up projection and an unfused activation (GELU)
        i = dims["n_expanded_embd"] // tp
        ops["gate_up_proj"] = ("gemm", i, h, 0.0)
        ops["act_mul"] = ("memory", 0, 0, 2.0 * i)
    return ops


def _unsupported_shape(dims: dict[str, Any], tp: int) -> str | None:
    h, nh, nkv, inter = dims["n_embd"], dims["n_head"], dims["n_kv_head"], dims["n_expanded_embd"]
    if tp < 1:
        return "num_tensor_parallel_workers < 1"
    if nh < 1 or nkv < 1 or h % nh:
        return f"n_embd={h} does not split into n_head={nh} heads"
    if nh % tp or nkv % tp:
        return f"n_head={nh} / n_kv_head={nkv} do not split over tp={tp}"
    if h % tp or inter % tp:
        return f"n_embd={h} / n_expanded_embd={inter} do not split over tp={tp}"
    return None


def validate_vidur_mlp(path: Path, device: HardwareNode, dtype: str, check: bool = True) -> list[dict[str, Any]]:
    """Per-(row, operator) dicts: the file's measured median and the device's prediction
    (ms), or ``predicted = None`` with a ``reason`` for what hermes cannot price (a row with a
    cell it cannot read too: ``file:line: column ...``; the rest of the file is used). ``input``
    is ``"all-zero"`` for the rows Vidur measured on an all-zero input (the down projection
    of a gated MLP: :func:`hermes_plugins.calibration.vidur_zero_input`), else
    ``"nonzero"``; they are compared like the others and reported as their own group."""
    header, rows = read_csv(path)
    ops = check_vidur_mlp_header(path, header)
    if not rows:
        raise WorkloadError(f"{path}: no data rows")
    if check:
        check_device(path, header, rows, device)
    act_b = DTYPE_BYTES[dtype]
    model = path.stem.removesuffix("_mlp") if path.stem != "mlp" else path.parent.name

    # parse, then price each (model dims, tp) group with one vectorised call per operator
    parsed = []
    unusable: list[dict[str, Any]] = []  # rows with a cell hermes cannot read: listed with the reason
    for line, r in enumerate(rows, start=2):
        try:
            dims = {c: _int(path, line, r, c) for c in MODEL_COLUMNS if c != "use_gated_mlp"}
            dims["use_gated_mlp"] = _bool(path, line, r, "use_gated_mlp")
            meas = {op: _measured_ms(path, line, r, f"time_stats.{op}.median") for op in ops}
        except WorkloadError as exc:
            unusable += [{"file": path.name, "line": line, "model": model, "operator": op, "hermes_operator":
                          VIDUR_OPERATORS.get(op) or "", "kind": "", "tp": None, "num_tokens": None, "n": None,
                          "k": None, "bytes": None, "input": "", "measured_ms": None, "predicted_ms": None,
                          "ape_pct": None, "reason": str(exc)} for op in ops]
            continue
        parsed.append((line, dims, meas))
    groups: dict[tuple, list[int]] = {}
    for i, (_, dims, _) in enumerate(parsed):
        key = tuple(sorted((k, v) for k, v in dims.items() if k != "num_tokens"))
        groups.setdefault(key, []).append(i)

    out: list[dict[str, Any] | None] = [None] * (len(parsed) * len(ops))
    for key, idx in groups.items():
        dims = dict(key)
        tp = dims["num_tensor_parallel_workers"]
        why = _unsupported_shape(dims, tp)
        shard = {} if why else _shard_operators(dims, tp)
        m = np.array([parsed[i][1]["num_tokens"] for i in idx], dtype=float)
        for j, op in enumerate(ops):
            hop = VIDUR_OPERATORS.get(op)
            kind, n, k, elems = shard.get(hop, ("", 0, 0, 0.0))
            pred = None
            if not why and hop is not None:
                if kind == "gemm":
                    pred = np.asarray(device.gemm_time(m, n, k, dtype), dtype=float) * 1e3
                else:
                    pred = np.asarray(device.memory_time(m * elems * act_b), dtype=float) * 1e3
                pred = np.broadcast_to(pred, m.shape)
            for t, i in enumerate(idx):
                line, d, meas = parsed[i]
                row = {
                    "file": path.name, "line": line, "model": model, "operator": op,
                    "hermes_operator": hop or "", "kind": kind, "tp": tp, "num_tokens": d["num_tokens"],
                    "n": n if kind == "gemm" else None, "k": k if kind == "gemm" else None,
                    "bytes": int(d["num_tokens"] * elems * act_b) if kind == "memory" else None,
                    "input": "all-zero" if vidur_zero_input(op, d["use_gated_mlp"]) else "nonzero",
                    "measured_ms": meas[op], "predicted_ms": None, "ape_pct": None, "reason": "",
                }
                if why:
                    row["reason"] = why
                elif hop is None:
                    row["reason"] = f"operator '{op}' has no hermes counterpart"
                elif meas[op] is None or meas[op] <= 0:
                    row["reason"] = "no measured median"
                else:
                    row["predicted_ms"] = float(pred[t])
                    row["ape_pct"] = abs(row["predicted_ms"] - meas[op]) / meas[op] * 100.0
                out[i * len(ops) + j] = row
    done = [r for r in out if r is not None]
    if unusable:
        order = {op: j for j, op in enumerate(ops)}
        done = sorted(done + unusable, key=lambda r: (r["line"], order[r["operator"]]))
    return done


# ---------------------------------------------------------------------------- command

def compared(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The simulated rows, with the ``predicted`` / ``measured`` keys
    :func:`~.report.ape_summary` reads (ms)."""
    return [{**r, "predicted": r["predicted_ms"], "measured": r["measured_ms"]}
            for r in rows if r["predicted_ms"] is not None]


def _summary(rows: list[dict[str, Any]], groups: Sequence[str]) -> dict[str, Any]:
    return ape_summary(compared(rows), groups)


def _unsupported(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"{r['file']}:{r['line']} {r['operator']}", r["reason"]) for r in rows if r["predicted_ms"] is None]


def _line_ranges(lines: list[int]) -> str:
    """``2-40, 45`` for sorted line numbers."""
    out: list[str] = []
    start = prev = None
    for x in sorted(set(lines)):
        if prev is not None and x == prev + 1:
            prev = x
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = x
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ", ".join(out)


def _print_unsupported(console: Console, rows: list[dict[str, Any]], limit: int = 12) -> None:
    """One line per (file, reason) of the rows not simulated, with their operators and line
    numbers; the per-row CSV has every one."""
    by: dict[tuple, list[tuple[int, str]]] = {}
    for r in rows:
        if r.get("predicted_ms") is None:
            by.setdefault((r["file"], r["reason"]), []).append((r["line"], r.get("operator", "")))
    for i, ((f, why), items) in enumerate(sorted(by.items())):
        if i == limit:
            console.print(f"  ... {len(by) - limit} more (the CSV lists every row with its reason)")
            break
        ops = sorted({op for _, op in items if op})
        what = (", ".join(ops) if len(ops) <= 4 else f"{len(ops)} operators") + "; " if ops else ""
        lines = _line_ranges([ln for ln, _ in items])
        word = "lines" if ("," in lines or "-" in lines) else "line"
        console.print(f"  [yellow]not simulated:[/] {f}: {len(items)} ({what}{word} {lines}): {why}", highlight=False)


def make_console() -> Console:
    """stdout console; at least 120 columns when not a terminal (CI logs, pipes)."""
    c = Console()
    return c if c.is_terminal or c.width >= 120 else Console(width=120)


@click.command("ops")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Format of FILE.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--device", "device_spec", required=True, metavar="DEVICE",
              help="gpu preset (h100_sxm, a100_sxm_80gb, ...), a registered device type, or a device YAML "
                   "({type: gpu, preset: ..., efficiency: {...}}, as `hermes calibrate` writes).")
@click.option("--dtype", default="fp16", show_default=True, type=click.Choice(sorted(DTYPE_BYTES)),
              help="Precision of weights and activations (Vidur profiles in fp16).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("validate-ops.csv"),
              show_default=True, help="Per-row CSV (every row, including those not simulated and why).")
@click.option("--no-device-check", is_flag=True,
              help="Compare even when the file was measured on another device family than --device.")
def ops_command(fmt: str, files: tuple[Path, ...], device_spec: str, dtype: str, output: Path,
                no_device_check: bool) -> None:
    """Compare per-operator kernel times of FILE(s) with the device model's predictions.

    Prints median / mean / p90 absolute percentage error per operator, tensor-parallel
    degree and input (Vidur's down projection of a gated MLP multiplies an all-zero input;
    see the note printed with it), and per file when there are several, and writes every
    row to --output."""
    device = build_device(device_spec)
    try:
        device.peak_flops(dtype)
    except ValueError as exc:
        raise ConfigError(f"--dtype: {exc}") from None
    console = make_console()
    all_rows: list[dict[str, Any]] = []
    for path in files:
        rows = validate_vidur_mlp(path, device, dtype, check=not no_device_check)
        all_rows += rows
        print_summary(console, f"{path.name}: {device.name} model vs measured kernel time (median, ms)",
                      _summary(rows, ["operator", "tp", "kind", "input"]), _unsupported(rows))
        _print_unsupported(console, rows)
    if len(files) > 1:
        print_summary(console, f"all {len(files)} files: {device.name} model vs measured",
                      _summary(all_rows, ["file", "kind", "operator", "tp", "input"]), _unsupported(all_rows))
    zeros = sum(r["input"] == "all-zero" for r in all_rows)
    if zeros:
        console.print(f"[yellow]note:[/] {zeros} rows (input all-zero) time a GEMM on an all-zero input: "
                      f"{VIDUR_ZERO_INPUT_REASON}", highlight=False)
    write_rows(output, all_rows)
    console.print(f"wrote {len(all_rows)} rows to {output}")
