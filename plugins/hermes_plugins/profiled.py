"""The ``gpu_profiled`` device: operator times looked up in measured kernel tables, with the
fitted roofline ``gpu`` model outside them.

Scenario::

    device:
      type: gpu_profiled
      tables: path/to/aiconfigurator_h100_vllm0.24.0   # directory, file, or list of them
      preset: h100_sxm          # the fallback model: every `gpu` field is accepted
      kernels: {allreduce: NCCL}                     # optional kernel_source picks

``tables`` takes NVIDIA aiconfigurator's per-operator tables (parquet, which needs the
``parquet`` extra, or CSV with the same columns): GEMM, context and generation attention,
custom or NCCL all-reduce (see :mod:`hermes_plugins.calibration` for the columns, units and
the kernel pick). Relative paths resolve against the current directory.

How each operator is priced (``m`` tokens, latencies interpolated as ``log(time)``
multilinear in the logarithms of the coordinates, so a power law ``time ~ m^a n^b k^c`` is
reproduced exactly and a measured point is returned exactly):

* **GEMM** ``(m, n, k, dtype)``: grid over ``(n, k, m)`` of the dtype's rows. For a
  measured ``(n, k)`` this is interpolation over ``m`` between the measured ``m`` (monotone
  between two measured points); for an unmeasured ``(n, k)`` inside the measured range,
  bilinear between the four surrounding measured ``(n, k)``. Outside the grid (``m`` or
  ``n``, ``k`` beyond the measured range, a missing corner, a dtype without rows): the model.
* **Attention** (when the caller passes the call's shape, see :meth:`ProfiledGPU.
  attention_time`): grid over ``(heads, batch, length)`` per ``(kv heads, head_dim, KV
  dtype)``. Decode is looked up at the batch's mean KV length. Prefill is looked up at the
  uniform batch with the same sequence count and the same number of query-key pairs
  (``isl (isl + 1) / 2`` per sequence); when the real batch differs from that uniform one
  (cached prefixes, uneven chunks), the looked-up time is scaled by the model's ratio
  ``model(real FLOP, real bytes) / model(same FLOP, uniform bytes)``. Without a shape, or
  outside the grid: the model.
* **All-reduce** (:meth:`ProfiledGPU.collective_time`): grid over ``(GPUs, bytes)`` of the
  16-bit rows; outside it, the caller's own (topology) time.
* **MoE layers** (:meth:`ProfiledGPU.moe_time`): aiconfigurator's ``moe_perf`` table times
  the whole fused MoE layer (routing, the expert GEMMs, activation, combine) per
  ``(num_tokens, hidden_size, inter_size, topk, num_experts, moe_tp_size, moe_ep_size,
  moe_dtype)``; a model's MoE layer is looked up at its exact shape and split (an
  expert-parallel layer at ``moe_tp_size = tp / ep``, ``moe_ep_size = ep``) and
  interpolated over the token count.
  ``moe_dtype`` picks the table's quantisation (e.g. ``fp8_block`` for block-scaled FP8
  checkpoints; default: the scenario's weight precision). Other shapes, token counts
  outside the table: the model (the grouped-GEMM roofline of
  :class:`~hermes_plugins.stages.step_cost.StepCostModel`).
* **Memory-bound kernels**: the model (aiconfigurator has no such table).

Every priced operator is counted as ``measured`` or ``modelled`` per kind
(:meth:`ProfiledGPU.pricing_sources`, also in :meth:`describe`). The step cost model
prices GEMMs and memory kernels once per scenario over every token count (a table), and
attention once per engine step, so the GEMM counts are shapes priced, the attention counts
are calls.
"""

from __future__ import annotations

import bisect
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator

from hermes_core import HardwareNode, dtype_bytes, hookimpl

from .calibration import ELEMENT_BYTES, Table, TableError, load_aiconfigurator, moe_shapes
from .devices import GPU, GPUConfig

KINDS = ("gemm", "attention_prefill", "attention_decode", "memory", "allreduce", "moe")


# ----------------------------------------------------------------------------- grid


