"""Measured kernel tables and the fit of the GPU device model to them.

Shared by ``hermes calibrate`` (:mod:`hermes_plugins.validation.calibrate`), the
``gpu_profiled`` device (:mod:`hermes_plugins.profiled`) and
``benchmarks/fit_gpu_efficiency.py``. Three parts:

* **Reading.** :func:`load_aiconfigurator` reads NVIDIA aiconfigurator's per-operator tables
  (parquet, or CSV / ``.txt`` with the same columns) and :func:`load_vidur_mlp` Vidur's
  ``*_mlp.csv`` profiles, checks their columns, picks one kernel per operator and dtype,
  and returns them in hermes units (seconds, bytes) as :class:`Table` objects.
* **Fitting.** :func:`fit_gemm`, :func:`fit_attention` and :func:`fit_link` fit the
  :class:`~hermes_plugins.devices.Efficiency` fields and the link's bandwidth share and
  collective latency by minimising the mean ``|log(predicted / measured)|`` with a bounded
  Nelder-Mead (:func:`nelder_mead`, numpy only). Predictions go through the device's own
  code (``GPU.gemm_time``, ``GPU.attention_time``, ``Topology.allreduce_time``).
* **Writing.** :func:`calibrate` runs the three fits on whatever tables it is given, and
  :func:`device_yaml` renders the result as a device mapping with its provenance.

Units of the aiconfigurator tables: ``latency`` in milliseconds; ``message_size`` of the
all-reduce tables is a number of **elements** (the collector all-reduces a tensor of
``message_size`` elements; aiconfigurator's own ``query_custom_allreduce`` takes an element
count), so bytes are ``message_size * element size``.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hermes_core import HermesError, Topology

# ----------------------------------------------------------------------------- errors


class TableError(HermesError):
    """A measured table is missing, unreadable, in the wrong format or lacks a column; the
    message names the file and the column."""


PARQUET_HINT = 'reading parquet tables needs pyarrow: pip install "hermes-sim[parquet]" (or convert the table to CSV with the same columns)'

# ----------------------------------------------------------------------------- reading


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """One table file as ``{column: numpy array}``: ``.parquet`` (needs pyarrow) or
    ``.csv`` / ``.txt`` (comma-separated with a header row). Numeric columns become int64
    or float64 arrays, others arrays of str. A CSV row with the wrong number of fields, or
    a stray non-number in a numeric column, is left out and listed in the result's
    ``skipped`` (:class:`TableColumns`) rather than refusing the table. Raises
    :class:`TableError` for a missing, empty or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TableError(f"{path}: {PARQUET_HINT}") from None
        try:
            t = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
            raise TableError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
        import pyarrow.types as pat

        out = {}
        for c, col in zip(t.column_names, t.columns):
            if pat.is_integer(col.type) and col.null_count == 0:
                out[c] = col.to_numpy().astype(np.int64)
            elif pat.is_floating(col.type) or pat.is_integer(col.type):
                out[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
            else:
                out[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=str)
        return out
    if suffix in (".csv", ".txt"):
        try:
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                numbered = [(reader.line_num, r) for r in reader if r]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise TableError(f"{path}: not a CSV table ({exc})") from None
        if not header:
            raise TableError(f"{path}: empty file (expected a CSV header row)")
        header = [h.strip() for h in header]
        # a row hermes cannot read is left out with its reason (TableColumns.skipped); the
        # rest of the table is used
        skipped: list[str] = []
        good = [(ln, r) for ln, r in numbered if len(r) == len(header)]
        skipped += [f"{path.name}:{ln}: {len(r)} fields, the header has {len(header)}"
                    for ln, r in numbered if len(r) != len(header)]
        cols = list(zip(*[r for _, r in good])) if good else [() for _ in header]
        bad_rows: set[int] = set()
        for h, c in zip(header, cols):
            bad = _stray_cells([v.strip() for v in c])
            for k in bad:
                skipped.append(f"{path.name}:{good[k][0]}: column '{h}': not a number ({c[k].strip()!r})")
            bad_rows.update(bad)
        if bad_rows:
            good = [g for k, g in enumerate(good) if k not in bad_rows]
            cols = list(zip(*[r for _, r in good])) if good else [() for _ in header]
        out = TableColumns({h: _typed([v.strip() for v in c]) for h, c in zip(header, cols)})
        out.skipped = skipped
        return out
    raise TableError(f"{path}: unsupported file type '{path.suffix}'; expected .parquet, .csv or .txt")


class TableColumns(dict):
    """``{column: array}`` of one table, and ``skipped``: the rows left out, each as
    ``file:line: reason``."""

    skipped: list[str] = []


def _stray_cells(values: Sequence[str]) -> list[int]:
    """Indices of the cells that are not numbers in a column whose other cells all are (a
    numeric column with a stray cell): at most 1 % of the column, and at least one number.
    A text column (most cells not numbers) gives none."""
    bad = []
    for k, v in enumerate(values):
        try:
            float(v)
        except ValueError:
            bad.append(k)
    if not bad or len(bad) == len(values) or len(bad) > max(1, len(values) // 100):
        return []
    return bad


def _typed(values: Sequence[str]) -> np.ndarray:
    """CSV cells as int64 if all are integers, else float64 if all are numbers, else str."""
    a = np.asarray(values, dtype=str)
    for kind in (np.int64, float):
        try:
            return a.astype(kind)
        except ValueError:
            continue
    return a


@dataclass(frozen=True)
class Schema:
    """Columns of one aiconfigurator table kind (``required``) and the optional columns
    hermes reads when present."""

    kind: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    op_names: tuple[str, ...]
    name_hints: tuple[str, ...]
    description: str


SCHEMAS: dict[str, Schema] = {s.kind: s for s in (
    Schema("gemm", ("m", "n", "k", "latency"), ("gemm_dtype", "kernel_source"), ("gemm",), ("gemm",),
           "GEMM latency per (m, n, k, gemm_dtype)"),
    Schema("context_attention", ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "latency"),
           ("kernel_source", "kv_cache_dtype", "window_size", "beam_width"), ("context_attention",),
           ("context_attention",), "prefill attention latency per (batch_size, isl, heads, kv heads, head_dim)"),
    Schema("generation_attention", ("batch_size", "step", "num_heads", "num_key_value_heads", "head_dim", "latency"),
           ("kernel_source", "kv_cache_dtype", "window_size", "beam_width"), ("generation_attention",),
           ("generation_attention",), "decode attention latency per (batch_size, step = KV length, heads, kv heads, head_dim)"),
    Schema("allreduce", ("num_gpus", "message_size", "latency"),
           ("op_name", "kernel_source", "allreduce_dtype", "nccl_dtype"), ("all_reduce",),
           ("allreduce", "all_reduce", "nccl"), "collective latency per (num_gpus, message_size in elements)"),
    Schema("moe", ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "latency"),
           ("moe_dtype", "kernel_source", "moe_ep_size", "distribution"), ("moe",), ("moe_perf",),
           "fused MoE layer latency per (num_tokens, hidden_size, inter_size, topk, num_experts, moe_tp_size)"),
)}

#: Expert-routing distribution picked when a MoE table measured several (first present):
#: aiconfigurator's own default for its models (``power_law`` with alpha 1.01, its SDK's
#: ``workload_distribution``), then uniform routing.
PREFERRED_DISTRIBUTIONS = ("power_law_1.01", "balanced")

