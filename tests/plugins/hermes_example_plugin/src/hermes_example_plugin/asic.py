"""``example_asic``: a TPU-like accelerator priced by a roofline.

The figures are round, illustrative numbers for a TPU-class chip (not any vendor's product):
400 TFLOP/s dense bf16, 800 TFLOP/s fp8/int8, 96 GiB of HBM at 1.2 TB/s, and a scale-up
link of 200 GB/s per direction. Every figure can be overridden from the scenario::

    device: {type: example_asic, bf16_tflops: 459, memory_GiB: 95, memory_bandwidth_GBps: 2765}

Each kernel costs ``max(FLOP / (peak * compute_efficiency), bytes / (bandwidth *
memory_efficiency)) + kernel_overhead`` (:func:`hermes_core.roofline_time`). Matrix units
are ``mxu_size x mxu_size`` systolic arrays that hold a weight tile, so a GEMM's ``n`` and
``k`` are padded up to multiples of ``mxu_size`` before counting FLOP (``m``, the token
dimension, streams through the array and is not padded).

Units: datasheet-style fields say theirs in the name (``_tflops`` = 10^12 FLOP/s, ``_GBps`` =
10^9 bytes/s, ``_GiB`` = 2^30 bytes, ``_us`` = 10^-6 s); the :class:`ExampleASIC` object itself
stores SI units (bytes, bytes/s, FLOP/s, seconds), as :class:`hermes_core.HardwareNode`
requires.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hermes_core import HardwareNode, dtype_bytes, roofline_time

GiB = 2**30


class ExampleASICConfig(BaseModel):
    """Scenario fields of ``device: {type: example_asic, ...}`` (all optional).

    Unknown fields are rejected (``extra="forbid"``), so a typo such as ``memory_gib`` fails
    with ``clients[0].device.memory_gib: unknown field (did you mean 'memory_GiB'?); allowed: ...``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("Example-ASIC-96GB", min_length=1, description="Name shown in reports.")
    bf16_tflops: float = Field(400.0, gt=0, description="Dense bf16 matrix peak (10^12 FLOP/s).")
    fp8_tflops: float = Field(800.0, gt=0, description="Dense fp8 and int8 matrix peak (10^12 FLOP/s).")
    memory_GiB: float = Field(96.0, gt=0, description="HBM capacity (GiB, 2^30 bytes).")
    memory_bandwidth_GBps: float = Field(1200.0, gt=0, description="HBM bandwidth (GB/s, 10^9 bytes/s).")
    link_bandwidth_GBps: float = Field(
        200.0, gt=0, description="Scale-up link bandwidth per direction (GB/s, 10^9 bytes/s)."
    )
    link_latency_us: float = Field(3.0, ge=0, description="One-hop link latency (microseconds).")
    compute_efficiency: float = Field(
        0.7, gt=0, le=1, description="Share of the matrix peak that kernels reach (0..1]."
    )
    memory_efficiency: float = Field(
        0.85, gt=0, le=1, description="Share of the HBM bandwidth that kernels reach (0..1]."
    )
    kernel_overhead_us: float = Field(
        2.0, ge=0, description="Fixed cost per kernel: dispatch, pipeline fill and drain (microseconds)."
    )
    mxu_size: int = Field(
        128, ge=0, description="Systolic array side; GEMM n and k are padded to multiples of it (0 = no padding)."
    )