class LogGrid:
    """Measured values on a grid of ``d`` positive coordinates, interpolated as
    ``log(value)`` multilinear in ``log(coordinate)``.

    The grid's axes are the distinct measured coordinates. A hole between two measured
    points of a line is filled by interpolating along that line: first along the last axis
    (so a line measured more coarsely than the grid keeps its own points, and
    interpolation between two of them is monotone), then along the other axes in reverse
    order (so an unmeasured ``(n, k)`` between measured ones is interpolated). A query is
    measured when all grid corners with nonzero weight are known; otherwise it is not (the
    caller falls back). Holes at the edge of the measured region stay holes.
    """

    def __init__(self, points: np.ndarray, values: np.ndarray):
        points = np.asarray(points, dtype=float)
        self.axes = [np.unique(points[:, j]) for j in range(points.shape[1])]
        self.laxes = [np.log(a) for a in self.axes]
        idx = tuple(np.searchsorted(a, points[:, j]) for j, a in enumerate(self.axes))
        shape = tuple(len(a) for a in self.axes)
        total = np.zeros(shape)
        count = np.zeros(shape)
        np.add.at(total, idx, np.log(values))
        np.add.at(count, idx, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            dense = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        for axis in reversed(range(len(shape))):  # the last axis first: a line's own points
            moved = np.moveaxis(dense, axis, -1).copy()
            flat = moved.reshape(-1, shape[axis])
            la = self.laxes[axis]
            for row in flat:  # fill holes between two known points of the line
                known = np.flatnonzero(~np.isnan(row))
                if len(known) >= 2 and known[-1] - known[0] + 1 > len(known):
                    span = np.arange(known[0], known[-1] + 1)
                    row[span] = np.interp(la[span], la[known], row[known])
            dense = np.moveaxis(flat.reshape(moved.shape), -1, axis)
        self.dense = np.ascontiguousarray(dense)
        self._lists = self.dense.tolist()
        self._laxes_l = [a.tolist() for a in self.laxes]

    def lookup(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log value, measured)`` for each row of ``q`` (shape ``(N, d)``)."""
        q = np.asarray(q, dtype=float)
        n = len(q)
        ok = np.ones(n, dtype=bool)
        lo, hi, w = [], [], []
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, a in enumerate(self.laxes):
                x = np.log(np.where(q[:, j] > 0, q[:, j], np.nan))
                ok &= (x >= a[0]) & (x <= a[-1])
                i = np.clip(np.searchsorted(a, x, side="right") - 1, 0, max(len(a) - 2, 0))
                h = np.minimum(i + 1, len(a) - 1)
                wj = np.where(h > i, (x - a[i]) / (a[h] - a[i]), 0.0)
                wj = np.clip(np.nan_to_num(wj), 0.0, 1.0)
                lo.append(i); hi.append(h); w.append(wj)
        out = np.zeros(n)
        d = len(self.laxes)
        for corner in range(1 << d):
            weight = np.ones(n)
            index = []
            for j in range(d):
                up = (corner >> j) & 1
                weight = weight * (w[j] if up else 1.0 - w[j])
                index.append(hi[j] if up else lo[j])
            v = self.dense[tuple(index)]
            used = weight > 0
            ok &= ~(used & np.isnan(v))
            out += np.where(used, weight * np.nan_to_num(v), 0.0)
        return out, ok

    def lookup1(self, *q: float) -> float | None:
        """Scalar :meth:`lookup` (pure Python, for the per-step hot path): ``log value``
        or ``None`` when not measured."""
        corners = []
        for x, a in zip(q, self._laxes_l):
            if x <= 0:
                return None
            lx = math.log(x)
            if lx < a[0] or lx > a[-1]:
                return None
            n = len(a)
            i = bisect.bisect_right(a, lx) - 1
            if i >= n - 1:
                i = n - 2 if n > 1 else 0
            if i + 1 < n:
                wj = (lx - a[i]) / (a[i + 1] - a[i])
                corners.append(((i, 1.0 - wj), (i + 1, wj)) if wj > 0 else ((i, 1.0),))
            else:
                corners.append(((i, 1.0),))
        nodes = [(self._lists, 1.0)]
        for c in corners:
            nodes = [(node[i], w * wj) for node, w in nodes for i, wj in c if wj > 0]
        total = 0.0
        for v, w in nodes:
            if v != v:  # NaN: a missing corner
                return None
            total += w * v
        return total


# ----------------------------------------------------------------------------- tables


class ProfiledTables:
    """The grids of one set of measured tables (shared by all devices built from them)."""

    def __init__(self, tables: dict[str, Table]):
        self.tables = tables
        self.files = sorted({str(f) for t in tables.values() for f in t.files})
        self.notes = [n for t in tables.values() for n in t.notes]
        self.gemm: dict[str, LogGrid] = {}
        self.prefill: dict[tuple, LogGrid] = {}
        self.decode: dict[tuple, LogGrid] = {}
        self.allreduce: LogGrid | None = None
        self.moe: dict[tuple, LogGrid] = {}
        g = tables.get("gemm")
        if g is not None:
            c = g.cols
            for dt in sorted(set(c["dtype"])):
                sel = c["dtype"] == dt
                # m last: holes between measured m of one (n, k) are filled along m
                self.gemm[dt] = LogGrid(np.column_stack([c["n"][sel], c["k"][sel], c["m"][sel]]), c["latency_s"][sel])
        for kind, x, grids in (("context_attention", "isl", self.prefill), ("generation_attention", "step", self.decode)):
            a = tables.get(kind)
            if a is None:
                continue
            c = a.cols
            keys = np.column_stack([c["kv_heads"], c["head_dim"]])
            for kvd in sorted(set(c["kv_dtype"])):
                for hkv, d in sorted(set(map(tuple, keys[c["kv_dtype"] == kvd].tolist()))):
                    sel = (c["kv_dtype"] == kvd) & (c["kv_heads"] == hkv) & (c["head_dim"] == d)
                    grids[(kvd, int(hkv), int(d))] = LogGrid(
                        np.column_stack([c["heads"][sel], c["batch"][sel], c[x][sel]]), c["latency_s"][sel])
        r = tables.get("allreduce")
        if r is not None:
            c = r.cols
            sel = np.array([ELEMENT_BYTES[d] == 2 for d in c["dtype"]], dtype=bool)
            if sel.any():
                self.allreduce = LogGrid(np.column_stack([c["num_gpus"][sel], c["nbytes"][sel]]), c["latency_s"][sel])

        e = tables.get("moe")
        if e is not None:
            for key, sel in moe_shapes(e):
                self.moe[key] = LogGrid(e.cols["tokens"][sel][:, None].astype(float), e.cols["latency_s"][sel])

    def summary(self) -> dict[str, Any]:
        """Rows and coverage per table, for reports."""
        out: dict[str, Any] = {}
        for kind, t in self.tables.items():
            out[kind] = {"rows": len(t), "files": [str(f) for f in t.files]}
        return out


@lru_cache(maxsize=16)
def _load_cached(key: tuple) -> ProfiledTables:
    files, kernels = key
    return ProfiledTables(load_aiconfigurator([f for f, _ in files], dict(kernels)))


def load_tables(paths: list[str], kernels: dict[str, str] | None = None) -> ProfiledTables:
    """Read and grid measured tables, cached by path, modification time and kernel pick
    (a replica builds one device object per GPU; they share one copy)."""
    resolved = []
    for p in paths:
        path = Path(p).expanduser().resolve()
        if not path.exists():
            raise TableError(f"{p}: no such file or directory (relative paths resolve against {os.getcwd()})")
        stamp = max((q.stat().st_mtime_ns for q in path.iterdir()), default=0) if path.is_dir() else path.stat().st_mtime_ns
        resolved.append((str(path), stamp))
    return _load_cached((tuple(resolved), tuple(sorted((kernels or {}).items()))))


# ----------------------------------------------------------------------------- device


class ProfiledGPUConfig(GPUConfig):
    """``device: {type: gpu_profiled, tables: DIR_OR_FILES, ...}``.

    ``tables``: a directory or file, or a list of them, of aiconfigurator per-operator
    tables (parquet or CSV). ``format``: ``aiconfigurator`` (the only one so far).
    ``kernels``: ``kernel_source`` pick per table kind or ``kind:dtype`` (e.g.
    ``{gemm:fp8: CutlassFP8ScaledMMLinearKernel, allreduce: NCCL}``); defaults in
    :data:`hermes_plugins.calibration.PREFERRED_KERNELS`. Every other field is the
    fallback ``gpu`` model's (:class:`~hermes_plugins.devices.GPUConfig`): ``preset``,
    overrides, ``efficiency``, ... (a ``hermes calibrate`` output fits here).
    """

    model_config = ConfigDict(extra="forbid")
    format: Literal["aiconfigurator"] = "aiconfigurator"
    kernels: dict[str, str] = Field(default_factory=dict)
    moe_dtype: str | None = Field(
        None, description="moe_dtype of the MoE table rows to use (e.g. fp8_block for a block-scaled FP8 "
        "checkpoint); default: the scenario's weight precision.")
    tables: str | list[str]

    @field_validator("tables")
    @classmethod
    def _readable(cls, v, info):
        paths = [v] if isinstance(v, str) else list(v)
        if not paths:
            raise ValueError("give at least one table file or directory")
        try:
            load_tables(paths, info.data.get("kernels"))
        except TableError as exc:
            raise ValueError(str(exc)) from None
        return v


class ProfiledGPU(HardwareNode):
    """A GPU priced from measured tables, with a :class:`~hermes_plugins.devices.GPU`
    fallback. Built from a :class:`ProfiledGPUConfig`."""

    Config = ProfiledGPUConfig
    #: this device uses the optional shape keywords of :meth:`attention_time`
    accepts_attention_shape = True

    def __init__(self, config: ProfiledGPUConfig, profile: ProfiledTables | None = None):
        self.config = config
        model_cfg = config.model_dump(exclude={"tables", "format", "kernels", "moe_dtype"})
        self.model = GPU(GPUConfig(**model_cfg))
        m = self.model
        self.name = m.name
        self.memory_bytes, self.memory_bandwidth = m.memory_bytes, m.memory_bandwidth
        self.link_bandwidth, self.link_latency = m.link_bandwidth, m.link_latency
        self.collective_latency = m.collective_latency
        self.allreduce_algorithms = m.allreduce_algorithms
        self.num_sms = m.num_sms
        self.usd_per_hour, self.idle_power, self.max_power = m.usd_per_hour, m.idle_power, m.max_power
        self.price_source, self.power_source = m.price_source, m.power_source
        paths = [config.tables] if isinstance(config.tables, str) else list(config.tables)
        self.profile = profile or load_tables(paths, config.kernels)
        self.provenance = f"measured: {', '.join(self.profile.files)}; outside the tables: {m.provenance}"
        self._sources = {k: {"measured": 0, "modelled": 0} for k in KINDS}

    # -- sources -------------------------------------------------------------------------
    def _count(self, kind: str, measured: int, modelled: int) -> None:
        s = self._sources[kind]
        s["measured"] += int(measured)
        s["modelled"] += int(modelled)

    def pricing_sources(self) -> dict[str, dict[str, int]]:
        """``{kind: {"measured": n, "modelled": n}}`` for gemm, attention_prefill,
        attention_decode, memory, allreduce and moe: how many operators (GEMM and memory
        shapes, attention calls, all-reduce sizes) were priced from the tables and how
        many by the roofline model, since the device was built."""
        return {k: dict(v) for k, v in self._sources.items()}

    def describe(self) -> dict:
        d = super().describe()
        d["pricing_sources"] = self.pricing_sources()
        d["measured_tables"] = self.profile.files
        return d

    # -- pricing -------------------------------------------------------------------------
    def peak_flops(self, dtype: str) -> float:
        return self.model.peak_flops(dtype)

    def gemm_time(self, m, n, k, dtype: str):
        """Measured where ``(m, n, k)`` is inside the ``dtype`` grid, else the model."""
        model = np.asarray(self.model.gemm_time(m, n, k, dtype), dtype=float)
        m_, n_, k_ = np.broadcast_arrays(np.asarray(m, dtype=float), np.asarray(n, dtype=float),
                                         np.asarray(k, dtype=float))
        active = m_ > 0
        grid = self.profile.gemm.get(dtype)
        if grid is None:
            self._count("gemm", 0, active.sum())
            return model
        q = np.column_stack([n_.ravel(), k_.ravel(), m_.ravel()])
        logt, ok = grid.lookup(q)
        ok = ok.reshape(m_.shape) & active
        out = np.where(ok, np.exp(logt).reshape(m_.shape), np.broadcast_to(model, m_.shape))
        self._count("gemm", ok.sum(), (active & ~ok).sum())
        return out if out.ndim else float(out)

    def attention_time(self, flops, bytes_, phase: str, dtype: str, *, seqs=None, new_tokens=None,
                       kv_tokens=None, pairs=None, heads=None, kv_heads=None, head_dim=None,
                       kv_dtype: str | None = None):
        """Time of one attention call; measured when the call's shape is given and inside
        the tables, else the model's time for ``flops`` and ``bytes_``.

        Shape keywords (per device, all optional; scalars or arrays like ``flops``):
        ``seqs`` sequences in the call; ``new_tokens`` query tokens (``sum q_i``; decode:
        ``seqs``); ``kv_tokens`` KV tokens attended (``sum c_i + q_i``; decode ``sum c_i +
        1``); ``pairs`` query-key pairs (``sum q_i c_i + q_i (q_i + 1) / 2``; decode
        ``kv_tokens``; default ``flops / (4 heads head_dim)``); ``heads``, ``kv_heads``,
        ``head_dim`` per device; ``kv_dtype`` of the KV cache (default bf16).
        """
        kind = "attention_prefill" if phase == "prefill" else "attention_decode"
        counts = {"pairs": pairs, "heads": heads, "seqs": seqs, "kv_heads": kv_heads}
        if seqs is None or heads is None or kv_heads is None or head_dim is None or kv_tokens is None:
            self._count(kind, 0, np.count_nonzero(np.asarray(flops) > 0))
            return self.model.attention_time(flops, bytes_, phase, dtype, **counts)
        grids = self.profile.prefill if phase == "prefill" else self.profile.decode
        kvd = kv_dtype or "bf16"
        if isinstance(flops, (int, float)) and not isinstance(seqs, np.ndarray):
            # scalar fast path: the step cost model prices one batch per engine step
            if flops <= 0:
                return 0.0
            grid = grids.get((kvd, int(kv_heads), int(head_dim)))
            t = None if grid is None else self._attention1(grid, phase, flops, bytes_, dtype, seqs, new_tokens,
                                                           kv_tokens, pairs, heads, kv_heads, head_dim, kvd)
            s = self._sources[kind]
            if t is None:
                s["modelled"] += 1
                return self.model.attention_time(flops, bytes_, phase, dtype, **counts)
            s["measured"] += 1
            return t
        model = self.model.attention_time(flops, bytes_, phase, dtype, **counts)
        return self._attention_array(grids, phase, model, flops, bytes_, dtype, seqs, new_tokens, kv_tokens, pairs,
                                     heads, kv_heads, head_dim, kvd, kind)

    def _uniform_bytes(self, seqs, isl, heads, kv_heads, head_dim, dtype, kvd):
        """Bytes of a uniform prefill batch by the step cost model's formula."""
        kv_tok = 2.0 * kv_heads * head_dim * dtype_bytes(kvd)
        q_bytes = 2.0 * heads * head_dim * dtype_bytes(dtype)
        return seqs * isl * (kv_tok + q_bytes)

    def _attention1(self, grid, phase, flops, bytes_, dtype, seqs, new_tokens, kv_tokens, pairs, heads,
                    kv_heads, head_dim, kvd):
        if seqs <= 0:
            return None
        if phase == "prefill":
            if pairs is None:
                pairs = flops / (4.0 * heads * head_dim)
            isl = (math.sqrt(1.0 + 8.0 * pairs / seqs) - 1.0) / 2.0
            lt = grid.lookup1(heads, seqs, isl)
            if lt is None:
                return None
            t = math.exp(lt)
            uniform = self._uniform_bytes(seqs, isl, heads, kv_heads, head_dim, dtype, kvd)
            if abs(uniform - bytes_) > 1e-9 * max(bytes_, 1.0):
                t *= float(self.model.attention_time(flops, bytes_, phase, dtype)) / float(
                    self.model.attention_time(flops, uniform, phase, dtype))
            return t
        lt = grid.lookup1(heads, seqs, kv_tokens / seqs)
        return None if lt is None else math.exp(lt)

    def _attention_array(self, grids, phase, model, flops, bytes_, dtype, seqs, new_tokens, kv_tokens, pairs,
                         heads, kv_heads, head_dim, kvd, kind):
        arrs = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (
            flops, bytes_, seqs, kv_tokens, heads, kv_heads, head_dim,
            pairs if pairs is not None else np.nan)))
        f, b, s, kv, hq, hkv, d, pr = (a.ravel() for a in arrs)
        model = np.broadcast_to(np.asarray(model, dtype=float), arrs[0].shape).ravel()
        out = model.copy()
        measured = np.zeros(len(f), dtype=bool)
        active = f > 0
        for key in sorted({(kvd, int(a), int(c)) for a, c in zip(hkv[active], d[active])}):
            grid = grids.get(key)
            if grid is None:
                continue
            sel = active & (hkv == key[1]) & (d == key[2]) & (s > 0)
            if phase == "prefill":
                p = np.where(np.isnan(pr[sel]), f[sel] / (4.0 * hq[sel] * d[sel]), pr[sel])
                x = (np.sqrt(1.0 + 8.0 * p / s[sel]) - 1.0) / 2.0
            else:
                x = kv[sel] / s[sel]
            lt, ok = grid.lookup(np.column_stack([hq[sel], s[sel], x]))
            t = np.exp(lt)
            if phase == "prefill":
                uni = self._uniform_bytes(s[sel], x, hq[sel], hkv[sel], d[sel], dtype, kvd)
                diff = np.abs(uni - b[sel]) > 1e-9 * np.maximum(b[sel], 1.0)
                if diff.any():
                    ratio = (np.asarray(self.model.attention_time(f[sel], b[sel], phase, dtype), dtype=float)
                             / np.asarray(self.model.attention_time(f[sel], uni, phase, dtype), dtype=float))
                    t = np.where(diff, t * ratio, t)
            idx = np.flatnonzero(sel)
            out[idx[ok]] = t[ok]
            measured[idx[ok]] = True
        out = np.where(active, out, 0.0)
        self._count(kind, measured.sum(), (active & ~measured).sum())
        return out.reshape(arrs[0].shape)

    def grouped_gemm_time(self, m, n, k, dtype: str, kernel: str | None = None):
        """The model's grouped expert GEMM (:meth:`~hermes_plugins.devices.GPU.
        grouped_gemm_time`): the dense GEMM table does not measure the fused MoE kernel."""
        return self.model.grouped_gemm_time(m, n, k, dtype, kernel)

    @property
    def moe_launch_s(self) -> float:
        return self.model.moe_launch_s

    def moe_time(self, tokens, hidden: int, inter: int, topk: int, experts: int, tp: int, dtype: str,
                 ep: int = 1):
        """Measured time (s) of one MoE layer at each token count of ``tokens`` (array),
        for experts of ``hidden`` x ``inter`` (unsharded) split ``tp`` ways and spread over
        ``ep`` expert-parallel devices (the table's ``moe_tp_size`` and ``moe_ep_size``),
        ``topk`` of ``experts`` per token, weights ``dtype`` (the config's ``moe_dtype``
        when set). Returns ``(seconds, measured)``: ``measured`` is False where the table
        has no value (another shape, split or dtype, a token count outside it); the caller
        prices those with its model. The counts of :meth:`pricing_sources` are token counts
        priced."""
        t = np.asarray(tokens, dtype=float)
        active = t > 0
        key = (self.config.moe_dtype or dtype, int(hidden), int(inter), int(topk), int(experts), int(tp), int(ep))
        grid = self.profile.moe.get(key)
        if grid is None:
            self._count("moe", 0, active.sum())
            return np.zeros(t.shape), np.zeros(t.shape, dtype=bool)
        lt, ok = grid.lookup(t.reshape(-1, 1))
        ok = ok.reshape(t.shape) & active
        self._count("moe", ok.sum(), (active & ~ok).sum())
        return np.where(ok, np.exp(lt).reshape(t.shape), 0.0), ok

    def memory_time(self, bytes_):
        """The model's (no measured elementwise-kernel table)."""
        self._count("memory", 0, np.count_nonzero(np.asarray(bytes_) > 0))
        return self.model.memory_time(bytes_)

    def collective_time(self, op: str, nbytes, members: int, fallback):
        """Time of collective ``op`` (``"all_reduce"``) of ``nbytes`` (scalar or array)
        over ``members`` devices: measured inside the all-reduce table, else ``fallback``
        (the caller's topology time, same shape as ``nbytes``)."""
        fb = np.asarray(fallback, dtype=float)
        nb = np.asarray(nbytes, dtype=float)
        active = (nb > 0) & (members > 1)
        grid = self.profile.allreduce
        if op != "all_reduce" or grid is None or members < 2:
            self._count("allreduce", 0, np.count_nonzero(active))
            return fallback
        nb_b, fb_b = np.broadcast_arrays(nb, fb)
        lt, ok = grid.lookup(np.column_stack([np.full(nb_b.size, float(members)), nb_b.ravel()]))
        ok = ok.reshape(nb_b.shape) & active
        out = np.where(ok, np.exp(lt).reshape(nb_b.shape), fb_b)
        self._count("allreduce", ok.sum(), (active & ~ok).sum())
        return out if out.ndim else float(out)