#: Kernel picked when a table holds several for the same operator and dtype (first present).
PREFERRED_KERNELS: dict[str, tuple[str, ...]] = {
    "gemm": ("torch.nn.functional.linear", "CutlassFP8ScaledMMLinearKernel", "DeepGemmFp8BlockScaledMMKernel"),
    "context_attention": ("vllm_flash_attn_fa3",),
    "generation_attention": ("vllm_flash_attn_fa3",),
    "allreduce": ("vLLM_custom_graph", "NCCL"),
    # the fused Triton MoE kernel vLLM and SGLang run for 16-bit and FP8 experts
    "moe": ("sglang_fused_moe_triton", "vllm_fused_moe"),
}

#: Table dtype names to hermes precisions; element sizes of collective dtypes.
DTYPE_NAMES = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "half": "fp16", "fp16": "fp16",
               "fp8": "fp8", "float8": "fp8", "int8": "int8", "float32": "fp32", "float": "fp32", "fp32": "fp32",
               "fp8_block": "fp8_block"}
ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp32": 4}
#: aiconfigurator GEMM quantisation modes (``common.GEMMQuantMode``: weight-only INT8/INT4,
#: SmoothQuant, static-scale FP8, NVFP4) that hermes has no GEMM precision for: their rows
#: are dropped with a note, not refused, so a whole aiconfigurator table loads.
UNPRICED_GEMM_DTYPES = frozenset({"int8_wo", "int4_wo", "sq", "fp8_static", "fp8_ootb", "nvfp4",
                                  "nvfp4_wo", "w4a16_nvfp4"})


@dataclass
class Table:
    """Rows of one operator kind in hermes units, after the kernel pick.

    ``cols``: for ``gemm`` m, n, k, dtype; for ``context_attention`` batch, isl, heads,
    kv_heads, head_dim, kv_dtype; for ``generation_attention`` the same with ``step`` (KV
    length including the new token) for ``isl``; for ``allreduce`` num_gpus, nbytes, dtype;
    for ``moe`` tokens, hidden, inter (the unsharded expert intermediate size), topk,
    experts, tp (the experts' tensor-parallel degree), dtype, distribution;
    every kind also ``kernel``, ``latency_s`` and the table's own ``latency_ms``. ``files``: where the rows came from;
    ``notes``: the choices made while reading (kernel, filters), for provenance.
    """

    kind: str
    cols: dict[str, np.ndarray]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cols["latency_s"])

    def select(self, keep: np.ndarray) -> Table:
        return Table(self.kind, {c: v[keep] for c, v in self.cols.items()}, self.files, self.notes, self.devices)


def classify(path: Path, cols: dict[str, np.ndarray]) -> str | None:
    """The table kind of a file: by its ``op_name`` column, else by its name, else by its
    columns; ``None`` if nothing matches."""
    if "op_name" in cols and len(cols["op_name"]):
        ops = set(map(str, np.unique(cols["op_name"])))
        for s in SCHEMAS.values():
            if ops & set(s.op_names):
                return s.kind
        return None  # an operator hermes does not read (e.g. moe_context of wide-EP tables)
    name = path.name.lower()
    for s in SCHEMAS.values():
        if any(h in name for h in s.name_hints):
            return s.kind
    matches = [s.kind for s in SCHEMAS.values() if set(s.required) <= set(cols)]
    return matches[0] if len(matches) == 1 else None


def _expected() -> str:
    return "; ".join(f"{s.kind} ({', '.join(s.required)})" for s in SCHEMAS.values())


def _check_columns(path: Path, kind: str, cols: dict[str, np.ndarray]) -> None:
    s = SCHEMAS[kind]
    missing = [c for c in s.required if c not in cols]
    if missing:
        raise TableError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)} "
            f"(an aiconfigurator {kind} table needs {', '.join(s.required)}; found: {', '.join(cols) or 'none'})"
        )
    for c in s.required:
        if cols[c].dtype.kind not in "if":
            bad = str(next((v for v in cols[c] if not _is_number(v)), cols[c][0] if len(cols[c]) else ""))
            raise TableError(f"{path}: column '{c}' must be numeric (got {bad!r})")
    lat = cols["latency"].astype(float)
    if len(lat) and not np.all(np.isfinite(lat) & (lat > 0)):
        i = int(np.argmax(~(np.isfinite(lat) & (lat > 0))))
        raise TableError(f"{path}: column 'latency' must be > 0 milliseconds (row {i + 1}: {lat[i]!r})")


