"""The :class:`HardwareNode` interface: what a device must answer so that stages can price
their work.

All times are seconds, sizes bytes, work FLOP, rates bytes/s and FLOP/s. Methods take numpy
arrays where noted and must be vectorised: cost models precompute tables with them once
per scenario, never per event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

#: Bytes per element of the precisions hermes knows.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
    # OCP Microscaling (MX) v1.0: FP4 (E2M1) elements in blocks of 32 sharing one 8-bit
    # (E8M0) scale, 4 + 8/32 = 4.25 bits per element (gpt-oss's routed experts)
    "mxfp4": 4.25 / 8,
    # INT4 weights in groups of 32 sharing one 16-bit scale, 4 + 16/32 = 4.5 bits per element
    # (compressed-tensors ``pack-quantized`` W4A16, ``group_size: 32``: Kimi-K2.5's routed
    # experts); the GEMMs compute in BF16 (weight-only quantization)
    "int4_g32": 4.5 / 8,
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; raises ``ValueError`` listing the known ones."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown precision '{dtype}'; allowed: {', '.join(DTYPE_BYTES)}") from None


def roofline_time(flops, bytes_, peak_flops: float, bandwidth: float,
                  compute_eff: float = 1.0, memory_eff: float = 1.0, overhead: float = 0.0):
    """Roofline kernel time ``max(flops / (peak * e_c), bytes / (bw * e_m)) + overhead`` (s).

    Inputs may be numpy arrays (broadcast). Source: Williams et al., "Roofline", CACM 2009;
    efficiency factors as in GenZ (arXiv 2406.01698, Sec. 3).
    """
    return np.maximum(np.asarray(flops) / (peak_flops * compute_eff),
                      np.asarray(bytes_) / (bandwidth * memory_eff)) + overhead


class HardwareNode(ABC):
    """One device (GPU, ASIC, CPU socket) that runs model operators.

    Built as ``cls(config)``. Subclasses set the attributes below in ``__init__`` and
    implement the three pricing methods.

    Attributes:
        name: preset or model name, for reports.
        memory_bytes: device memory capacity (bytes).
        memory_bandwidth: peak device-memory bandwidth (bytes/s).
        link_bandwidth: per-direction bandwidth of the device's scale-up link (bytes/s),
            e.g. NVLink to an NVSwitch.
        link_latency: one-hop latency of that link (s).
        collective_latency: fixed software and synchronisation time of one collective
            (all-reduce, send/recv) issued by this device (s), added once per collective
            whatever the message size or member count (0 by default).
        allreduce_algorithms: ``{name: (bandwidth_share, latency_s)}``, the all-reduce
            algorithms this device's collectives choose from by message size (names from
            :data:`hermes_core.topology.ALLREDUCE_TRAFFIC`; ``bandwidth_share`` relative to
            ``link_bandwidth``), passed to :meth:`hermes_core.Topology.allreduce_time`;
            ``None`` (default): the ring with ``collective_latency``.
        provenance: where the numbers come from (datasheet, measured file).
        usd_per_hour: the rental price of one device ($/hour), e.g. a cloud on-demand list
            price per GPU-hour; ``None``: unknown (the run's ``cost`` section then lists the
            device under ``missing`` and gives no dollar figures).
        idle_power: the device's power draw when it holds its work but runs none (W), e.g.
            a GPU with the serving engine's CUDA context and model loaded, between steps;
            ``None``: unknown.
        max_power: its power draw at full load (W), e.g. the board's TDP; ``None``: unknown.
        price_source, power_source: where ``usd_per_hour`` and ``idle_power`` /
            ``max_power`` come from (document and date, or "assumption").

    Power model (:meth:`average_power`): a device busy a fraction ``b`` of the run draws on
    average ``idle_power + (max_power - idle_power) * b``, the utilisation-weighted linear
    model of server power (Fan, Weber and Barroso, "Power Provisioning for a Warehouse-sized
    Computer", ISCA 2007, who found it close to the measured power of whole servers).
    It is a first-order model: it charges the full-load power whenever the device works,
    whatever the work (a memory-bound decode step at batch 1 draws well below TDP on a real
    GPU), and ignores clocks, temperature and power capping.
    """

    Config: ClassVar[type[BaseModel]]

    name: str
    memory_bytes: float
    memory_bandwidth: float
    link_bandwidth: float
    link_latency: float
    collective_latency: float = 0.0
    allreduce_algorithms: Mapping[str, tuple[float, float]] | None = None
    provenance: str = ""
    usd_per_hour: float | None = None
    idle_power: float | None = None
    max_power: float | None = None
    price_source: str = ""
    power_source: str = ""

    def average_power(self, busy_fraction: float) -> float | None:
        """Average power draw (W) of the device when busy ``busy_fraction`` of the time
        (clipped to [0, 1]): ``idle_power + (max_power - idle_power) * busy_fraction``;
        ``None`` when either power is unknown."""
        if self.idle_power is None or self.max_power is None:
            return None
        b = min(max(float(busy_fraction), 0.0), 1.0)
        return self.idle_power + (self.max_power - self.idle_power) * b

    @abstractmethod
    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for matrix math in ``dtype``. Raises ``ValueError`` if the
        device has no such precision."""

    @abstractmethod
    def gemm_time(self, m: np.ndarray, n: int, k: int, dtype: str) -> np.ndarray:
        """Time (s) of ``C[m, n] = A[m, k] @ B[k, n]`` for each ``m`` in the int array ``m``,
        weights (B) and inputs in ``dtype``."""

    @abstractmethod
    def attention_time(self, flops: np.ndarray, bytes_: np.ndarray, phase: str, dtype: str) -> np.ndarray:
        """Time (s) of one attention kernel launch doing ``flops`` FLOP and moving ``bytes_``
        bytes. ``phase`` is ``"prefill"`` (causal flash attention over new tokens) or
        ``"decode"`` (one query token per sequence reading its KV cache).

        A device whose :attr:`accepts_attention_shape` is True is also called with the batch's
        shape as keywords (all per device): ``seqs`` (sequences), ``new_tokens`` (query
        tokens), ``kv_tokens`` (K/V tokens read), ``pairs`` (causal (query, key) pairs,
        ``sum q_i c_i + q_i (q_i + 1) / 2``; for decode equal to ``kv_tokens``), ``heads``,
        ``kv_heads``, ``head_dim`` and ``kv_dtype``; a measured-table device uses them to look
        up kernels by shape."""

    #: Set True to receive the batch shape keywords in :meth:`attention_time`.
    accepts_attention_shape: ClassVar[bool] = False

    def collective_time(self, op: str, nbytes, members: int, fallback):
        """Time (s) of collective ``op`` (``"all_reduce"``) of ``nbytes`` bytes over
        ``members`` devices. ``fallback`` is the topology's estimate (same shape as
        ``nbytes``); the default returns it. A device with measured collective tables
        overrides this."""
        return fallback

    @abstractmethod
    def memory_time(self, bytes_: np.ndarray) -> np.ndarray:
        """Time (s) of one memory-bound kernel (norm, activation, residual add, embedding
        gather) moving ``bytes_`` bytes."""

    def _has(self, dtype: str) -> bool:
        try:
            self.peak_flops(dtype)
        except ValueError:
            return False
        return True

    def describe(self) -> dict:
        """Key figures for reports."""
        return {
            "name": self.name,
            "memory_GiB": self.memory_bytes / 2**30,
            "memory_bandwidth_TBps": self.memory_bandwidth / 1e12,
            "peak_bf16_TFLOPs": self.peak_flops("bf16") / 1e12 if self._has("bf16") else None,
            "provenance": self.provenance,
        }


def check_power_order(config: BaseModel, idle_W: float | None, tdp_W: float | None, what: str) -> None:
    """Check that a device config's idle power does not exceed its full-load power, where
    ``config`` has optional ``idle_W`` / ``tdp_W`` overrides and ``idle_W`` / ``tdp_W`` are the
    defaults they override (``what`` names them in the message, e.g. ``"preset h100_sxm"``).
    Call it from the config's ``model_validator(mode="after")``: it raises a pydantic
    ``ValidationError`` located at the field the user gave (``idle_W``, else ``tdp_W``), so
    hermes reports ``clients[0].device.idle_W: must be <= ...``."""
    idle = config.idle_W if config.idle_W is not None else idle_W
    tdp = config.tdp_W if config.tdp_W is not None else tdp_W
    if idle is None or tdp is None or idle <= tdp:
        return
    if config.idle_W is not None:
        field = "idle_W"
        msg = f"must be <= tdp_W, the full-load power ({tdp:g} W{'' if config.tdp_W is not None else ', ' + what})"
    else:
        field = "tdp_W"
        msg = f"must be >= idle_W, the idle power ({idle:g} W, {what}); set idle_W too"
    raise ValidationError.from_exception_data(type(config).__name__, [InitErrorDetails(
        type=PydanticCustomError("power_order", msg), loc=(field,), input=getattr(config, field))])
