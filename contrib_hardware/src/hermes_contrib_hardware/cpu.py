"""``cpu``: one server CPU socket (Intel Xeon with AMX) running a small model from DRAM.

Cost model
----------
Every kernel costs ``max(FLOP / (peak * compute_efficiency), bytes / (DRAM bandwidth *
memory_efficiency)) + kernel_overhead`` (:func:`hermes_core.roofline_time`), with

* ``peak[dtype] = cores * clock * FLOP per cycle per core[dtype]``;
* ``DRAM bandwidth = channels * MT/s * 8 bytes`` (a DDR5 channel is 64 data bits wide);
* GEMMs in bf16 or int8 run on AMX, whose TMUL works on tiles of 16 rows x 64 bytes
  (32 bf16 or 64 int8 values per row), so their FLOP count pads ``m`` and ``n`` to
  multiples of 16 and ``k`` to multiples of ``64 / dtype bytes``. fp32 GEMMs use AVX-512
  and are not padded. Bytes use the real sizes.

Small models only: decoding reads every weight once per step at DRAM speed (an 8B model in
bf16 is ~16 GB, ~52 ms per step at 307 GB/s).

What it does not model: the lower all-core clock under heavy AMX load (the preset uses the
base clock; Intel's AMX frequency tables are not in the public datasheet), NUMA/sub-NUMA
effects, cache reuse (everything streams from DRAM), threading overheads.

Figures of the ``xeon_8480p`` preset (Intel Xeon Platinum 8480+, Sapphire Rapids)
---------------------------------------------------------------------------------
* 56 cores, 2.0 GHz base clock: Intel ARK, "Intel Xeon Platinum 8480+ Processor (105M
  Cache, 2.00 GHz)"; four 14-core tiles with two DDR5 channels each = 56 cores and 8
  channels (ServeTheHome, "Intel Xeon Max 9480 deep dive", p. 3, conceptual diagram of
  the 8480+).
* AMX: 1,024 bf16 and 2,048 int8 operations per cycle per core; AVX-512 64 fp32
  operations per cycle per core (Intel, "Accelerate AI Workloads with Intel AMX", p. 4,
  as quoted by the PyTorch recipe "Leverage Intel Advanced Matrix Extensions",
  https://pytorch.org/tutorials/recipes/amx.html). Tile shape 16 rows x 64 bytes (Intel
  AMX programming reference; the 8 tile registers are 1 KiB each).
  => bf16 peak 56 * 2.0e9 * 1024 = 114.688 TFLOP/s; int8 229.376 TOP/s; fp32 7.168 TFLOP/s.
* Memory: 8 channels of DDR5-4800 at one DIMM per channel (Intel's Xeon Scalable platform
  slide as reported by VideoCardz, 2021: "DDR5 up to 4800 MHz (1 DIMM per channel)"),
  8 * 4800e6 * 8 B = 307.2 GB/s theoretical peak (the figure Micron also quotes for an
  8-channel DDR5-4800 Sapphire Rapids socket in its CZ120 announcement, 2023).
  Capacity 512 GiB = 8 x 64 GB RDIMMs: a typical population, not a datasheet figure.
* Link to the other socket (``link_bandwidth_GBps``, used for tensor parallelism across
  sockets): up to 4 UPI 2.0 links at 16 GT/s (Intel's Sapphire Rapids-SP disclosures, as
  reported by wccftech, 2022). Counting 2 bytes of payload per transfer per direction (the
  convention behind the commonly quoted 20.8 GB/s per direction of a 10.4 GT/s UPI 1.0
  link), 4 * 16e9 * 2 B = 128 GB/s per direction: derived, not a datasheet figure.
  ``link_latency_us`` (1 us) is an assumption for one step of a shared-memory all-reduce.

Efficiencies default to 1.0 and the kernel overhead to 0 (the datasheet bound: optimistic;
measured AMX GEMMs and STREAM-like bandwidth usually land well below peak). Set measured
values in the scenario.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hermes_core import dtype_bytes

from .roofline import PaddedRoofline, pad

GiB = 2**30
#: AMX tile: 16 rows of 64 bytes.
AMX_ROWS = 16
AMX_ROW_BYTES = 64


class CPUPreset(BaseModel):
    """Datasheet figures of one CPU socket (units in field names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    cores: int
    clock_GHz: float
    flops_per_cycle_per_core: dict[str, float]
    amx_dtypes: tuple[str, ...]
    memory_channels: int
    memory_MTps: float
    memory_GiB: float
    link_bandwidth_GBps: float
    source: str


PRESETS: dict[str, CPUPreset] = {
    "xeon_8480p": CPUPreset(
        name="Xeon-Platinum-8480+",
        cores=56, clock_GHz=2.0,
        flops_per_cycle_per_core={"bf16": 1024.0, "int8": 2048.0, "fp32": 64.0},
        amx_dtypes=("bf16", "int8"),
        memory_channels=8, memory_MTps=4800.0, memory_GiB=512.0,
        link_bandwidth_GBps=128.0,
        source=("Intel ARK Xeon Platinum 8480+ (56 cores, 2.0 GHz, 8 x DDR5-4800); Intel AMX "
                "1024 bf16 / 2048 int8 ops per cycle per core"),
    ),
}
ALIASES = {"xeon_8480+": "xeon_8480p", "sapphire_rapids": "xeon_8480p", "spr": "xeon_8480p"}


class CPUConfig(BaseModel):
    """``device: {type: cpu, preset: xeon_8480p}``, optionally overriding any figure.

    Overrides (``None`` keeps the preset's): ``cores``, ``clock_GHz``, ``memory_channels``,
    ``memory_MTps``, ``memory_GiB``, ``link_bandwidth_GBps``. Model knobs:
    ``link_latency_us``, ``compute_efficiency``, ``memory_efficiency`` ((0, 1]),
    ``kernel_overhead_us``.
    """

    model_config = ConfigDict(extra="forbid")
    preset: str = "xeon_8480p"
    cores: int | None = Field(None, gt=0)
    clock_GHz: float | None = Field(None, gt=0)
    memory_channels: int | None = Field(None, gt=0)
    memory_MTps: float | None = Field(None, gt=0)
    memory_GiB: float | None = Field(None, gt=0)
    link_bandwidth_GBps: float | None = Field(None, gt=0)
    link_latency_us: float = Field(1.0, ge=0)
    compute_efficiency: float = Field(1.0, gt=0, le=1)
    memory_efficiency: float = Field(1.0, gt=0, le=1)
    kernel_overhead_us: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> CPUConfig:
        key = ALIASES.get(self.preset, self.preset)
        if key not in PRESETS:
            raise ValueError(f"unknown preset '{self.preset}'; allowed: {', '.join(sorted(PRESETS))}")
        self.preset = key
        return self


class CPUSocket(PaddedRoofline):
    """One CPU socket, built by hermes as ``CPUSocket(CPUConfig)`` (see the module
    docstring for the cost model and the figures' sources)."""

    Config = CPUConfig

    def __init__(self, config: CPUConfig):
        p = PRESETS[config.preset]
        self.config = config
        self.name = p.name
        self.cores = config.cores or p.cores
        self.clock = (config.clock_GHz or p.clock_GHz) * 1e9
        channels = config.memory_channels or p.memory_channels
        mtps = config.memory_MTps or p.memory_MTps
        self.memory_bandwidth = channels * mtps * 1e6 * 8.0
        self.memory_bytes = (config.memory_GiB or p.memory_GiB) * GiB
        self.link_bandwidth = (config.link_bandwidth_GBps or p.link_bandwidth_GBps) * 1e9
        self.link_latency = config.link_latency_us * 1e-6
        self._peaks = {d: self.cores * self.clock * f for d, f in p.flops_per_cycle_per_core.items()}
        self._amx = set(p.amx_dtypes)
        self._overhead = config.kernel_overhead_us * 1e-6
        self.provenance = p.source + "; efficiencies 1.0 unless set (not fitted)"

    def gemm_flops(self, m, n, k, dtype: str) -> np.ndarray:
        """FLOP spent on ``m x k @ k x n``: AMX dtypes pad ``m``, ``n`` to 16 and ``k`` to
        ``64 / dtype bytes``; other dtypes are not padded."""
        if dtype in self._amx:
            k_tile = int(AMX_ROW_BYTES / dtype_bytes(dtype))
            return 2.0 * pad(m, AMX_ROWS) * pad(n, AMX_ROWS) * pad(k, k_tile)
        return 2.0 * np.asarray(m, dtype=float) * np.asarray(n, dtype=float) * np.asarray(k, dtype=float)