def _is_number(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def table_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories into their ``.parquet``/``.csv``/``.txt`` files (sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in (".parquet", ".csv", ".txt") and q.is_file())
            if not found:
                raise TableError(f"{p}: no .parquet, .csv or .txt tables in this directory")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise TableError(f"{p}: no such file or directory")
    return out


def load_aiconfigurator(paths: Iterable[str | Path], kernels: dict[str, str] | None = None) -> dict[str, Table]:
    """Read aiconfigurator per-operator tables from files and directories.

    Files passed directly must be one of the kinds (:data:`SCHEMAS`); files in a
    directory that are not are ignored (and listed in the notes). ``kernels`` picks the
    ``kernel_source`` per kind or per ``kind:dtype`` (e.g. ``{"gemm:fp8":
    "CutlassFP8ScaledMMLinearKernel", "allreduce": "NCCL"}``); otherwise the first of
    :data:`PREFERRED_KERNELS` present, else the kernel with the most rows. Rows kept:
    attention without sliding window (``window_size == 0``) and beam width 1; all-reduce
    rows of ``op_name == all_reduce``. Raises :class:`TableError` naming the file and column.
    """
    kernels = dict(kernels or {})
    explicit = set()
    given = list(paths)
    for p in given:
        if not Path(p).expanduser().is_dir():
            explicit.add(Path(p).expanduser())
    parts: dict[str, list[tuple[Path, dict[str, np.ndarray]]]] = {}
    row_notes: dict[str, list[str]] = {}
    ignored: list[str] = []
    for path in table_files(given):
        cols = read_columns(path)
        skipped = getattr(cols, "skipped", [])
        kind = classify(path, cols)
        if kind is None:
            if path in explicit:
                raise TableError(
                    f"{path}: not an aiconfigurator per-operator table; expected the columns of one of: "
                    f"{_expected()}; found: {', '.join(cols) or 'none'}"
                )
            ignored.append(path.name)
            continue
        _check_columns(path, kind, cols)
        parts.setdefault(kind, []).append((path, cols))
        if skipped:
            row_notes.setdefault(kind, []).append(
                f"{path.name}: left out {len(skipped)} row(s) hermes cannot read: " + "; ".join(skipped[:5])
                + (" ..." if len(skipped) > 5 else ""))
    if not parts:
        raise TableError(
            f"{', '.join(map(str, given))}: no aiconfigurator per-operator tables found "
            f"(looked for {', '.join(SCHEMAS)}; ignored: {', '.join(ignored) or 'nothing'})"
        )
    out = {kind: _normalise(kind, files, kernels) for kind, files in sorted(parts.items())}
    for kind, notes in row_notes.items():
        out[kind].notes.extend(notes)
    for k in kernels:
        if k.split(":")[0] not in SCHEMAS:
            raise TableError(f"kernels: unknown table kind '{k}'; allowed: {', '.join(SCHEMAS)} (optionally ':dtype')")
    if ignored:
        next(iter(out.values())).notes.append(f"ignored files (not aiconfigurator tables): {', '.join(ignored)}")
    return out


def _col(cols, name, n, default):
    return cols[name] if name in cols else np.full(n, default)


def _dtype_col(path, cols, name, n, default="bf16"):
    if name not in cols:
        return np.full(n, default, dtype=object)
    raw = cols[name].astype(str)
    bad = sorted(map(str, set(raw) - set(DTYPE_NAMES)))
    if bad:
        raise TableError(f"{path}: column '{name}': unknown dtype {bad[0]!r}; known: {', '.join(sorted(DTYPE_NAMES))}")
    return np.array([DTYPE_NAMES[v] for v in raw], dtype=object)


def _normalise(kind: str, files: list[tuple[Path, dict[str, np.ndarray]]], kernels: dict[str, str]) -> Table:
    chunks: list[dict[str, np.ndarray]] = []
    notes: list[str] = []
    devices: set[str] = set()
    for path, c in files:
        if kind == "gemm" and "gemm_dtype" in c:
            raw = c["gemm_dtype"].astype(str)
            unpriced = np.isin(raw, sorted(UNPRICED_GEMM_DTYPES))
            if unpriced.any():
                notes.append(f"{path.name}: dropped {int(unpriced.sum())} rows of gemm_dtype "
                             f"{', '.join(sorted(set(raw[unpriced])))} (no hermes GEMM precision)")
                c = {k: v[~unpriced] for k, v in c.items()}
        n = len(c["latency"])
        keep = np.ones(n, dtype=bool)
        if "device" in c:
            devices.update(map(str, np.unique(c["device"])))
        d: dict[str, np.ndarray] = {"kernel": _col(c, "kernel_source", n, "").astype(str),
                                    "latency_ms": c["latency"].astype(float),
                                    "latency_s": c["latency"].astype(float) * 1e-3}
        if kind == "gemm":
            d.update(m=c["m"].astype(np.int64), n=c["n"].astype(np.int64), k=c["k"].astype(np.int64),
                     dtype=_dtype_col(path, c, "gemm_dtype", n))
            keep &= d["m"] >= 1
        elif kind in ("context_attention", "generation_attention"):
            x = "isl" if kind == "context_attention" else "step"
            d.update(batch=c["batch_size"].astype(np.int64), heads=c["num_heads"].astype(np.int64),
                     kv_heads=c["num_key_value_heads"].astype(np.int64), head_dim=c["head_dim"].astype(np.int64),
                     kv_dtype=_dtype_col(path, c, "kv_cache_dtype", n))
            d[x] = c[x].astype(np.int64)
            for col, val in (("window_size", 0), ("beam_width", 1)):
                if col in c:
                    drop = int(np.sum(keep & (c[col].astype(float) != val)))
                    keep &= c[col].astype(float) == val
                    if drop:
                        notes.append(f"{path.name}: dropped {drop} rows with {col} != {val}")
        elif kind == "moe":
            raw = _col(c, "moe_dtype", n, "bfloat16").astype(str)
            ep = _col(c, "moe_ep_size", n, 1).astype(np.int64)
            d.update(tokens=c["num_tokens"].astype(np.int64), hidden=c["hidden_size"].astype(np.int64),
                     inter=c["inter_size"].astype(np.int64), topk=c["topk"].astype(np.int64),
                     experts=c["num_experts"].astype(np.int64), tp=c["moe_tp_size"].astype(np.int64),
                     ep=ep,
                     # quantisation schemes hermes has no precision for keep the table's name
                     dtype=np.array([DTYPE_NAMES.get(v, v) for v in raw], dtype=object),
                     distribution=_col(c, "distribution", n, "").astype(str))
            keep &= (d["tokens"] >= 1) & (ep >= 1)
        else:
            name = "allreduce_dtype" if "allreduce_dtype" in c else "nccl_dtype"
            dt = _dtype_col(path, c, name, n)
            unknown = sorted(set(dt) - set(ELEMENT_BYTES))
            if unknown:
                raise TableError(f"{path}: column '{name}': no element size for {unknown[0]!r}")
            d.update(num_gpus=c["num_gpus"].astype(np.int64), dtype=dt,
                     nbytes=c["message_size"].astype(float) * np.array([ELEMENT_BYTES[v] for v in dt], dtype=float))
            if "op_name" in c:
                keep &= c["op_name"].astype(str) == "all_reduce"
        chunks.append({k: v[keep] for k, v in d.items()})
    cols = {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}
    if kind == "moe" and len(set(cols["distribution"])) > 1:
        avail = sorted(set(cols["distribution"]))
        pick = next((x for x in PREFERRED_DISTRIBUTIONS if x in avail), avail[0])
        sel = cols["distribution"] == pick
        notes.append(f"moe: routing distribution {pick} ({int(sel.sum())} rows; not used: "
                     f"{', '.join(x for x in avail if x != pick)})")
        cols = {k: v[sel] for k, v in cols.items()}
    if kind == "allreduce":  # bf16 and fp16 (NCCL "half") rows compete: group by element size
        group = np.array([f"{ELEMENT_BYTES[d] * 8}-bit" for d in cols["dtype"]], dtype=object)
    else:
        group = cols["dtype"] if "dtype" in cols else cols["kv_dtype"]
    keep = np.zeros(len(cols["latency_s"]), dtype=bool)
    where = ", ".join(str(p) for p, _ in files)
    per_kind = kernels.get(kind)
    if per_kind is not None and per_kind not in set(cols["kernel"]):
        raise TableError(f"{where}: column 'kernel_source' has no '{per_kind}' rows; available: "
                         f"{', '.join(sorted(set(cols['kernel']))) or 'none'}")
    for g in sorted(set(group)):
        in_g = group == g
        avail = {k: int(np.sum(in_g & (cols["kernel"] == k))) for k in sorted(set(cols["kernel"][in_g]))}
        want = kernels.get(f"{kind}:{g}")
        if want is not None and want not in avail:
            raise TableError(f"{where}: column 'kernel_source' has no '{want}' rows for {kind} {g}; "
                             f"available: {', '.join(avail) or 'none'}")
        if want is None and per_kind is not None:
            if per_kind not in avail:
                continue  # the chosen kernel does not run this dtype: drop these rows
            want = per_kind
        if want is None:
            pref = [k for k in PREFERRED_KERNELS.get(kind, ()) if k in avail]
            want = pref[0] if pref else max(avail, key=lambda k: (avail[k], k))
        keep |= in_g & (cols["kernel"] == want)
        if want:
            also = [k for k in avail if k != want]
            notes.append(f"{kind} {g}: kernel {want} ({avail[want]} rows"
                         + (f"; not used: {', '.join(also)}" if also else "") + ")")
    return Table(kind, {k: v[keep] for k, v in cols.items()}, [p for p, _ in files], notes, sorted(devices))


# Vidur -------------------------------------------------------------------------------

VIDUR_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
                 "num_tensor_parallel_workers")
VIDUR_GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
#: Why Vidur's ``mlp_down_proj`` of a gated MLP multiplies an all-zero input (the reason
#: :func:`vidur_zero_input` gives, written into reports and notes).
VIDUR_ZERO_INPUT_REASON = (
    "Vidur's profiler (microsoft/vidur @ 7d47513, vidur/profiling/mlp) runs fp16 dummy weights "
    "drawn uniformly from [-1e-3, 1e-3] (initialize_dummy_weights), so the gated MLP's up "
    "projection outputs values of about 2e-5 and SiluAndMul about 2e-10, below fp16's smallest "
    "subnormal (6e-8): the down projection multiplies zeros, which a power-limited GPU runs at "
    "higher clocks (H100: up to 10 % faster than the attention output projection of the same n "
    "and similar k in these profiles; H. He, 'Strangely, Matrix Multiplications on GPUs Run Faster "
    "When Given \"Predictable\" Data!', thonking.ai, 2024: 295 vs 257 TFLOP/s for zero vs "
    "random inputs)")


def vidur_zero_input(op: str, gated) -> np.ndarray:
    """Whether Vidur's profile of operator ``op`` measured a GEMM on an all-zero input:
    ``mlp_down_proj`` of a gated MLP (``gated``: bool or bool array, the file's
    ``use_gated_mlp``), for the reason in :data:`VIDUR_ZERO_INPUT_REASON`. A non-gated MLP's
    activation (GELU of about 2e-5) stays a nonzero fp16 subnormal and is not flagged."""
    return np.asarray(gated, dtype=bool) & (op == "mlp_down_proj")