class ExampleASIC(HardwareNode):
    """A TPU-like ASIC, built by hermes as ``ExampleASIC(config)`` with an
    :class:`ExampleASICConfig`.

    Supported precisions for matrix math: ``bf16``, ``fp8`` and ``int8``;
    :meth:`peak_flops` raises ``ValueError`` for any other (hermes turns that into
    ``clients[0].stage.precision.weights: ...`` when a scenario asks for one).
    """

    Config = ExampleASICConfig

    def __init__(self, config: ExampleASICConfig):
        """Convert the config's datasheet units into the SI attributes hermes reads."""
        self.config = config
        self.name = config.name
        self.memory_bytes = config.memory_GiB * GiB
        self.memory_bandwidth = config.memory_bandwidth_GBps * 1e9
        self.link_bandwidth = config.link_bandwidth_GBps * 1e9
        self.link_latency = config.link_latency_us * 1e-6
        self.provenance = "hermes-example-plugin: illustrative TPU-class figures, not a real product"
        self._peaks = {
            "bf16": config.bf16_tflops * 1e12,
            "fp8": config.fp8_tflops * 1e12,
            "int8": config.fp8_tflops * 1e12,
        }
        self._overhead = config.kernel_overhead_us * 1e-6

    def peak_flops(self, dtype: str) -> float:
        """Dense matrix peak in FLOP/s for ``dtype``.

        Raises ``ValueError`` naming the supported precisions if ``dtype`` is not one.
        """
        try:
            return self._peaks[dtype]
        except KeyError:
            raise ValueError(
                f"{self.name} has no {dtype} matrix unit; available: {', '.join(sorted(self._peaks))}"
            ) from None

    def _pad(self, x):
        """``x`` rounded up to a multiple of ``mxu_size`` (unchanged when padding is off)."""
        s = self.config.mxu_size
        return np.ceil(np.asarray(x, dtype=float) / s) * s if s else np.asarray(x, dtype=float)

    def gemm_time(self, m, n: int, k: int, dtype: str):
        """Seconds for ``C[m, n] = A[m, k] @ B[k, n]``, one value per entry of ``m``.

        ``m`` is an int array of token counts (0 gives 0 s); ``n`` and ``k`` are ints; ``A``
        and ``B`` are in ``dtype`` (bytes per element from :func:`hermes_core.dtype_bytes`)
        and ``C`` is written in bf16. FLOP use the MXU-padded ``n`` and ``k``; bytes use the
        real sizes. Raises ``ValueError`` for an unsupported ``dtype``.
        """
        m = np.asarray(m, dtype=float)
        peak = self.peak_flops(dtype)
        b = dtype_bytes(dtype)
        flops = 2.0 * m * self._pad(n) * self._pad(k)
        nbytes = (m * k + float(k) * n) * b + m * n * 2.0
        t = roofline_time(flops, nbytes, peak, self.memory_bandwidth,
                          self.config.compute_efficiency, self.config.memory_efficiency, self._overhead)
        return np.where(m > 0, t, 0.0)

    def attention_time(self, flops, bytes_, phase: str, dtype: str):
        """Seconds for one attention kernel doing ``flops`` FLOP and moving ``bytes_`` bytes
        (arrays broadcast; 0 FLOP gives 0 s).

        ``phase`` is ``"prefill"`` or ``"decode"``; both use the same roofline here (a real
        plugin could fit separate efficiencies). Raises ``ValueError`` for another phase or
        an unsupported ``dtype``.
        """
        if phase not in ("prefill", "decode"):
            raise ValueError(f"unknown attention phase '{phase}'; expected 'prefill' or 'decode'")
        flops = np.asarray(flops, dtype=float)
        t = roofline_time(flops, bytes_, self.peak_flops(dtype), self.memory_bandwidth,
                          self.config.compute_efficiency, self.config.memory_efficiency, self._overhead)
        return np.where(flops > 0, t, 0.0)

    def memory_time(self, bytes_):
        """Seconds for one memory-bound kernel moving ``bytes_`` bytes (array; 0 gives 0 s):
        ``bytes / (bandwidth * memory_efficiency) + kernel_overhead``."""
        b = np.asarray(bytes_, dtype=float)
        t = roofline_time(0.0, b, self._peaks["bf16"], self.memory_bandwidth,
                          1.0, self.config.memory_efficiency, self._overhead)
        return np.where(b > 0, t, 0.0)