def interpolation_check(tables: dict[str, Table], seed: int = 0) -> dict[str, dict]:
    """How well the tables predict points they do not hold: remove measured points,
    interpolate them from the rest with this device, and compare with the fitted ``gpu``
    model on the same points. Held out: every other measured ``m`` (GEMM); a random fifth
    of the interior ``(n, k)`` pairs (GEMM, ``seed``); every other ``isl`` / KV length
    (attention). Returns ``{case: {"rows", "interpolated", "model"}}`` with
    :func:`~hermes_plugins.calibration.errors` of each; rows outside the remaining grid
    are left out of both. ``tables`` as from
    :func:`~hermes_plugins.calibration.fit_rows`.
    """
    from .calibration import attention_shape, attention_work, errors

    rng = np.random.default_rng(seed)
    out: dict[str, dict] = {}

    def run(case, kind, test):
        t = tables[kind]
        train, held = t.select(~test), t.select(test)
        dev = ProfiledGPU(ProfiledGPUConfig.model_construct(tables=[], kernels={}, format="aiconfigurator",
                                                            **GPUConfig().model_dump()),
                          profile=ProfiledTables({kind: train}))
        c = held.cols
        if kind == "gemm":
            pred = dev.gemm_time(c["m"], c["n"], c["k"], "bf16")
            model = dev.model.gemm_time(c["m"], c["n"], c["k"], "bf16")
            src = dev.pricing_sources()["gemm"]
        else:
            ph = "prefill" if kind == "context_attention" else "decode"
            f, b = attention_work(held, ph)
            shape = attention_shape(held, ph)
            pred = dev.attention_time(f, b, ph, "bf16", **shape)
            model = dev.model.attention_time(f, b, ph, "bf16", **shape)
            src = dev.pricing_sources()[f"attention_{ph}"]
        ok = pred != model
        out[case] = {"rows": int(ok.sum()), "not_covered": src["modelled"],
                     "interpolated": errors(pred[ok], c["latency_s"][ok]), "model": errors(model[ok], c["latency_s"][ok])}

    if "gemm" in tables:
        g = tables["gemm"].cols
        ms = np.unique(g["m"])
        run("gemm: every other m", "gemm", np.isin(g["m"], ms[1:-1:2]))
        ns, ks = np.unique(g["n"]), np.unique(g["k"])
        pairs = sorted({(int(n), int(k)) for n, k in zip(g["n"], g["k"]) if ns[0] < n < ns[-1] and ks[0] < k < ks[-1]})
        held = {pairs[i] for i in rng.choice(len(pairs), len(pairs) // 5, replace=False)}
        run(f"gemm: {len(held)} of {len(pairs)} interior (n, k)", "gemm",
            np.array([(int(n), int(k)) in held for n, k in zip(g["n"], g["k"])]))
    for kind, x in (("context_attention", "isl"), ("generation_attention", "step")):
        if kind in tables:
            xs = np.unique(tables[kind].cols[x])
            run(f"{kind}: every other {x}", kind, np.isin(tables[kind].cols[x], xs[1:-1:2]))
    return out


@hookimpl
def hermes_register_devices(register):
    """Register the ``gpu_profiled`` device."""
    register("gpu_profiled", ProfiledGPU, source="measured kernel tables (aiconfigurator format)")