def vidur_gemm_shape(op: str, n_head, n_kv_head, n_embd, n_expanded, gated, tp):
    """``(n, k)`` of a Vidur projection operator, per tensor-parallel shard (arrays)."""
    hd = n_embd // n_head
    if op == "attn_pre_proj":  # fused QKV
        return (n_head + 2 * n_kv_head) * hd // tp, n_embd
    if op == "attn_post_proj":
        return n_embd, n_head * hd // tp
    if op == "mlp_up_proj":  # fused gate+up when gated
        return np.where(gated, 2, 1) * n_expanded // tp, n_embd
    if op == "mlp_down_proj":
        return n_embd, n_expanded // tp
    raise ValueError(op)


def load_vidur_mlp(paths: Iterable[str | Path]) -> dict[str, Table]:
    """GEMM rows (``{"gemm": Table}``) from Vidur ``*_mlp.csv`` profiles: the four projection
    operators (fused QKV, attention output, fused gate+up, down) per ``num_tokens`` and TP
    degree, with the shapes from the model columns and the median time (ms). The boolean
    column ``zero_input`` marks the rows measured on an all-zero input
    (:func:`vidur_zero_input`), which :func:`fit_rows` leaves out. Raises
    :class:`TableError` naming the file and column."""
    chunks, files = [], []
    left_out: list[str] = []
    for path in table_files(paths):
        c = read_columns(path)
        left_out += getattr(c, "skipped", [])
        missing = [x for x in VIDUR_COLUMNS if x not in c]
        if missing:
            hint = " (this looks like an aiconfigurator table: use --format aiconfigurator)" if classify(path, c) else ""
            raise TableError(
                f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(x) for x in missing)} "
                f"(a Vidur *_mlp.csv profile needs {', '.join(VIDUR_COLUMNS)} and time_stats.<op>.median){hint}")
        gated = np.array([str(v).lower() in ("true", "1") for v in c["use_gated_mlp"]])
        args = [c[x].astype(np.int64) for x in ("n_head", "n_kv_head", "n_embd", "n_expanded_embd")]
        tp = c["num_tensor_parallel_workers"].astype(np.int64)
        used = 0
        for op in VIDUR_GEMMS:
            col = f"time_stats.{op}.median"
            if col not in c:
                raise TableError(f"{path}: missing column '{col}' (Vidur *_mlp.csv profile)")
            t = c[col].astype(float)
            ok = np.isfinite(t) & (t > 0)
            n, k = vidur_gemm_shape(op, *args, gated, tp)
            m = c["num_tokens"].astype(np.int64)
            chunks.append({"m": m[ok], "n": np.broadcast_to(n, m.shape)[ok].astype(np.int64),
                           "k": np.broadcast_to(k, m.shape)[ok].astype(np.int64),
                           "dtype": np.full(int(ok.sum()), "bf16", dtype=object),
                           "kernel": np.full(int(ok.sum()), op), "latency_ms": t[ok], "latency_s": t[ok] * 1e-3,
                           "zero_input": vidur_zero_input(op, gated)[ok]})
            used += int(ok.sum())
        files.append(path)
    cols = {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}
    notes = ["Vidur projections (attn_pre_proj = fused QKV, attn_post_proj, mlp_up_proj = fused gate+up, "
             "mlp_down_proj), median time, 16-bit weights"]
    if left_out:
        notes.append(f"left out {len(left_out)} row(s) hermes cannot read: " + "; ".join(left_out[:5])
                     + (" ..." if len(left_out) > 5 else ""))
    zeros = int(cols["zero_input"].sum())
    if zeros:
        notes.append(f"{zeros} mlp_down_proj rows (gated MLP) measured on an all-zero input, left out of "
                     f"the fit: {VIDUR_ZERO_INPUT_REASON}")
    return {"gemm": Table("gemm", cols, files, notes)}


# ----------------------------------------------------------------------------- optimiser


@dataclass
class FitResult:
    x: np.ndarray
    fun: float
    nfev: int


def nelder_mead(func: Callable[[np.ndarray], float], x0: Sequence[float], bounds: Sequence[tuple[float, float]],
                maxiter: int = 4000, xatol: float = 1e-5, fatol: float = 1e-8) -> FitResult:
    """Minimise ``func`` by the Nelder-Mead simplex method with box bounds (numpy only).

    The same algorithm, constants and bound handling as ``scipy.optimize.minimize(method=
    "Nelder-Mead", bounds=...)`` (non-adaptive: reflection 1, expansion 2, contraction 0.5,
    shrink 0.5; initial simplex steps of 5 % of each nonzero coordinate, 0.00025 for zeros;
    every trial point clipped into the box; stop when the simplex spans at most ``xatol``
    in every coordinate and ``fatol`` in value), so fits match scipy's to the printed
    digits. Lagarias et al., SIAM J. Optim. 9 (1998) 112-147.
    """
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    x0 = np.clip(np.asarray(x0, dtype=float), lo, hi)
    n = len(x0)
    sim = np.empty((n + 1, n))
    sim[0] = x0
    for j in range(n):
        y = x0.copy()
        y[j] = 1.05 * y[j] if y[j] != 0 else 0.00025
        sim[j + 1] = y
    sim = np.clip(np.where(sim > hi, 2 * hi - sim, sim), lo, hi)  # reflect into the box
    nfev = 0

    def f(x):
        nonlocal nfev
        nfev += 1
        return float(func(x))

    fsim = np.array([f(s) for s in sim])
    order = np.argsort(fsim)
    sim, fsim = sim[order], fsim[order]
    it = 1
    while it < maxiter:
        if np.max(np.abs(sim[1:] - sim[0])) <= xatol and np.max(np.abs(fsim[0] - fsim[1:])) <= fatol:
            break
        xbar = sim[:-1].sum(0) / n
        xr = np.clip(2 * xbar - sim[-1], lo, hi)
        fxr = f(xr)
        shrink = False
        if fxr < fsim[0]:
            xe = np.clip(3 * xbar - 2 * sim[-1], lo, hi)
            fxe = f(xe)
            sim[-1], fsim[-1] = (xe, fxe) if fxe < fxr else (xr, fxr)
        elif fxr < fsim[-2]:
            sim[-1], fsim[-1] = xr, fxr
        elif fxr < fsim[-1]:  # outside contraction
            xc = np.clip(1.5 * xbar - 0.5 * sim[-1], lo, hi)
            fxc = f(xc)
            if fxc <= fxr:
                sim[-1], fsim[-1] = xc, fxc
            else:
                shrink = True
        else:  # inside contraction
            xcc = np.clip(0.5 * xbar + 0.5 * sim[-1], lo, hi)
            fxcc = f(xcc)
            if fxcc < fsim[-1]:
                sim[-1], fsim[-1] = xcc, fxcc
            else:
                shrink = True
        if shrink:
            for j in range(1, n + 1):
                sim[j] = np.clip(sim[0] + 0.5 * (sim[j] - sim[0]), lo, hi)
                fsim[j] = f(sim[j])
        it += 1
        order = np.argsort(fsim)
        sim, fsim = sim[order], fsim[order]
    return FitResult(sim[0].copy(), float(np.min(fsim)), nfev)


def minimise(func, x0, bounds, restarts: int = 3) -> FitResult:
    """:func:`nelder_mead` restarted from its own optimum (Nelder-Mead stalls on flat
    ridges) until a restart gains less than 1e-7."""
    best = None
    for _ in range(restarts):
        res = nelder_mead(func, x0 if best is None else best.x, bounds)
        if best is not None and best.fun - res.fun < 1e-7:
            best = res if res.fun < best.fun else best
            break
        best = res
    return best


