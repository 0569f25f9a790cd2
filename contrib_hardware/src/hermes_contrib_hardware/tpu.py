"""``tpu``: a Google Cloud TPU chip (v5e, v5p) priced by a roofline over a systolic-array
GEMM model.

Cost model
----------
Every kernel costs ``max(FLOP / (peak * compute_efficiency), bytes / (HBM bandwidth *
memory_efficiency)) + kernel_overhead`` (:func:`hermes_core.roofline_time`; Williams et al.,
"Roofline", CACM 2009).

GEMMs ``C[m, n] = A[m, k] @ B[k, n]`` run on the MXUs, 128 x 128 weight-stationary systolic
arrays (four per TensorCore; Google Cloud TPU system-architecture docs, "Each TensorCore has
four matrix-multiply units (MXUs)", https://cloud.google.com/tpu/docs/v5e). A 128 x 128 tile
of ``B`` is loaded into an array and the rows of ``A`` stream through it, so:

* ``n`` and ``k`` are padded up to multiples of ``mxu_size`` (128): a 4096 x 1000 weight
  occupies the arrays like a 4096 x 1024 one;
* ``m`` is padded up to a multiple of ``m_tile`` (default 128, the array depth): each pass
  of a weight tile costs at least the ~128 cycles the systolic pipeline takes to fill and
  drain, so a decode GEMM with ``m = 1`` pays for 128 rows of compute (an upper bound:
  XLA can overlap consecutive passes). Set ``m_tile: 8`` to model only the 8-row sublane
  padding of TPU memory layouts, or ``0`` to switch the ``m`` padding off.

FLOP counts use the padded sizes; HBM bytes use the real ones (``(m k + k n) * dtype bytes +
m n * 2``, the output in bf16), since padding happens on chip. Attention and elementwise
kernels use the plain roofline (their FLOP and bytes arrive aggregated over the batch, so
there is no shape to pad; head_dim 128 fills the MXU anyway).

What it does not model: MXU under-use when a GEMM has fewer weight tiles than MXUs, the
overlap of vector-unit work with the MXUs, the 2D/3D ICI torus (hermes connects a
replica's devices through one switch; the link figure is the chip's per-direction ICI
bandwidth), and host-side dispatch.

Datasheet figures (the ``PRESETS`` below; each field says where it comes from)
------------------------------------------------------------------------------
* v5e: Google Cloud, "TPU v5e" system architecture table,
  https://cloud.google.com/tpu/docs/v5e: peak compute per chip 197 TFLOP/s bf16 and
  393 TOP/s int8; HBM2 16 GB at 819 GB/s; bidirectional ICI bandwidth per chip 400 GB/s
  (older revisions: "Interchip Interconnect BW 1600 Gbps" = 200 GB/s, the same link
  counted one way); one TensorCore with 4 MXUs. The newest revision writes the HBM
  bandwidth as "800 GiBps" (= 859 GB/s), which matches 819.2 GB/s only as 800 x 1.024
  GB/s: a unit slip, so the long-standing 819 GB/s is kept.
* v5p: Google Cloud, "TPU v5p", https://cloud.google.com/tpu/docs/v5p and
  https://cloud.google.com/tpu/docs/v5p-training: 459 TFLOP/s bf16 (the table lists FP8 at
  the same 459: no faster fp8 path); HBM2e 95 GiB at 2,765 GB/s (the newest revision's
  "2575 GiBps" is the same rate); bidirectional ICI bandwidth per chip 1,200 GB/s
  (= "4800 Gbps" one way); two TensorCores, 4 MXUs each.

Units: ``GB``/``TB`` are 10^9/10^12 bytes, ``GiB`` 2^30. HBM capacities sold as "16 GB"
are binary (JEDEC's memory-capacity convention, JESD100B.01: 1 GB = 2^30 bytes for
memory), so v5e is 16 GiB; Google's newer v5p table writes "95 GiB" outright. Bandwidths
are decimal.

Efficiencies default to 1.0 and the kernel overhead to 0: no public per-kernel TPU
measurements were fitted, so the defaults give the datasheet bound (optimistic). Set
measured values in the scenario (``compute_efficiency``, ``memory_efficiency``,
``kernel_overhead_us``). The link latency (``link_latency_us``, default 1 us) is likewise an
assumption: Google publishes no per-hop ICI latency.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hermes_core import DTYPE_BYTES

from .roofline import PaddedRoofline, pad

GiB = 2**30


class TPUPreset(BaseModel):
    """Datasheet figures of one TPU chip (units in the field names). ``ici_bidirectional_GBps``
    is Google's per-chip figure counting both directions; hermes uses half of it as the
    per-direction link bandwidth."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    peak_tflops: dict[str, float]
    memory_GiB: float
    memory_bandwidth_GBps: float
    ici_bidirectional_GBps: float
    tensorcores: int
    mxus_per_tensorcore: int
    source: str


