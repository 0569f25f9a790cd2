"""GPU device model: per-operator roofline with measured efficiency factors.

``time = max(FLOP / (peak[dtype] * e_compute), bytes / (HBM bandwidth * e_memory)) + launch``
per kernel (the GenZ form, arXiv 2406.01698), with three measured refinements:

* GEMMs pay a fixed cost per output tile (prologue/epilogue), counted as ``gemm_k_overhead``
  extra steps of the k loop, and lose throughput when they have fewer ``tile_m x tile_n``
  output tiles than SMs: the compute rate is scaled by ``min(1, tiles / SMs) **
  gemm_occupancy_exponent`` (0: split-K hides idle SMs completely, 1: not at all). The
  tensor cores compute whole output tiles (``m`` and ``n`` rounded up to tile multiples),
  and the ``max`` is a smooth one, ``(compute**p + memory**p) ** (1/p)`` with ``p =
  gemm_roofline_sharpness``: near the ridge the weight stream and the MMAs do not hide
  each other completely.
* Which kernel the GEMM library runs is optional (fields off by default): skinny GEMMs
  may compute fewer rows than a tile (``gemm_tile_m_min``), the compute term may be the mean
  over several candidate tiles (``gemm_tiles``), and the occupancy may count the idle SMs
  of the last, partial wave (``gemm_wave_quantisation``). ``hermes calibrate`` picks them
  where they fit better (Vidur's eager-mode profiles: yes; aiconfigurator's CUDA-graph
  tables: no).
* Prefill attention does not overlap its Q/K/V/O traffic and the diagonal tiles of the
  causal mask with its matmuls: ``time = FLOP / (peak * e_c) + bytes / (BW * e_m) + launch``.
* Decode attention is the plain roofline above.

The exact formulas, fitted values and the error they leave are in
``docs/performance-model.md``.

Datasheet numbers (peaks are dense, without sparsity):

* A100 SXM4 80GB: NVIDIA A100 datasheet (2021): BF16/FP16 312 TFLOP/s, TF32 156, FP32 19.5,
  INT8 624 TOP/s; HBM2e 2,039 GB/s; 80 GB; NVLink 3 600 GB/s total (300 GB/s per
  direction); 108 SMs.
* H100 SXM5 80GB: NVIDIA H100 datasheet (2023): BF16/FP16 989.4, FP8/INT8 1,978.9, TF32
  494.7, FP32 66.9 TFLOP/s; HBM3 3.35 TB/s; 80 GB; NVLink 4 900 GB/s total (450 per
  direction); 132 SMs.
* H200 SXM 141GB: NVIDIA H200 datasheet (2024): compute as H100 SXM; HBM3e 4.8 TB/s;
  141 GB; NVLink 900 GB/s total; 132 SMs.
* B200 (HGX B200): NVIDIA Blackwell datasheet (2024): BF16/FP16 2,250, FP8 4,500, FP4
  9,000 TFLOP/s dense; HBM3e 8 TB/s; 180 GB; NVLink 5 1.8 TB/s total (900 per direction);
  148 SMs.

Memory capacity is what the driver reports (nvidia-smi "Total", MiB) where public: A100
81,920 MiB, H100 81,559 MiB, H200 143,771 MiB; B200 uses the datasheet's 180 GB (10^9).
Datasheet GB and TB/s are powers of ten; GiB/MiB are powers of two; hermes converts both
to bytes.

Default efficiencies, the link latency and the link bandwidth efficiency come from a fit on
measured H100 SXM kernels (vLLM 0.24.0, ai-dynamo/aiconfigurator tables), written to
``data/efficiency_h100_sxm.json`` by ``benchmarks/fit_gpu_efficiency.py``; see
``docs/performance-model.md`` for the fit and the error it leaves. The same factors are
used for the other presets, which have no measured tables yet.

Price and power (the run's ``cost`` section; model in :class:`hermes_core.HardwareNode`):

* Price per GPU-hour: one public on-demand rate card for all four presets, so that
  presets compare with each other: Hyperstack (NexGen Cloud), https://www.hyperstack.cloud/gpu-pricing,
  read 2026-08-26 (transcribed in api-evangelist/nexgen-cloud
  ``plans/nexgen-cloud-plans-pricing.yml``): A100 SXM 80GB $1.60, H100 SXM $3.20, H200 SXM
  $3.99, B200 $6.00. Hyperscalers charge about twice as much (AWS on-demand, us-east-1:
  p4de.24xlarge 8 x A100 80GB $27.44705/h = $3.43 per GPU-hour and p5.48xlarge 8 x H100
  $55.04/h = $6.88, retrieved 2026-11-09 in datareceipts/data-receipts
  ``109-gpu-pricing/hyperscalers.json``; p5.48xlarge was $98.32/h = $12.29 before AWS's June
  2025 cut; p5en.48xlarge 8 x H200 $63.296/h = $7.91, ``dstack offer`` output in
  dstackai/dstack pull request 4110, 2026-08-06); set ``usd_per_hour`` to use them.
* Full-load power ``tdp_W``: the datasheets' maximum TDP of the SXM boards: A100 400 W
  (NVIDIA A100 datasheet, 2021), H100 700 W and H200 700 W ("up to 700W (configurable)",
  NVIDIA H100 datasheet 2023, H200 datasheet 2024), B200 1,000 W (HGX B200, NVIDIA
  Blackwell datasheet 2024).
* Idle power ``idle_W``, a GPU holding a loaded model and its CUDA context between steps
  (performance state P0, not a bare idle GPU): H100 140 W, measured (``nvidia-smi`` on two
  H100 80GB HBM3 in P0 with 72,790 MiB allocated at 0 % and 4 % utilisation read 145 W and
  140 W: github.com/wilicc/gpu-burn issue 114, 2024-10-25); the others are an assumption,
  the same 20 % of TDP: A100 80 W, H200 140 W (same GH100 die and board power as the
  H100), B200 200 W. A CUDA context alone keeps an idle GPU 26-50 W above bare idle on HBM
  parts (Vadari, "The Model Parking Tax", arXiv 2605.23918, 2026).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hermes_core import HardwareNode, hookimpl
from hermes_core.hardware import DTYPE_BYTES, check_power_order

MiB = 2**20


#: Fused-MoE kernel families a stage may ask for instead of the engine's default
#: (``llm_serving`` field ``moe_kernel``): ``marlin``, the Marlin W4A16 kernels.
MOE_KERNELS = ("marlin",)
#: Expert weight precisions that vLLM and SGLang run only through the Marlin kernels:
#: INT4 weight-only (compressed-tensors W4A16, ``CompressedTensorsWNA16MarlinMoEMethod``).
MARLIN_ONLY_DTYPES = ("int4_g32",)


class GPUPreset(BaseModel):
    """Datasheet figures of one GPU model (units in field names). ``link_latency_us``:
    one-hop latency of the scale-up link; ``None`` takes the fitted default
    (:func:`fitted_link`). ``peak_tflops["mxfp4"]`` is the rate of GEMMs on MXFP4 weights:
    the FP4 tensor-core rate where the GPU has one (Blackwell), else its BF16 rate (A100,
    H100, H200 have no FP4 tensor cores; vLLM's Marlin and Triton MXFP4 kernels dequantize
    the weights to BF16 inside the GEMM, "w4a16"). ``peak_tflops["int4_g32"]``: GEMMs on
    INT4 weight-only experts (Marlin W4A16 kernels), the BF16 rate on every GPU."""

    model_config = ConfigDict(extra="forbid")
    name: str
    peak_tflops: dict[str, float]
    memory_bytes: float
    memory_bandwidth_GBps: float
    link_bandwidth_GBps: float
    link_latency_us: float | None = None
    #: NVSwitch that reduces in the switch (NVLink SHARP, NVSwitch 3 and later: HGX H100,
    #: H200, B200), which NCCL's NVLS all-reduce uses (the ``switch`` algorithm).
    nvlink_sharp: bool = False
    num_sms: int
    provenance: str
    #: rental price of one GPU ($/hour), full-load (TDP) and idle power (W), and their sources
    #: (module docstring)
    usd_per_hour: float
    tdp_W: float
    idle_W: float
    price_source: str
    power_source: str


#: the public on-demand rate card of every preset's price (module docstring)
_RATE_CARD = "Hyperstack on-demand rate card (hyperstack.cloud/gpu-pricing, read 2026-08-26): "
_IDLE_ASSUMED = "idle: assumption, 20 % of TDP as measured on the H100"

PRESETS: dict[str, GPUPreset] = {
    "a100_sxm_80gb": GPUPreset(
        name="A100-SXM4-80GB",
        peak_tflops={"bf16": 312, "fp16": 312, "tf32": 156, "fp32": 19.5, "int8": 624, "mxfp4": 312,
                     "int4_g32": 312},
        memory_bytes=81920 * MiB, memory_bandwidth_GBps=2039, link_bandwidth_GBps=300,
        num_sms=108, provenance="NVIDIA A100 Tensor Core GPU datasheet (2021)",
        usd_per_hour=1.60, tdp_W=400, idle_W=80,
        price_source=_RATE_CARD + "NVIDIA A100 SXM 80 GB $1.60 per GPU-hour",
        power_source="TDP: NVIDIA A100 datasheet (2021), 400 W (SXM); " + _IDLE_ASSUMED,
    ),
    "h100_sxm": GPUPreset(
        name="H100-SXM5-80GB",
        peak_tflops={"bf16": 989.4, "fp16": 989.4, "fp8": 1978.9, "int8": 1978.9, "tf32": 494.7, "fp32": 66.9,
                     "mxfp4": 989.4, "int4_g32": 989.4},
        memory_bytes=81559 * MiB, memory_bandwidth_GBps=3350, link_bandwidth_GBps=450,
        nvlink_sharp=True, num_sms=132, provenance="NVIDIA H100 Tensor Core GPU datasheet (2023)",
        usd_per_hour=3.20, tdp_W=700, idle_W=140,
        price_source=_RATE_CARD + "NVIDIA H100 SXM $3.20 per GPU-hour",
        power_source=("TDP: NVIDIA H100 datasheet (2023), up to 700 W (SXM); idle: nvidia-smi, H100 80GB HBM3 "
                      "in P0 with memory allocated at 0-4 % utilisation, 140-145 W (wilicc/gpu-burn issue 114, "
                      "2024-10-25)"),
    ),
    "h200_sxm": GPUPreset(
        name="H200-SXM-141GB",
        peak_tflops={"bf16": 989.4, "fp16": 989.4, "fp8": 1978.9, "int8": 1978.9, "tf32": 494.7, "fp32": 66.9,
                     "mxfp4": 989.4, "int4_g32": 989.4},
        memory_bytes=143771 * MiB, memory_bandwidth_GBps=4800, link_bandwidth_GBps=450,
        nvlink_sharp=True, num_sms=132, provenance="NVIDIA H200 Tensor Core GPU datasheet (2024)",
        usd_per_hour=3.99, tdp_W=700, idle_W=140,
        price_source=_RATE_CARD + "NVIDIA H200 SXM $3.99 per GPU-hour",
        power_source=("TDP: NVIDIA H200 datasheet (2024), up to 700 W (SXM); idle: assumption, the H100's "
                      "measured 140 W (same GH100 die and board power)"),
    ),
    "b200": GPUPreset(
        name="B200-180GB",
        peak_tflops={"bf16": 2250, "fp16": 2250, "fp8": 4500, "int8": 4500, "fp4": 9000, "mxfp4": 9000, "tf32": 1100, "fp32": 75,
                     "int4_g32": 2250},
        memory_bytes=180e9, memory_bandwidth_GBps=8000, link_bandwidth_GBps=900,
        nvlink_sharp=True, num_sms=148, provenance="NVIDIA Blackwell (HGX B200) datasheet (2024)",
        usd_per_hour=6.00, tdp_W=1000, idle_W=200,
        price_source=_RATE_CARD + "NVIDIA B200 $6.00 per GPU-hour",
        power_source="TDP: HGX B200, 1,000 W per GPU (NVIDIA Blackwell datasheet, 2024); " + _IDLE_ASSUMED,
    ),
}
ALIASES = {"a100": "a100_sxm_80gb", "h100": "h100_sxm", "h200": "h200_sxm"}


def _or(value, default):
    """``value``, or ``default`` where it is unset (None)."""
    return default if value is None else value


class Efficiency(BaseModel):
    """Efficiency factors in (0, 1] and fixed per-kernel costs (defaults: hand-set values
    used only when no fit file exists; :func:`fitted_efficiency` gives the measured ones).

    GEMM: ``gemm_compute``/``gemm_memory`` are the fractions of peak FLOP/s and HBM
    bandwidth reached; ``gemm_compute_fp8``: ``gemm_compute`` for FP8 GEMMs (unset:
    ``gemm_compute``), whose kernels reach a smaller share of their twice-as-high peak
    (measured H100 per-tensor FP8 Cutlass GEMMs under vLLM 0.24.0, without their
    activation quantization: about 0.52 against bf16's 0.85; see
    ``benchmarks/fit_gpu_efficiency.py``); grouped expert GEMMs keep ``gemm_compute`` (their
    ``moe_compute`` is fitted on top of it); ``tile_m_fp8``, ``tile_n_fp8``,
    ``gemm_k_overhead_fp8``, ``gemm_occupancy_exponent_fp8``, ``launch_us_fp8``: the tile,
    fixed costs and occupancy of FP8 GEMMs (not grouped) where their kernels differ from the
    bf16 ones (each unset: the bf16 field); ``gemm_k_overhead``: fixed cost per output tile (prologue, epilogue)
    as extra k-loop steps, so compute is ``2 m n (k + gemm_k_overhead)`` FLOP;
    ``tile_m``/``tile_n``: output tile that sets the tile count and the padded output the
    tensor cores compute (0 disables both); ``gemm_occupancy_exponent``: compute rate
    scales by ``min(1, tiles/SMs) ** x``; ``gemm_roofline_sharpness``: ``p`` of the smooth
    roofline ``(compute**p + memory**p) ** (1/p)`` (near the ridge neither the HBM stream
    nor the tensor cores hide the other completely; 0 takes the hard ``max``).
    Kernel selection (dense GEMMs, not grouped; each default leaves the single-tile model
    above): ``gemm_tile_m_min`` (rows): a GEMM of ``m`` rows runs a tile of
    ``clip(2^ceil(log2 m), gemm_tile_m_min, tile_m)`` rows, as skinny GEMMs run small-row or
    GEMV-like kernels instead of padding to ``tile_m`` (0: always ``tile_m``; the same rule
    as ``moe_block_m_min``); ``gemm_tiles``: the output tiles the GEMM library chooses among
    (e.g. ``"64x128,128x128,128x256,256x128"``; unset: ``tile_m x tile_n`` alone): the compute
    term is the mean of the tiles' (tile- and wave-quantised) compute times, the expected
    cost when the library's per-shape choice is unknown; ``gemm_wave_quantisation``: the
    occupancy counts the idle SMs of the last, partial wave as well, ``(tiles / (ceil(tiles /
    SMs) SMs)) ** gemm_occupancy_exponent``, instead of those of the first wave only,
    ``min(1, tiles / SMs) ** gemm_occupancy_exponent`` (the two agree up to one wave). Tile
    and wave quantisation: NVIDIA, "Matrix Multiplication Background User's Guide" (Deep
    Learning Performance documentation); the three fields were added for, and are fitted by
    ``hermes calibrate`` on, Vidur's eager-mode H100 and A100 projection profiles
    (``docs/performance-model.md`` section 1).
    Attention: ``attention_prefill_compute``/``attention_prefill_memory`` and
    ``attention_decode_compute``/``attention_decode_memory``, likewise, per phase;
    ``attention_launch_us``: fixed time per attention call (kernel launches, KV-cache write,
    metadata); ``attention_prefill_score_ps``: time per query-key score and query head of a
    prefill call (picoseconds; the softmax's exponent and rescaling per score, which does
    not grow with ``head_dim`` as the matmul FLOP do); ``attention_decode_seq_head_ns``: time
    per (sequence x KV head) of a decode call (nanoseconds; each split of the paged kernel
    loads its block table, query and softmax state and writes a partial output). Both
    need the call's shape (:attr:`GPU.accepts_attention_shape`); 0 leaves them out.
    ``memory_kernels``: elementwise kernels' share of HBM bandwidth;
    ``launch_us``: fixed time per GEMM (and elementwise) kernel; ``memory_launch_us``: fixed
    time per elementwise kernel when it differs from a GEMM's (unset: ``launch_us``).
    MoE (the fused expert kernels of vLLM/SGLang, priced as grouped GEMMs by
    :meth:`GPU.grouped_gemm_time`): ``moe_compute`` scales the GEMM compute rate of the
    grouped expert GEMMs; ``moe_launch_us``: fixed time per MoE layer (routing, token
    sort/align, combine kernels); ``moe_compute_mxfp4``: ``moe_compute`` for experts with
    MXFP4 weights, whose kernels differ (vLLM's ``vllm_mxfp4_moe``; unset: ``moe_compute``);
    ``moe_block_m_min``: smallest token block of a grouped expert GEMM. Fused-MoE kernels
    pad each expert's tokens to a block (vLLM's ``moe_align_block_size``) and pick the block
    per batch (tuned configs: 16-64 rows), so an expert with ``m`` tokens computes
    ``clip(2^ceil(log2 m), moe_block_m_min, tile_m)`` rows, not a whole ``tile_m`` (0: always
    ``tile_m``); ``moe_block_m_min_mxfp4``: the same for MXFP4 experts (unset:
    ``moe_block_m_min``). ``moe_compute_marlin``, ``moe_block_m_min_marlin``: the same two for
    the Marlin W4A16 fused-MoE kernels (vLLM ``MarlinExperts``: 4-bit weights dequantized to
    BF16 in registers), which an engine runs instead of its default kernel when asked (vLLM
    ``VLLM_MXFP4_USE_MARLIN=1``; stage field ``moe_kernel: marlin``); unset: the MXFP4 ones.
    """

    model_config = ConfigDict(extra="forbid")
    gemm_compute: float = Field(0.75, gt=0, le=1)
    gemm_compute_fp8: float | None = Field(None, gt=0, le=1)
    tile_m_fp8: int | None = Field(None, ge=0)
    tile_n_fp8: int | None = Field(None, ge=0)
    gemm_k_overhead_fp8: float | None = Field(None, ge=0)
    gemm_occupancy_exponent_fp8: float | None = Field(None, ge=0, le=1)
    launch_us_fp8: float | None = Field(None, ge=0)
    gemm_memory: float = Field(0.8, gt=0, le=1)
    gemm_k_overhead: float = Field(0.0, ge=0)
    gemm_occupancy_exponent: float = Field(0.0, ge=0, le=1)
    gemm_roofline_sharpness: float = Field(3.9, ge=0, le=50)
    tile_m: int = Field(64, ge=0)
    tile_n: int = Field(128, ge=0)
    gemm_tile_m_min: int = Field(0, ge=0)
    gemm_tiles: str | None = None
    gemm_wave_quantisation: bool = False
    attention_prefill_compute: float = Field(0.6, gt=0, le=1)
    attention_prefill_memory: float = Field(0.8, gt=0, le=1)
    attention_decode_compute: float = Field(0.5, gt=0, le=1)
    attention_decode_memory: float = Field(0.7, gt=0, le=1)
    attention_launch_us: float = Field(8.0, ge=0)
    attention_prefill_score_ps: float = Field(0.0, ge=0)
    attention_decode_seq_head_ns: float = Field(0.0, ge=0)
    memory_kernels: float = Field(0.7, gt=0, le=1)
    launch_us: float = Field(4.0, ge=0)
    memory_launch_us: float | None = Field(None, ge=0)
    moe_compute: float = Field(1.0, gt=0, le=1)
    moe_launch_us: float = Field(0.0, ge=0)
    moe_compute_mxfp4: float | None = Field(None, gt=0, le=1)
    moe_block_m_min: int = Field(0, ge=0)
    moe_block_m_min_mxfp4: int | None = Field(None, ge=0)
    moe_compute_marlin: float | None = Field(None, gt=0, le=1)
    moe_block_m_min_marlin: int | None = Field(None, ge=0)
    source: str = "hermes default"

    @field_validator("gemm_tiles")
    @classmethod
    def _tile_list(cls, v: str | None) -> str | None:
        if v is not None:
            parse_tiles(v)  # raises ValueError naming the bad entry
        return v


@lru_cache(maxsize=None)
def parse_tiles(text: str) -> tuple[tuple[int, int], ...]:
    """``(tile_m, tile_n)`` pairs of an :attr:`Efficiency.gemm_tiles` string such as
    ``"64x128,128x256"`` (comma- or space-separated ``ROWSxCOLUMNS``, each a positive
    integer). Raises ``ValueError`` naming the entry that is not one."""
    tiles = []
    for item in text.replace(",", " ").split():
        rows, _, cols = item.lower().partition("x")
        if not (rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
            raise ValueError(f"{item!r} is not a tile ROWSxCOLUMNS such as 128x256")
        tiles.append((int(rows), int(cols)))
    if not tiles:
        raise ValueError("no tile given (e.g. '64x128,128x256')")
    return tuple(tiles)


class LinkFit(BaseModel):
    """Scale-up link defaults for every preset: ``link_latency_us`` (one hop; a device to
    device path through the NVSwitch is two hops), ``link_bandwidth_efficiency`` (share
    of the datasheet per-direction bandwidth that the ring / two-shot all-reduce and
    send/recv reach) and ``collective_latency_us`` (their fixed cost per collective, see
    :meth:`hermes_core.Topology.allreduce_time`). The all-reduce algorithms picked by
    message size (:data:`hermes_core.topology.ALLREDUCE_TRAFFIC`) beside the ring:
    ``one_shot_bandwidth_efficiency`` and ``one_shot_latency_us``, and on presets whose
    NVSwitch reduces in the switch (:attr:`GPUPreset.nvlink_sharp`)
    ``switch_bandwidth_efficiency`` and ``switch_latency_us``; ``None``: not offered (the
    ring alone, as before these fields existed)."""

    model_config = ConfigDict(extra="ignore")
    link_latency_us: float = Field(0.0, ge=0)
    link_bandwidth_efficiency: float = Field(1.0, gt=0, le=1)
    collective_latency_us: float = Field(5.0, ge=0)
    one_shot_bandwidth_efficiency: float | None = Field(None, gt=0, le=1)
    one_shot_latency_us: float | None = Field(None, ge=0)
    switch_bandwidth_efficiency: float | None = Field(None, gt=0, le=1)
    switch_latency_us: float | None = Field(None, ge=0)
    source: str = "hermes default"


#: LinkFit / GPUConfig field pairs of the all-reduce algorithms offered beside the ring.
ALLREDUCE_ALGORITHM_FIELDS = {
    "one_shot": ("one_shot_bandwidth_efficiency", "one_shot_latency_us"),
    "switch": ("switch_bandwidth_efficiency", "switch_latency_us"),
}


@lru_cache(maxsize=None)
def _fit_file(name: str) -> dict:
    try:
        text = (resources.files("hermes_plugins") / "data" / f"efficiency_{name}.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)


def fitted_efficiency(name: str = "h100_sxm") -> Efficiency:
    """Efficiency factors fitted on measured kernels, from ``data/efficiency_<name>.json``
    (written by ``benchmarks/fit_gpu_efficiency.py``; its ``"moe"`` section, the MoE
    factors, by ``benchmarks/fit_moe_efficiency.py``, ``"moe_mxfp4"`` by
    ``benchmarks/fit_moe_efficiency.py --mxfp4`` and ``"moe_marlin"`` by ``... --marlin``);
    hermes defaults if absent."""
    doc = _fit_file(name)
    eff = dict(doc.get("efficiency", {}))
    for section, label in (("moe", "MoE"), ("moe_mxfp4", "MXFP4 MoE"), ("moe_marlin", "Marlin MoE")):
        part = doc.get(section, {}).get("efficiency", {})
        if part:
            eff.update(part)
            eff["source"] = f"{eff.get('source', 'hermes default')}; {label}: {doc[section].get('source', '')}"
    return Efficiency(**eff)


def fitted_link(name: str = "h100_sxm") -> LinkFit:
    """Link latency and bandwidth efficiency fitted on the measured all-reduce table, from
    the ``"link"`` section of ``data/efficiency_<name>.json``; hermes defaults if absent."""
    return LinkFit(**_fit_file(name).get("link", {}))


class GPUConfig(BaseModel):
    """``device: {type: gpu, preset: h100_sxm}``, optionally overriding any figure.

    ``preset``: one of a100_sxm_80gb, h100_sxm, h200_sxm, b200 (aliases a100, h100, h200).
    Overrides: ``memory_GiB``, ``memory_bandwidth_GBps``, ``peak_tflops`` (per dtype),
    ``link_bandwidth_GBps`` (datasheet per-direction figure), ``link_latency_us`` (one hop),
    ``link_bandwidth_efficiency`` (the device's ``link_bandwidth`` is the datasheet figure
    times this; set 1 to use the figure as is), ``collective_latency_us`` (fixed cost of one
    all-reduce or send/recv), ``one_shot_bandwidth_efficiency`` / ``one_shot_latency_us`` and
    ``switch_bandwidth_efficiency`` / ``switch_latency_us`` (the all-reduce algorithms beside
    the ring, :class:`LinkFit`), ``allreduce_algorithms`` (which of ``ring``, ``one_shot``,
    ``switch`` the all-reduce may pick; default: every fitted one the preset has),
    ``efficiency`` (fields of
    :class:`Efficiency`; unspecified ones keep the fitted defaults). Price and power
    (``None`` keeps the preset's, see the module docstring): ``usd_per_hour`` (one GPU's
    rental price, $/hour), ``tdp_W`` (full-load power, W), ``idle_W`` (idle power, W); all
    ``>= 0`` and ``idle_W <= tdp_W``.
    """

    model_config = ConfigDict(extra="forbid")
    #: The presets this config accepts and their short names: a plugin adds a GPU by
    #: subclassing the config with a larger mapping (docs/plugins.md, "A new GPU preset").
    presets: ClassVar[dict[str, GPUPreset]] = PRESETS
    aliases: ClassVar[dict[str, str]] = ALIASES
    preset: str = "h100_sxm"
    memory_GiB: float | None = Field(None, gt=0)
    memory_bandwidth_GBps: float | None = Field(None, gt=0)
    peak_tflops: dict[str, float] | None = None
    link_bandwidth_GBps: float | None = Field(None, gt=0)
    link_latency_us: float | None = Field(None, ge=0)
    link_bandwidth_efficiency: float | None = Field(None, gt=0, le=1)
    collective_latency_us: float | None = Field(None, ge=0)
    one_shot_bandwidth_efficiency: float | None = Field(None, gt=0, le=1)
    one_shot_latency_us: float | None = Field(None, ge=0)
    switch_bandwidth_efficiency: float | None = Field(None, gt=0, le=1)
    switch_latency_us: float | None = Field(None, ge=0)
    allreduce_algorithms: list[Literal["ring", "one_shot", "switch"]] | None = None
    num_sms: int | None = Field(None, gt=0)
    efficiency: dict[str, bool | float | int | str | None] = Field(default_factory=dict)
    usd_per_hour: float | None = Field(None, ge=0, allow_inf_nan=False)
    tdp_W: float | None = Field(None, ge=0, allow_inf_nan=False)
    idle_W: float | None = Field(None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _known_preset(self):
        presets = type(self).presets
        key = type(self).aliases.get(self.preset, self.preset)
        if key not in presets:
            raise ValueError(f"unknown preset '{self.preset}'; allowed: {', '.join(sorted(presets))}")
        self.preset = key
        if self.peak_tflops:
            bad = sorted(set(self.peak_tflops) - set(DTYPE_BYTES))
            if bad:
                raise ValueError(f"peak_tflops: unknown precision {bad}; allowed: {', '.join(DTYPE_BYTES)}")
            zero = sorted(k for k, v in self.peak_tflops.items() if not (v > 0 and math.isfinite(v)))
            if zero:
                raise ValueError(f"peak_tflops: {zero[0]} must be a finite number > 0 TFLOP/s "
                                 f"(got {self.peak_tflops[zero[0]]!r})")
        try:
            Efficiency(**{**fitted_efficiency().model_dump(), **self.efficiency})
        except ValidationError as exc:
            from hermes_core.plugins import format_validation_error

            raise ValueError(format_validation_error(exc, "efficiency", Efficiency)) from None
        p = presets[key]
        check_power_order(self, p.idle_W, p.tdp_W, f"preset {key}")
        return self


class GPU(HardwareNode):
    """A GPU priced by the roofline above. Built from a :class:`GPUConfig`."""

    Config = GPUConfig

    def __init__(self, config: GPUConfig):
        p = type(config).presets[config.preset]
        link = fitted_link()
        self.config = config
        self.name = p.name
        self.memory_bytes = config.memory_GiB * 2**30 if config.memory_GiB else p.memory_bytes
        self.memory_bandwidth = (config.memory_bandwidth_GBps or p.memory_bandwidth_GBps) * 1e9
        link_eff = config.link_bandwidth_efficiency or link.link_bandwidth_efficiency
        self.link_bandwidth = (config.link_bandwidth_GBps or p.link_bandwidth_GBps) * 1e9 * link_eff
        lat_us = next(v for v in (config.link_latency_us, p.link_latency_us, link.link_latency_us) if v is not None)
        self.link_latency = lat_us * 1e-6
        coll = config.collective_latency_us if config.collective_latency_us is not None else link.collective_latency_us
        self.collective_latency = coll * 1e-6
        # all-reduce algorithms, bandwidth shares relative to link_bandwidth (the ring's)
        algos: dict[str, tuple[float, float]] = {"ring": (1.0, self.collective_latency)}
        for algo, (eff_field, lat_field) in ALLREDUCE_ALGORITHM_FIELDS.items():
            eff = _or(getattr(config, eff_field), getattr(link, eff_field))
            alg_lat = _or(getattr(config, lat_field), getattr(link, lat_field))
            if eff is not None and alg_lat is not None and (algo != "switch" or p.nvlink_sharp):
                algos[algo] = (eff / link_eff, alg_lat * 1e-6)
        if config.allreduce_algorithms is not None:
            algos = {a: v for a, v in algos.items() if a in config.allreduce_algorithms}
            if not algos:
                raise ValueError("allreduce_algorithms: none of "
                                 f"{config.allreduce_algorithms} is fitted for preset '{config.preset}'")
        # the ring alone is the topology's default formula
        self.allreduce_algorithms = None if set(algos) == {"ring"} else algos
        self.num_sms = config.num_sms or p.num_sms
        self._peaks = {k: v * 1e12 for k, v in {**p.peak_tflops, **(config.peak_tflops or {})}.items()}
        self.eff = Efficiency(**{**fitted_efficiency().model_dump(), **config.efficiency})
        self.provenance = p.provenance + f"; efficiency: {self.eff.source}; link: {link.source}"
        self.usd_per_hour = _or(config.usd_per_hour, p.usd_per_hour)
        self.max_power = _or(config.tdp_W, p.tdp_W)
        self.idle_power = _or(config.idle_W, p.idle_W)
        self.price_source = "scenario (usd_per_hour)" if config.usd_per_hour is not None else p.price_source
        given = [f for f in ("tdp_W", "idle_W") if getattr(config, f) is not None]
        self.power_source = (f"scenario ({', '.join(given)})" + ("" if len(given) == 2 else f"; {p.power_source}")
                             if given else p.power_source)

    def peak_flops(self, dtype: str) -> float:
        try:
            return self._peaks[dtype]
        except KeyError:
            raise ValueError(
                f"{self.name} has no {dtype} peak; available: {', '.join(sorted(self._peaks))}"
            ) from None

    def grouped_gemm_time(self, m, n, k, dtype: str, kernel: str | None = None):
        """One grouped expert GEMM (all active experts' ``[m, k] x [k, n_e]`` in one launch,
        ``m`` tokens per expert, ``n`` the experts' summed width): :meth:`gemm_time` with the
        compute rate scaled by ``moe_compute`` and each expert's tokens padded to the kernel's
        token block, ``clip(2^ceil(log2 m), moe_block_m_min, tile_m)`` (``moe_block_m_min =
        0``: ``tile_m``); for ``dtype == "mxfp4"`` the ``*_mxfp4`` fields where set.
        ``kernel`` (one of :data:`MOE_KERNELS`) names a kernel family other than the
        engine's default: ``"marlin"`` takes the ``*_marlin`` fields where set (else the
        MXFP4 ones); INT4 weight-only experts (:data:`MARLIN_ONLY_DTYPES`) always take the
        Marlin factors. Plus, per MoE layer, :attr:`moe_launch_s`. Raises ``ValueError`` for
        an unknown ``kernel``."""
        e = self.eff
        if dtype in MARLIN_ONLY_DTYPES and kernel is None:
            kernel = "marlin"
        scale, low = e.moe_compute, e.moe_block_m_min
        if dtype == "mxfp4" or kernel == "marlin":
            scale = e.moe_compute if e.moe_compute_mxfp4 is None else e.moe_compute_mxfp4
            low = e.moe_block_m_min if e.moe_block_m_min_mxfp4 is None else e.moe_block_m_min_mxfp4
        if kernel == "marlin":
            scale = scale if e.moe_compute_marlin is None else e.moe_compute_marlin
            low = low if e.moe_block_m_min_marlin is None else e.moe_block_m_min_marlin
        elif kernel is not None:
            raise ValueError(f"unknown MoE kernel {kernel!r}; allowed: {', '.join(MOE_KERNELS)}")
        block = None
        if low and e.tile_m:
            mm = np.maximum(np.asarray(m, dtype=float), 1.0)
            block = np.clip(2.0 ** np.ceil(np.log2(mm)), min(low, e.tile_m), e.tile_m)
        return self.gemm_time(m, n, k, dtype, compute_scale=scale, tile_m=block, grouped=True)

    @property
    def moe_launch_s(self) -> float:
        """Fixed time (s) of one MoE layer's routing, sort and combine kernels."""
        return self.eff.moe_launch_us * 1e-6

    def gemm_time(self, m, n: int, k: int, dtype: str, compute_scale: float = 1.0, tile_m=None,
                  grouped: bool = False):
        """Smooth roofline of one GEMM, ``(compute**p + memory**p) ** (1/p) + launch`` (``p =
        gemm_roofline_sharpness``; 0 takes ``max(compute, memory)``), with

        * ``compute = 2 M N (k + k0) / (peak * e_c * occ)`` (``e_c``: ``gemm_compute``, or
          ``gemm_compute_fp8`` for an FP8 GEMM that is not ``grouped``, which also takes the
          ``*_fp8`` tile, ``k0``, occupancy exponent and launch time where they are set): the tensor cores compute whole
          ``tile_m x tile_n`` output tiles, so ``M = ceil(m/tile_m) tile_m`` and ``N =
          ceil(n/tile_n) tile_n`` (tile quantisation); ``occ = min(1, tiles / SMs) **
          gemm_occupancy_exponent``, or with ``gemm_wave_quantisation`` ``(tiles / (ceil(tiles
          / SMs) SMs)) ** gemm_occupancy_exponent`` (the busy share of SMs over all waves);
          for a GEMM that is not grouped, ``tile_m`` is ``clip(2^ceil(log2 m),
          gemm_tile_m_min, tile_m)`` when ``gemm_tile_m_min`` is set, and with ``gemm_tiles``
          set (and no FP8 tile of its own) ``compute`` is the mean over those tiles;
        * ``memory = ((m k + k n) * dtype bytes + m n * 2) / (BW * e_m)`` (16-bit output).

        ``n`` and ``k`` may also be arrays (broadcast with ``m``). ``compute_scale``
        multiplies the compute rate and ``tile_m`` (int or array like ``m``) replaces the
        output tile's rows; ``grouped`` marks a grouped expert GEMM (all three for
        :meth:`grouped_gemm_time`). Formulas and fitted values: ``docs/performance-model.md``
        section 1."""
        e = self.eff
        m = np.asarray(m, dtype=float)
        n = np.asarray(n, dtype=float)
        k = np.asarray(k, dtype=float)
        b = DTYPE_BYTES[dtype]
        share, tm0, tn, k0, occ, launch = (e.gemm_compute, e.tile_m, e.tile_n, e.gemm_k_overhead,
                                           e.gemm_occupancy_exponent, e.launch_us)
        own_tile = False
        if dtype == "fp8" and not grouped:
            own_tile = e.tile_m_fp8 is not None or e.tile_n_fp8 is not None
            share, tm0, tn, k0, occ, launch = (
                _or(e.gemm_compute_fp8, share), _or(e.tile_m_fp8, tm0), _or(e.tile_n_fp8, tn),
                _or(e.gemm_k_overhead_fp8, k0), _or(e.gemm_occupancy_exponent_fp8, occ), _or(e.launch_us_fp8, launch))
        rate = self.peak_flops(dtype) * share * compute_scale
        dense = tile_m is None and not grouped
        tiles = parse_tiles(e.gemm_tiles) if dense and e.gemm_tiles and not own_tile else ((tm0, tn),)
        compute = 0.0
        for tile_rows, tile_cols in tiles:
            rows = tile_rows if tile_m is None else np.asarray(tile_m, dtype=float)
            if dense and e.gemm_tile_m_min and tile_rows:
                rows = np.clip(2.0 ** np.ceil(np.log2(np.maximum(m, 1.0))), min(e.gemm_tile_m_min, tile_rows),
                               tile_rows)
            compute = compute + self._tile_compute(m, n, k, k0, occ, rate, rows, tile_rows, tile_cols)
        if len(tiles) > 1:
            compute = compute / len(tiles)
        memory = ((m * k + k * n) * b + m * n * 2.0) / (self.memory_bandwidth * e.gemm_memory)
        t = np.maximum(compute, memory)
        p = e.gemm_roofline_sharpness
        if p:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(t > 0, np.minimum(compute, memory) / t, 0.0)
            t = t * (1.0 + ratio**p) ** (1.0 / p)
        return np.where(m > 0, t + launch * 1e-6, 0.0)

    def _tile_compute(self, m, n, k, k0, occ, rate, tm, tm0, tn):
        """Compute time (s) of a GEMM on ``tm x tn`` output tiles (``tm`` may be an array;
        ``tm0``: the tile's nominal rows, 0 with ``tn = 0`` for no tiling):
        ``2 M N (k + k0) / (rate * occ)``, ``occ`` as in :meth:`gemm_time`."""
        mc, nc = m, n
        if tm0 and tn:
            tiles_m, tiles_n = np.ceil(m / tm), np.ceil(n / tn)
            mc, nc = tiles_m * tm, tiles_n * tn
            if occ:
                tiles = np.maximum(tiles_m * tiles_n, 1.0)
                waves = tiles / self.num_sms
                busy = waves / np.ceil(waves) if self.eff.gemm_wave_quantisation else np.minimum(1.0, waves)
                rate = rate * busy ** occ
        return 2.0 * mc * nc * (k + k0) / rate

    #: the step cost model passes the attention call's shape (``pairs``, ``heads``, ``seqs``,
    #: ``kv_heads``, ...), which the per-score and per-(sequence x KV head) costs need
    accepts_attention_shape = True

    def attention_time(self, flops, bytes_, phase: str, dtype: str, *, pairs=None, heads=None,
                       seqs=None, kv_heads=None, **shape):
        """Prefill: ``F / (peak * e_c) + B / (BW * e_m) + pairs * heads *
        attention_prefill_score_ps + launch`` (traffic not hidden behind the matmuls; the
        softmax work per query-key score and head); decode: ``max(F / (peak * e_c), B / (BW *
        e_m)) + seqs * kv_heads * attention_decode_seq_head_ns + launch``. ``pairs`` (causal
        query-key pairs, summed over sequences), ``heads`` (query heads on this device),
        ``seqs`` and ``kv_heads`` (KV heads on this device) are the call's shape keywords
        (:meth:`hermes_core.HardwareNode.attention_time`); without them those two terms are
        0. Scalars or arrays; 0 FLOP costs nothing."""
        e = self.eff
        peak = self._peaks.get(dtype, self._peaks["bf16"])
        if phase == "prefill":
            per = e.attention_prefill_score_ps * 1e-12
            extra = pairs * heads * per if per and pairs is not None and heads is not None else 0.0
        else:
            per = e.attention_decode_seq_head_ns * 1e-9
            extra = seqs * kv_heads * per if per and seqs is not None and kv_heads is not None else 0.0
        if isinstance(flops, (int, float)) and isinstance(bytes_, (int, float)):
            # scalar fast path: the step-cost model prices one batch per engine step
            if flops <= 0:
                return 0.0
            bw = self.memory_bandwidth
            if phase == "prefill":
                t = flops / (peak * e.attention_prefill_compute) + bytes_ / (bw * e.attention_prefill_memory)
            else:
                t = max(flops / (peak * e.attention_decode_compute), bytes_ / (bw * e.attention_decode_memory))
            return t + float(extra) + e.attention_launch_us * 1e-6
        flops = np.asarray(flops, dtype=float)
        nbytes = np.asarray(bytes_, dtype=float)
        if phase == "prefill":
            t = (flops / (peak * e.attention_prefill_compute)
                 + nbytes / (self.memory_bandwidth * e.attention_prefill_memory))
        else:
            t = np.maximum(flops / (peak * e.attention_decode_compute),
                           nbytes / (self.memory_bandwidth * e.attention_decode_memory))
        return np.where(flops > 0, t + extra + e.attention_launch_us * 1e-6, 0.0)

    def memory_time(self, bytes_):
        """``bytes / (BW * memory_kernels) + launch`` with ``launch = memory_launch_us``
        (``launch_us`` when unset)."""
        e = self.eff
        launch = e.launch_us if e.memory_launch_us is None else e.memory_launch_us
        b = np.asarray(bytes_, dtype=float)
        return np.where(b > 0, b / (self.memory_bandwidth * e.memory_kernels) + launch * 1e-6, 0.0)


@hookimpl
def hermes_register_devices(register):
    """Register the ``gpu`` device."""
    register("gpu", GPU)