# ----------------------------------------------------------------------------- model


def make_gpu(preset: str, eff: dict | None = None, link: dict | None = None, base: str = "hand-set"):
    """A ``gpu`` device of ``preset`` with every :class:`Efficiency` field given
    explicitly, so that the result does not depend on the shipped fit: ``base`` is
    ``"hand-set"`` (the class defaults) or ``"preset"`` (the shipped fitted defaults)."""
    from hermes_plugins.devices import GPU, Efficiency, GPUConfig, fitted_efficiency

    start = Efficiency() if base == "hand-set" else fitted_efficiency()
    full = {**start.model_dump(), **(eff or {})}
    return GPU(GPUConfig(preset=preset, efficiency=full, **(link or {})))


#: Link settings of the "hand-set" baseline: the datasheet link, 2 us per hop, no fixed cost.
HAND_SET_LINK = {"link_bandwidth_efficiency": 1.0, "link_latency_us": 2.0, "collective_latency_us": 0.0,
                 "allreduce_algorithms": ["ring"]}


def attention_work(t: Table, phase: str, act_bytes: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-call FLOP and bytes of the attention rows by the step cost model's formulas:
    prefill of ``isl`` tokens with nothing cached, decode of one token on ``step - 1``
    cached (``step`` is the KV length)."""
    c = t.cols
    b = c["batch"].astype(float)
    hq, hkv, d = (c[x].astype(float) for x in ("heads", "kv_heads", "head_dim"))
    kvb = np.array([ELEMENT_BYTES.get(v, 2) for v in c["kv_dtype"]], dtype=float)
    kv_tok = 2.0 * hkv * d * kvb
    q_bytes = 2.0 * hq * d * act_bytes
    if phase == "prefill":
        q = c["isl"].astype(float)
        return 4.0 * hq * d * b * q * (q + 1) / 2, b * q * kv_tok + b * q * q_bytes
    kv = c["step"].astype(float)
    return 4.0 * hq * d * b * kv, b * kv * kv_tok + b * q_bytes


def attention_shape(t: Table, phase: str) -> dict[str, np.ndarray]:
    """The keyword shape arguments of the attention rows (see
    :meth:`hermes_plugins.profiled.ProfiledGPU.attention_time`)."""
    c = t.cols
    b = c["batch"].astype(float)
    if phase == "prefill":
        q = c["isl"].astype(float)
        new, kv, pairs = b * q, b * q, b * q * (q + 1) / 2
    else:
        new, kv = b, b * c["step"].astype(float)
        pairs = kv
    return {"seqs": b, "new_tokens": new, "kv_tokens": kv, "pairs": pairs, "heads": c["heads"],
            "kv_heads": c["kv_heads"], "head_dim": c["head_dim"]}


def predict_gemm(gpu, t: Table, dtype: str = "bf16") -> np.ndarray:
    """Modelled seconds of every row of a ``gemm`` table at precision ``dtype``."""
    c = t.cols
    return np.asarray(gpu.gemm_time(c["m"], c["n"], c["k"], dtype), dtype=float)


#: Bytes per input element of the activation quantization a measured FP8 GEMM call includes:
#: vLLM's dynamic per-tensor ``scaled_fp8_quant`` (the ``Fp8Config(activation_scheme=
#: "dynamic")`` aiconfigurator's collector builds, collector/vllm/collect_gemm.py @ 095f58a5)
#: reads the 16-bit input twice (absolute-max reduction, then quantization) and writes one
#: FP8 byte.
FP8_QUANT_BYTES = 5.0


def predict_gemm_fp8(gpu, t: Table) -> np.ndarray:
    """Modelled seconds of every row of a per-tensor FP8 ``gemm`` table: the FP8 GEMM
    (:meth:`GPU.gemm_time`, ``gemm_compute_fp8``) plus the call's activation quantization,
    one memory kernel over ``m * k *`` :data:`FP8_QUANT_BYTES` bytes
    (:meth:`GPU.memory_time`)."""
    c = t.cols
    quant = gpu.memory_time(c["m"].astype(float) * c["k"] * FP8_QUANT_BYTES)
    return np.asarray(gpu.gemm_time(c["m"], c["n"], c["k"], "fp8"), dtype=float) + np.asarray(quant, dtype=float)


def predict_attention(gpu, t: Table, phase: str, dtype: str = "bf16") -> np.ndarray:
    """Modelled seconds of every row of an attention table (``phase`` ``"prefill"`` for
    context rows, ``"decode"`` for generation rows), with the rows' shape keywords for a
    device that takes them (:attr:`hermes_core.HardwareNode.accepts_attention_shape`)."""
    flops, nbytes = attention_work(t, phase)
    if getattr(gpu, "accepts_attention_shape", False):
        return np.asarray(gpu.attention_time(flops, nbytes, phase, dtype, **attention_shape(t, phase)), dtype=float)
    return np.asarray(gpu.attention_time(flops, nbytes, phase, dtype), dtype=float)


def predict_allreduce(gpu, t: Table) -> np.ndarray:
    """All-reduce over ``num_gpus`` devices behind one switch, as the simulator builds it."""
    c = t.cols
    out = np.empty(len(t))
    for n in np.unique(c["num_gpus"]):
        names = [f"d{i}" for i in range(int(n))]
        topo = Topology.single_switch(names, gpu.link_bandwidth, gpu.link_latency)
        sel = c["num_gpus"] == n
        out[sel] = topo.allreduce_time(names, c["nbytes"][sel], gpu.collective_latency, gpu.allreduce_algorithms)
    return out


# ----------------------------------------------------------------------------- errors


def moe_shapes(t: Table) -> Iterator[tuple[tuple[str, int, int, int, int, int, int], np.ndarray]]:
    """The rows of a ``moe`` table grouped by layer shape: ``((dtype, hidden, inter, topk,
    experts, tp, ep), row indices)`` per distinct shape, in sorted order (``tp`` the
    experts' tensor-parallel split, ``ep`` the expert-parallel one)."""
    c = t.cols
    names = ("dtype", "hidden", "inter", "topk", "experts", "tp", "ep")
    keys = [tuple(v) for v in zip(*(c[n].tolist() for n in names))]
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    for k in sorted(groups, key=str):
        dt, *rest = k
        yield (str(dt), *map(int, rest)), np.asarray(groups[k])


def predict_moe(gpu, t: Table) -> np.ndarray:
    """Modelled seconds of every row of a ``moe`` table: one MoE layer's routed experts at
    the row's token count (:func:`hermes_plugins.stages.step_cost.moe_layer_time`, expert
    width ``inter / tp`` per device)."""
    from hermes_plugins.stages.step_cost import moe_layer_time

    out = np.empty(len(t))
    for (dt, h, i, k, e, tp, ep), sel in moe_shapes(t):
        if ep != 1:
            raise ValueError("predict_moe: expert-parallel rows (moe_ep_size != 1) are not fitted; "
                             "select moe_ep_size == 1 first (fit_rows does)")
        out[sel] = moe_layer_time(gpu, t.cols["tokens"][sel], h, i // tp, e, k, MOE_WEIGHTS[dt])
    return out


def log_err(pred: np.ndarray, meas_s: np.ndarray) -> float:
    """Mean ``|log(predicted / measured)|``: the fit's loss."""
    return float(np.mean(np.abs(np.log(np.maximum(pred, 1e-15) / meas_s))))


def errors(pred: np.ndarray, meas_s: np.ndarray) -> dict:
    """Rows and median / mean / p90 absolute percentage error (%)."""
    a = np.abs(np.asarray(pred) / meas_s - 1) * 100
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "median_ape": round(float(np.median(a)), 2), "mean_ape": round(float(np.mean(a)), 2),
            "p90_ape": round(float(np.quantile(a, 0.9)), 2)}


def by_bucket(pred, meas_s, key: np.ndarray, ranges: list[tuple[int, int]], label: str) -> dict:
    """Median APE (%) and median predicted/measured ratio per inclusive range of ``key``."""
    out = {}
    for lo, hi in ranges:
        sel = (key >= lo) & (key <= hi)
        if sel.any():
            e = errors(pred[sel], meas_s[sel])
            out[f"{label} {lo}-{hi}" if lo != hi else f"{label} {lo}"] = {
                "n": e["n"], "median_ape": e["median_ape"],
                "median_pred_over_meas": round(float(np.median(pred[sel] / meas_s[sel])), 3)}
    return out


# ----------------------------------------------------------------------------- fits

#: Candidate single GEMM output tiles ``(tile_m, tile_n)`` of the GEMM fit.
GEMM_TILES = [(64, 64), (64, 128), (128, 128), (128, 256)]
#: The tile-mix candidate of the GEMM fit (:attr:`~hermes_plugins.devices.Efficiency.gemm_tiles`,
#: fitted with ``gemm_wave_quantisation``): output tiles of cuBLAS's and CUTLASS's SM80/SM90
#: half-precision GEMMs, 64-256 rows by 128-256 columns, among which the library's
#: heuristics pick per shape.
GEMM_TILE_MIX = "64x128,128x128,128x256,256x128"
#: Candidate ``gemm_tile_m_min`` of the GEMM fit: 0 (every GEMM pads its rows to a whole
#: ``tile_m``) and 16 (the rows of one tensor-core MMA, ``mma.sync m16n8k16``: skinny GEMMs
#: run small-row or GEMV-like kernels).
GEMM_TILE_M_MINS = (0, 16)
GEMM_PARAMS = ["gemm_compute", "gemm_memory", "launch_us", "gemm_k_overhead", "gemm_occupancy_exponent"]
ATTENTION_PARAMS = ["attention_prefill_compute", "attention_prefill_memory", "attention_decode_memory",
                    "attention_launch_us", "attention_prefill_score_ps", "attention_decode_seq_head_ns"]
LINK_PARAMS = ["link_bandwidth_efficiency", "collective_latency_us"]
#: The all-reduce algorithms fitted beside the ring (bandwidth share, latency):
#: ``one_shot`` always, ``switch`` on presets with NVLink SHARP (:attr:`GPUPreset.nvlink_sharp`).
ONE_SHOT_PARAMS = ["one_shot_bandwidth_efficiency", "one_shot_latency_us"]
SWITCH_PARAMS = ["switch_bandwidth_efficiency", "switch_latency_us"]
MOE_PARAMS = ["moe_compute", "moe_launch_us"]
#: Candidate ``moe_block_m_min`` (smallest token block of the fused-MoE kernels; vLLM's
#: tuned fused_moe configs use BLOCK_SIZE_M 16-64, SGLang's the same tables).
MOE_BLOCKS = (16, 32, 64)
#: MoE-table ``moe_dtype`` (after :data:`DTYPE_NAMES`) -> the weight precision it is priced at.
MOE_WEIGHTS = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp8_block": "fp8", "w4a16_mxfp4": "mxfp4"}
#: MoE-table dtypes with a compute factor of their own (``moe_compute_mxfp4``), left out of
#: the ``moe_compute`` fit.
MOE_OWN_FACTOR = {"w4a16_mxfp4"}


def fit_rows(tables: dict[str, Table]) -> dict[str, Table]:
    """The rows the fit uses (the shapes LLM serving runs): bf16 GEMMs with ``1 <= m <=
    16384`` and ``n, k >= 128``; per-tensor FP8 GEMMs (``gemm_fp8``) with ``1 <= m <=
    16384``, ``512 <= n <= 51200`` and ``1024 <= k <= 51200`` (below that the call's
    activation quantization outweighs the GEMM; no served model's projections are that
    narrow); attention with a bf16 KV cache; 16-bit all-reduce; MoE layers with 16-bit or
    FP8 experts (:data:`MOE_WEIGHTS`) without expert parallelism (``moe_ep_size`` 1; the
    expert-parallel rows serve ``gpu_profiled`` lookups only). GEMM rows marked
    ``zero_input`` (Vidur's down projection, :func:`vidur_zero_input`) are left out: they
    time an all-zero input, which serving never runs."""
    out = {}
    g = tables.get("gemm")
    if g is not None:
        c = g.cols
        ok = (c["m"] >= 1) & (c["m"] <= 16384)
        if "zero_input" in c:
            ok &= ~c["zero_input"]
        out["gemm"] = g.select((c["dtype"] == "bf16") & ok & (c["n"] >= 128) & (c["k"] >= 128))
        out["gemm_fp8"] = g.select((c["dtype"] == "fp8") & ok & (c["n"] >= 512) & (c["n"] <= 51200)
                                   & (c["k"] >= 1024) & (c["k"] <= 51200))
    for kind in ("context_attention", "generation_attention"):
        if kind in tables:
            out[kind] = tables[kind].select(tables[kind].cols["kv_dtype"] == "bf16")
    if "allreduce" in tables:
        a = tables["allreduce"]
        out["allreduce"] = a.select(np.isin(a.cols["dtype"], ["bf16", "fp16"]))
    if "moe" in tables:
        e = tables["moe"]
        out["moe"] = e.select(np.isin(e.cols["dtype"], sorted(set(MOE_WEIGHTS) - MOE_OWN_FACTOR))
                              & (e.cols["ep"] == 1))
    return {k: v for k, v in out.items() if len(v)}


def fit_gemm(g: Table, preset: str, log: Callable[[str], None] = print, tiles: Sequence[tuple[int, int]] = GEMM_TILES,
             tile_mix: str | None = GEMM_TILE_MIX, rows_mins: Sequence[int] = GEMM_TILE_M_MINS) -> tuple[dict, list]:
    """GEMM compute and memory efficiency, launch time, per-tile overhead and occupancy
    exponent, once per candidate kernel-selection model; the one with the lowest loss wins.
    The candidates: each single tile of ``tiles`` (:data:`GEMM_TILES`), and the tile mix
    ``tile_mix`` (:data:`GEMM_TILE_MIX`; None: no mix) with wave quantisation
    (``gemm_tiles``, ``gemm_wave_quantisation``), each with every smallest tile row count of
    ``rows_mins`` (:data:`GEMM_TILE_M_MINS`; ``gemm_tile_m_min``). A mix keeps
    ``tile_m``/``tile_n`` of the best single tile with the same ``gemm_tile_m_min`` (grouped
    expert GEMMs use the single tile). ``tile_mix=None, rows_mins=(0,)`` is the single-tile
    fit of before these candidates. Returns ``(parameters, [loss per candidate])``; the
    parameters include the three kernel-selection fields, at their defaults
    (``gemm_tile_m_min`` 0, no ``gemm_tiles``, no wave quantisation) when a single tile
    without a smaller row count fits best."""
    bounds = [(0.05, 1.0), (0.05, 1.0), (0.0, 50.0), (0.0, 4096.0), (0.0, 1.0)]
    trials = []

    def one(fixed: dict, label: str) -> None:
        def obj(x):
            gpu = make_gpu(preset, {**dict(zip(GEMM_PARAMS, x)), **fixed})
            return log_err(predict_gemm(gpu, g), g.cols["latency_s"])
        res = minimise(obj, [0.8, 0.85, 3.0, 128.0, 0.5], bounds)
        params = {**dict(zip(GEMM_PARAMS, map(float, res.x))), **fixed}
        trials.append((res.fun, label, params))
        log(f"  gemm {label}: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")

    for rows_min in rows_mins:
        rows = f", rows >= {rows_min}" if rows_min else ""
        single = []
        for tm, tn in tiles:
            one({"tile_m": tm, "tile_n": tn, "gemm_tile_m_min": rows_min, "gemm_tiles": None,
                 "gemm_wave_quantisation": False}, f"tile {tm}x{tn}{rows}")
            single.append(trials[-1])
        if tile_mix:
            best_single = min(single, key=lambda t: t[0])[2]
            one({"tile_m": best_single["tile_m"], "tile_n": best_single["tile_n"], "gemm_tile_m_min": rows_min,
                 "gemm_tiles": tile_mix, "gemm_wave_quantisation": True}, f"tile mix, waves{rows}")
    best = min(trials, key=lambda t: t[0])[2]
    return best, [{"candidate": t[1], "mean_abs_log": round(t[0], 4)} for t in trials]


#: Candidate FP8 GEMM output tiles ``(tile_m_fp8, tile_n_fp8)``: the bf16 candidates and
#: 64x256 and 128x64 (CUTLASS's SM90 FP8 GEMMs, vLLM's ``cutlass_scaled_mm``, dispatch
#: tiles of 64-128 rows and 64-256 columns by m).
GEMM_TILES_FP8 = [(64, 64), (64, 128), (128, 64), (128, 128), (64, 256), (128, 256)]
GEMM_FP8_PARAMS = ["gemm_compute_fp8", "gemm_k_overhead_fp8", "gemm_occupancy_exponent_fp8", "launch_us_fp8"]


def fit_gemm_fp8(g8: Table, preset: str, base: dict, log: Callable[[str], None] = print) -> dict:
    """The FP8 GEMM fields on per-tensor FP8 GEMM rows (:func:`predict_gemm_fp8`: the call's
    activation quantization priced as a memory kernel): ``gemm_compute_fp8`` (the share of
    the FP8 peak), ``gemm_k_overhead_fp8``, ``gemm_occupancy_exponent_fp8`` and
    ``launch_us_fp8``, once per candidate tile (:data:`GEMM_TILES_FP8`, the lowest loss
    wins), with the memory share and roofline from ``base`` (the bf16 fit). FP8 kernels are
    other kernels than the bf16 ones (CUTLASS against cuBLAS): on aiconfigurator's H100 vLLM
    0.24.0 table their own tile and fixed costs take the median APE from 10.0 % (bf16 tile
    and costs, only the share fitted) to 8.7 %. Returns the six fields."""
    fixed = {k: v for k, v in base.items() if k != "source"}
    trials = []
    for tm, tn in GEMM_TILES_FP8:
        def obj(x, tm=tm, tn=tn):
            eff = {**fixed, **dict(zip(GEMM_FP8_PARAMS, x)), "tile_m_fp8": tm, "tile_n_fp8": tn}
            return log_err(predict_gemm_fp8(make_gpu(preset, eff), g8), g8.cols["latency_s"])
        res = minimise(obj, [0.6, 128.0, 0.5, 3.0], [(0.05, 1.0), (0.0, 4096.0), (0.0, 1.0), (0.0, 50.0)])
        trials.append((res.fun, {**dict(zip(GEMM_FP8_PARAMS, map(float, res.x))), "tile_m_fp8": tm, "tile_n_fp8": tn}))
        log(f"  gemm fp8 tile {tm}x{tn}: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
    return min(trials, key=lambda t: t[0])[1]


def fit_attention(ctx: Table | None, gen: Table | None, preset: str, log: Callable[[str], None] = print) -> dict:
    """Prefill and decode factors and the shared per-call cost, on both tables at once
    (each weighted equally). Decode attention is memory-bound on every measured shape
    (FLOP/byte ~ h_q/h_kv <= 64, far below the ridge), so its compute efficiency is not
    identifiable: it is set to the prefill value. With only one table, the other phase's
    factors are not fitted."""
    names = [n for n in ATTENTION_PARAMS
             if not (ctx is None and n.startswith("attention_prefill")) and not (gen is None and n.startswith("attention_decode"))]
    start = {"attention_prefill_compute": 0.6, "attention_prefill_memory": 0.4, "attention_decode_memory": 0.8,
             "attention_launch_us": 12.0, "attention_prefill_score_ps": 0.1, "attention_decode_seq_head_ns": 10.0}
    bounds = [(0.0, 100.0) if n in ("attention_launch_us", "attention_decode_seq_head_ns")
              else (0.0, 10.0) if n == "attention_prefill_score_ps" else (0.05, 1.0) for n in names]

    def params(x):
        p = dict(zip(names, map(float, x)))
        if "attention_prefill_compute" in p:
            p["attention_decode_compute"] = p["attention_prefill_compute"]
        return p

    def obj(x):
        gpu = make_gpu(preset, params(x))
        parts = []
        if ctx is not None:
            parts.append(log_err(predict_attention(gpu, ctx, "prefill"), ctx.cols["latency_s"]))
        if gen is not None:
            parts.append(log_err(predict_attention(gpu, gen, "decode"), gen.cols["latency_s"]))
        return float(np.mean(parts))
    res = minimise(obj, [start[n] for n in names], bounds)
    log(f"  attention: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
    return params(res.x)


def fit_link(r: Table, preset: str, log: Callable[[str], None] = print) -> dict:
    """The all-reduce algorithms on the all-reduce table: bandwidth share and fixed latency
    of the ring (``link_bandwidth_efficiency``, ``collective_latency_us``), of the one-shot
    all-reduce (:data:`ONE_SHOT_PARAMS`) and, on a preset whose NVSwitch reduces in the
    switch, of the switch all-reduce (:data:`SWITCH_PARAMS`); the simulator takes the
    fastest per message (:meth:`hermes_core.Topology.allreduce_time`). NVSwitch hops add no
    latency of their own (measured latency does not grow with the GPU count), so
    ``link_latency_us`` is 0."""
    from hermes_plugins.devices import PRESETS

    names = LINK_PARAMS + ONE_SHOT_PARAMS + (SWITCH_PARAMS if PRESETS[preset].nvlink_sharp else [])
    start = {"link_bandwidth_efficiency": 0.6, "collective_latency_us": 8.0,
             "one_shot_bandwidth_efficiency": 0.5, "one_shot_latency_us": 4.0,
             "switch_bandwidth_efficiency": 0.5, "switch_latency_us": 30.0}
    bounds = {n: (0.01, 1.0) if n.endswith("efficiency") else (0.0, 200.0) for n in names}

    def obj(x):
        return log_err(predict_allreduce(make_gpu(preset, {}, {"link_latency_us": 0.0, **dict(zip(names, x))}), r),
                       r.cols["latency_s"])
    res = minimise(obj, [start[n] for n in names], [bounds[n] for n in names])
    log(f"  link: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
    return {"link_latency_us": 0.0, **dict(zip(names, map(float, res.x)))}


def fit_moe(t: Table, preset: str, base: dict | None = None, log: Callable[[str], None] = print) -> dict:
    """The fused-MoE factors ``moe_compute`` and ``moe_launch_us`` on a ``moe`` table, on
    top of the device's other factors (``base``: those fitted in the same run, over the
    preset's; the MoE model prices its expert GEMMs with the GEMM factors), once per
    candidate smallest token block ``moe_block_m_min`` (:data:`MOE_BLOCKS`); the block with
    the lowest loss wins. Returns the three fields."""
    base = dict(base or {})
    trials = []
    for block in MOE_BLOCKS:
        def obj(x, block=block):
            eff = {**base, **dict(zip(MOE_PARAMS, x)), "moe_block_m_min": block}
            return log_err(predict_moe(make_gpu(preset, eff, base="preset"), t), t.cols["latency_s"])
        res = minimise(obj, [0.6, 20.0], [(0.05, 1.0), (0.0, 200.0)])
        log(f"  moe block >= {block}: mean|log| {res.fun:.4f}  {np.round(res.x, 4).tolist()}")
        trials.append((res.fun, {**dict(zip(MOE_PARAMS, map(float, res.x))), "moe_block_m_min": block}))
    return min(trials, key=lambda r: r[0])[1]


# ----------------------------------------------------------------------------- calibrate

#: Table kinds in report order, with their labels.
LABELS = {"gemm": "GEMM bf16", "gemm_fp8": "GEMM fp8", "context_attention": "prefill attention",
          "generation_attention": "decode attention", "allreduce": "all-reduce", "moe": "fused MoE"}


@dataclass
class Calibration:
    """What :func:`calibrate` found: the fitted ``efficiency`` fields and ``link`` fields
    (only those the given tables determine), the rows used per table, and the errors per
    table of three devices: ``hand-set`` (the :class:`Efficiency` class defaults and a bare
    datasheet link), ``preset`` (what ``{type: gpu, preset: ...}`` uses today) and
    ``calibrated``."""

    preset: str
    efficiency: dict[str, Any]
    link: dict[str, float]
    rows: dict[str, Table]
    errors: dict[str, dict[str, dict]]
    sources: list[str]
    notes: list[str]
    gemm_tiles: list = field(default_factory=list)

    def device(self) -> dict[str, Any]:
        """The device mapping (``type: gpu`` ...) a scenario uses."""
        d: dict[str, Any] = {"type": "gpu", "preset": self.preset}
        if self.efficiency:
            d["efficiency"] = dict(self.efficiency)
        d.update(self.link)
        return d


def predict_all(gpu, rows: dict[str, Table]) -> dict[str, np.ndarray]:
    """Modelled seconds of every row of every table kind in ``rows`` (from :func:`fit_rows`)."""
    out = {}
    for kind, t in rows.items():
        if kind == "gemm":
            out[kind] = predict_gemm(gpu, t)
        elif kind == "gemm_fp8":
            out[kind] = predict_gemm_fp8(gpu, t)
        elif kind == "context_attention":
            out[kind] = predict_attention(gpu, t, "prefill")
        elif kind == "generation_attention":
            out[kind] = predict_attention(gpu, t, "decode")
        elif kind == "moe":
            out[kind] = predict_moe(gpu, t)
        else:
            out[kind] = predict_allreduce(gpu, t)
    return out


def _round(v):
    return round(float(v), 4) if isinstance(v, float) else v


def calibrate(tables: dict[str, Table], preset: str = "h100_sxm", log: Callable[[str], None] = print,
              source: str = "") -> Calibration:
    """Fit the ``gpu`` device of ``preset`` to ``tables`` (from :func:`load_aiconfigurator`
    or :func:`load_vidur_mlp`) with the procedure of ``benchmarks/fit_gpu_efficiency.py``:
    GEMM factors on the GEMM table (bf16 rows; the ``*_fp8`` GEMM fields on its per-tensor
    FP8 rows, after the bf16 factors), attention factors on the attention tables, link
    factors on the all-reduce table, the fused-MoE factors on a ``moe`` table (after the
    GEMM factors, which its model uses); a table that is absent leaves its fields unfitted.
    Raises :class:`TableError` if no table has rows the fit can use."""
    from hermes_plugins.devices import Efficiency, GPUConfig

    preset = GPUConfig(preset=preset).preset  # raises on an unknown preset, resolves aliases
    rows = fit_rows(tables)
    if not rows:
        raise TableError("no rows to fit: the tables hold no bf16 GEMM (m <= 16384, n, k >= 128), "
                         "per-tensor FP8 GEMM (m <= 16384, n >= 512, k >= 1024), "
                         "bf16-KV attention, 16-bit all-reduce or 16-bit/FP8 MoE rows")
    eff: dict[str, Any] = {}
    link: dict[str, float] = {}
    tiles: list = []
    if "gemm" in rows:
        p, tiles = fit_gemm(rows["gemm"], preset, log)
        eff.update(p)
    if "gemm_fp8" in rows:
        base = eff if "gemm" in rows else make_gpu(preset, base="preset").eff.model_dump()
        eff.update(fit_gemm_fp8(rows["gemm_fp8"], preset, base, log))
    if "context_attention" in rows or "generation_attention" in rows:
        eff.update(fit_attention(rows.get("context_attention"), rows.get("generation_attention"), preset, log))
    if "allreduce" in rows:
        link = fit_link(rows["allreduce"], preset, log)
    if "moe" in rows:
        eff.update(fit_moe(rows["moe"], preset, eff, log))
    eff = {k: _round(v) for k, v in eff.items()}
    link = {k: _round(v) for k, v in link.items()}
    today = datetime.date.today().isoformat()
    files = sorted({str(f) for t in tables.values() for f in t.files})
    if eff:
        eff["source"] = f"hermes calibrate {today}: {source or ', '.join(Path(f).name for f in files)}"
    hand = predict_all(make_gpu(preset, {}, HAND_SET_LINK), rows)
    shipped = predict_all(make_gpu(preset, base="preset"), rows)
    fitted = predict_all(make_gpu(preset, {k: v for k, v in eff.items() if k != "source"}, link or None, base="preset"), rows)
    errs = {kind: {"hand-set": errors(hand[kind], t.cols["latency_s"]),
                   "preset": errors(shipped[kind], t.cols["latency_s"]),
                   "calibrated": errors(fitted[kind], t.cols["latency_s"])} for kind, t in rows.items()}
    notes = [n for t in tables.values() for n in t.notes]
    not_fitted = [f for f in Efficiency.model_fields if f not in eff and f != "source"]
    if not_fitted:
        notes.append("not fitted (preset defaults kept): " + ", ".join(not_fitted))
    return Calibration(preset, eff, link, rows, errs, files, notes, tiles)


def device_yaml(cal: Calibration, command: str = "") -> str:
    """The calibrated device as YAML: a comment header (command, date, sources, errors per
    table before and after) and the device mapping."""
    import yaml

    today = datetime.date.today().isoformat()
    lines = [f"# hermes device calibrated {today}" + (f" by: {command}" if command else ""),
             f"# preset: {cal.preset}; measured tables:"]
    lines += [f"#   {f}" for f in cal.sources]
    for t in cal.rows.values():
        if t.devices:
            lines.append(f"# measured on: {', '.join(t.devices)}")
            break
    lines.append("# error vs measurement, median / mean APE (%): hand-set factors -> preset default -> calibrated")
    for kind, e in cal.errors.items():
        h, p, c = e["hand-set"], e["preset"], e["calibrated"]
        lines.append(f"#   {LABELS.get(kind, kind)} ({c['n']} rows): {h['median_ape']:.1f} / {h['mean_ape']:.1f} -> "
                     f"{p['median_ape']:.1f} / {p['mean_ape']:.1f} -> {c['median_ape']:.1f} / {c['mean_ape']:.1f}")
    for n in cal.notes:
        lines.append(f"# {n}")
    lines.append("# Use: copy this mapping under `device:` in a scenario (clients[i].device), or pass the")
    lines.append("# file to `hermes validate ops --device`.")
    body = yaml.safe_dump(cal.device(), sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def load_device_yaml(path: str | Path) -> dict[str, Any]:
    """A device mapping from a YAML file written by ``hermes calibrate`` (or by hand): the
    top-level mapping, or its ``device:`` entry. Raises :class:`TableError`."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TableError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise TableError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("device"), dict):
        data = data["device"]
    if not isinstance(data, dict) or "type" not in data:
        raise TableError(f"{path}: expected a device mapping with a 'type' field (e.g. type: gpu)")
    return data