PRESETS: dict[str, TPUPreset] = {
    "v5e": TPUPreset(
        name="TPU-v5e",
        peak_tflops={"bf16": 197.0, "int8": 393.0},
        memory_GiB=16.0, memory_bandwidth_GBps=819.0, ici_bidirectional_GBps=400.0,
        tensorcores=1, mxus_per_tensorcore=4,
        source="Google Cloud TPU v5e docs, https://cloud.google.com/tpu/docs/v5e",
    ),
    "v5p": TPUPreset(
        name="TPU-v5p",
        peak_tflops={"bf16": 459.0, "fp8": 459.0},
        memory_GiB=95.0, memory_bandwidth_GBps=2765.0, ici_bidirectional_GBps=1200.0,
        tensorcores=2, mxus_per_tensorcore=4,
        source="Google Cloud TPU v5p docs, https://cloud.google.com/tpu/docs/v5p",
    ),
}
ALIASES = {"tpu_v5e": "v5e", "v5litepod": "v5e", "tpu_v5p": "v5p"}


class TPUConfig(BaseModel):
    """``device: {type: tpu, preset: v5e}``, optionally overriding any figure.

    ``preset``: ``v5e`` or ``v5p`` (aliases ``tpu_v5e``, ``v5litepod``, ``tpu_v5p``).
    Overrides (``None`` keeps the preset's figure): ``memory_GiB``,
    ``memory_bandwidth_GBps``, ``peak_tflops`` (per precision, merged into the preset's),
    ``link_bandwidth_GBps`` (per direction). Model knobs: ``link_latency_us``,
    ``compute_efficiency``, ``memory_efficiency`` (shares of peak reached, (0, 1]),
    ``kernel_overhead_us`` (fixed time per kernel), ``mxu_size`` (pad ``n``, ``k`` to
    multiples of it; 0 = off), ``m_tile`` (pad ``m``; 0 = off).
    """

    model_config = ConfigDict(extra="forbid")
    preset: str = "v5e"
    memory_GiB: float | None = Field(None, gt=0)
    memory_bandwidth_GBps: float | None = Field(None, gt=0)
    peak_tflops: dict[str, float] | None = None
    link_bandwidth_GBps: float | None = Field(None, gt=0)
    link_latency_us: float = Field(1.0, ge=0, description="Per-hop ICI latency (assumption, us).")
    compute_efficiency: float = Field(1.0, gt=0, le=1)
    memory_efficiency: float = Field(1.0, gt=0, le=1)
    kernel_overhead_us: float = Field(0.0, ge=0)
    mxu_size: int = Field(128, ge=0)
    m_tile: int = Field(128, ge=0)

    @model_validator(mode="after")
    def _check(self) -> TPUConfig:
        key = ALIASES.get(self.preset, self.preset)
        if key not in PRESETS:
            raise ValueError(f"unknown preset '{self.preset}'; allowed: {', '.join(sorted(PRESETS))}")
        self.preset = key
        if self.peak_tflops:
            bad = sorted(set(self.peak_tflops) - set(DTYPE_BYTES))
            if bad:
                raise ValueError(f"peak_tflops: unknown precision {bad}; allowed: {', '.join(DTYPE_BYTES)}")
        return self


class TPU(PaddedRoofline):
    """One TPU chip, built by hermes as ``TPU(TPUConfig)`` (see the module docstring for the
    cost model and the figures' sources)."""

    Config = TPUConfig

    def __init__(self, config: TPUConfig):
        p = PRESETS[config.preset]
        self.config = config
        self.preset = p
        self.name = p.name
        self.memory_bytes = (config.memory_GiB or p.memory_GiB) * GiB
        self.memory_bandwidth = (config.memory_bandwidth_GBps or p.memory_bandwidth_GBps) * 1e9
        self.link_bandwidth = (config.link_bandwidth_GBps or p.ici_bidirectional_GBps / 2) * 1e9
        self.link_latency = config.link_latency_us * 1e-6
        self.num_mxus = p.tensorcores * p.mxus_per_tensorcore
        self._peaks = {k: v * 1e12 for k, v in {**p.peak_tflops, **(config.peak_tflops or {})}.items()}
        self._overhead = config.kernel_overhead_us * 1e-6
        self.provenance = (f"{p.source}; efficiencies {config.compute_efficiency}/{config.memory_efficiency} "
                           "(1.0 = datasheet bound, not fitted)")

    def gemm_flops(self, m, n, k, dtype: str = "bf16") -> np.ndarray:
        """FLOP the MXUs spend on ``m x k @ k x n`` (any dtype): ``2 * pad(m, m_tile) *
        pad(n, mxu) * pad(k, mxu)``."""
        c = self.config
        return 2.0 * pad(m, c.m_tile) * pad(n, c.mxu_size) * pad(k, c.mxu_size)

    def describe(self) -> dict:
        d = super().describe()
        d["mxus"] = self.num_mxus
        return d
