"""First-party CPU device ``cpu_socket``: one server CPU socket priced by a roofline.

A first model, not yet calibrated (a later issue calibrates CPUs against measurements): its
error against real hardware has not been measured. Every kernel costs

``time = max(FLOP / (peak[dtype] * compute_efficiency), bytes / (DRAM bandwidth * memory_efficiency))``

(:func:`hermes_core.roofline_time`; Williams et al., "Roofline", CACM 2009), with

* ``peak[dtype] = cores * base clock * FLOP per cycle per core[dtype]``;
* ``DRAM bandwidth = memory channels * MT/s * 8 bytes`` (a DDR5 channel carries 64 data
  bits, two 32-bit subchannels: JEDEC JESD79-5 DDR5 SDRAM standard);
* both efficiencies default to 1.0: the datasheet bound, optimistic (measured AMX GEMMs and
  STREAM-like bandwidth land below peak). Set measured values in the scenario.

FLOP per cycle per core
-----------------------
* ``bf16`` 1,024 and ``int8`` 2,048 on the AMX tile unit (TMUL): Intel, "Accelerate
  Artificial Intelligence (AI) Workloads with Intel Advanced Matrix Extensions (Intel AMX)"
  solution brief (2023), which gives 2,048 INT8 and 1,024 BF16 operations per cycle per core
  for 4th Gen Xeon Scalable; the same TMUL throughput is taken for Xeon 6 (Granite Rapids),
  which adds AMX-FP16 (Intel Architecture Instruction Set Extensions and Future Features
  Programming Reference, rev. 46, 2022), priced at the bf16 rate (``fp16`` on
  ``xeon_6980p`` only).
* ``fp32`` 64 on AVX-512: two 512-bit FMA units per core (ports 0 and 5; Intel 64 and IA-32
  Architectures Optimization Reference Manual, Golden Cove / Redwood Cove server cores),
  2 units x 16 fp32 lanes x 2 FLOP per FMA.

Presets (``preset``)
--------------------
``xeon_8480p``: Intel Xeon Platinum 8480+ (Sapphire Rapids). Intel ARK, "Intel Xeon
Platinum 8480+ Processor (105M Cache, 2.00 GHz)": 56 cores, 2.0 GHz base clock, 8 memory
channels of DDR5-4800, 4 UPI links at 16 GT/s. Hence

* bf16 ``56 * 2.0e9 * 1024 = 114.688`` TFLOP/s, int8 229.376 TOP/s, fp32 7.168 TFLOP/s;
* DRAM ``8 * 4800e6 * 8 = 307.2`` GB/s (10^9 bytes/s).

``xeon_6980p``: Intel Xeon 6980P (Granite Rapids-AP). Intel ARK, "Intel Xeon 6980P
Processor (504M Cache, 2.00 GHz)": 128 cores, 2.0 GHz base clock, 12 memory channels of
DDR5-6400 (MRDIMM-8800 not modelled), 6 UPI links at 24 GT/s. Hence

* bf16 and fp16 ``128 * 2.0e9 * 1024 = 262.144`` TFLOP/s, int8 524.288 TOP/s, fp32 16.384
  TFLOP/s;
* DRAM ``12 * 6400e6 * 8 = 614.4`` GB/s.

Memory capacity (not a datasheet figure: ARK gives only the maximum, 4 TB for the 8480+):
one 64 GiB RDIMM per channel, the population at which both parts reach their rated DDR5
speed (two DIMMs per channel run slower), so 512 GiB (``xeon_8480p``) and 768 GiB
(``xeon_6980p``). Override it with ``memory_GiB``.

Link (``link_bandwidth``, ``link_latency``): the UPI links to the other socket of a
two-socket server. Bandwidth per direction = links * GT/s * 2 bytes: a UPI link moves 2
bytes of payload per transfer per direction, the convention that makes a 10.4 GT/s UPI 1.0
link 20.8 GB/s per direction (WikiChip, "Ultra Path Interconnect (UPI) - Intel"). So
``4 * 16e9 * 2 = 128`` GB/s (8480+) and ``6 * 24e9 * 2 = 288`` GB/s (6980P): derived, not
datasheet figures. Latency 0.1 us: an assumption of the order of one socket-to-socket hop
(Intel's Memory Latency Checker shows a remote-socket DRAM access about 60 ns slower than a
local one: Intel Developer Zone blog, "Memory Latencies on Intel Xeon Processor E5-4600 and
E7-4800 product families", 2014); Intel publishes no UPI latency for these parts.

Price and power (the run's ``cost`` section; model in :class:`hermes_core.HardwareNode`)
-------------------------------------------------------------------------------------
* Full-load power ``tdp_W``: Intel ARK TDP, 350 W (8480+) and 500 W (6980P).
* Idle power ``idle_W``: an assumption, 10 % of TDP (35 W and 50 W): the package idle share
  measured on the previous generation, about 27 W per socket for the 270 W Xeon Platinum
  8380 (AnandTech, "Intel 3rd Gen Xeon Scalable (Ice Lake SP) Review", 2021-04-06: package
  idle power). No idle measurement of these two parts was found.
* Price per socket-hour ``usd_per_hour``: not a list price (clouds rent vCPUs, not
  sockets), derived from AWS on-demand prices of general-purpose instances on the same
  generations, us-east-1, Linux, per physical core (2 vCPUs) and scaled to the preset's
  cores: m7i (Sapphire Rapids) m7i.xlarge $0.2016/h for 4 vCPUs = $0.1008 per core-hour
  (c3x.dev, "m5 vs m6i vs m7i: cost and price-performance compared", 2026), x 56 cores =
  $5.6448/h; m8i (Xeon 6 Granite Rapids) m8i.xlarge $0.212/h = $0.106 per core-hour
  (CloudInvent, "The Hidden Cost of Old Processors", 2026-06-26, from the AWS EC2 on-demand
  pricing page, April 2026), x 128 cores = $13.568/h. The instance price includes 8 GiB of
  DRAM per core.

What it does not model: the clock under heavy AVX-512/AMX load (the peaks use the base
clock; the lower licence frequencies are not in ARK, so the peaks may be optimistic), AMX
tile padding, caches (everything streams from DRAM), NUMA and sub-NUMA clustering, threading
and kernel-launch overheads.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hermes_core import HardwareNode, roofline_time
from hermes_core.hardware import DTYPE_BYTES, check_power_order

GiB = 2**30


class CPUSocketPreset(BaseModel):
    """Figures of one CPU model (units in the field names; sources in the module docstring).

    ``flops_per_cycle_per_core``: dense FLOP (or integer operations) per cycle per core, per
    precision; ``memory_MTps``: DDR transfers per second (10^6); ``memory_GiB``: the default
    capacity (one DIMM per channel); ``upi_GTps``: transfers per second of one UPI link (10^9).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    cores: int
    base_clock_GHz: float
    flops_per_cycle_per_core: dict[str, float]
    memory_channels: int
    memory_MTps: float
    memory_GiB: float
    upi_links: int
    upi_GTps: float
    provenance: str
    #: rental price of one socket ($/hour), full-load (TDP) and idle power (W), and their
    #: sources (module docstring)
    usd_per_hour: float
    tdp_W: float
    idle_W: float
    price_source: str
    power_source: str


#: Bytes of payload a UPI link moves per transfer per direction (see the module docstring).
UPI_BYTES_PER_TRANSFER = 2.0
#: Bytes per transfer of one DDR5 channel (64 data bits).
DDR_BYTES_PER_TRANSFER = 8.0
#: One socket-to-socket hop (s): an assumption (see the module docstring).
UPI_LATENCY_S = 0.1e-6

PRESETS: dict[str, CPUSocketPreset] = {
    "xeon_8480p": CPUSocketPreset(
        name="Xeon-Platinum-8480+",
        cores=56, base_clock_GHz=2.0,
        flops_per_cycle_per_core={"fp32": 64.0, "bf16": 1024.0, "int8": 2048.0},
        memory_channels=8, memory_MTps=4800.0, memory_GiB=512.0,
        upi_links=4, upi_GTps=16.0,
        provenance=("Intel ARK Xeon Platinum 8480+ (56 cores, 2.0 GHz base, 8 x DDR5-4800, 4 UPI x 16 GT/s); "
                    "Intel AMX solution brief (1024 bf16 / 2048 int8 ops per cycle per core); "
                    "roofline at the datasheet bound, not calibrated"),
        usd_per_hour=5.6448, tdp_W=350.0, idle_W=35.0,
        price_source=("derived: AWS m7i (Sapphire Rapids) on-demand us-east-1, m7i.xlarge $0.2016/h for 2 cores "
                      "(c3x.dev, 2026) = $0.1008 per core-hour x 56 cores"),
        power_source=("TDP: Intel ARK Xeon Platinum 8480+, 350 W; idle: assumption, 10 % of TDP (Ice Lake Xeon "
                      "8380 package idle about 27 W of 270 W, AnandTech 2021-04-06)"),
    ),
    "xeon_6980p": CPUSocketPreset(
        name="Xeon-6980P",
        cores=128, base_clock_GHz=2.0,
        flops_per_cycle_per_core={"fp32": 64.0, "bf16": 1024.0, "fp16": 1024.0, "int8": 2048.0},
        memory_channels=12, memory_MTps=6400.0, memory_GiB=768.0,
        upi_links=6, upi_GTps=24.0,
        provenance=("Intel ARK Xeon 6980P (128 cores, 2.0 GHz base, 12 x DDR5-6400, 6 UPI x 24 GT/s); "
                    "AMX throughput taken as Sapphire Rapids' (1024 bf16/fp16, 2048 int8 ops per cycle per core); "
                    "roofline at the datasheet bound, not calibrated"),
        usd_per_hour=13.568, tdp_W=500.0, idle_W=50.0,
        price_source=("derived: AWS m8i (Xeon 6 Granite Rapids) on-demand us-east-1, m8i.xlarge $0.212/h for 2 "
                      "cores (CloudInvent 2026-06-26, AWS pricing page April 2026) = $0.106 per core-hour x 128 cores"),
        power_source=("TDP: Intel ARK Xeon 6980P, 500 W; idle: assumption, 10 % of TDP (Ice Lake Xeon 8380 "
                      "package idle about 27 W of 270 W, AnandTech 2021-04-06)"),
    ),
}


class CPUSocketConfig(BaseModel):
    """``device: {type: cpu_socket, preset: xeon_8480p}``.

    ``preset``: one of :data:`PRESETS` (default ``xeon_8480p``). Overrides (``None`` keeps
    the preset's figure): ``memory_GiB`` (capacity, 2^30 bytes), ``memory_bandwidth_GBps``
    (peak DRAM bandwidth, 10^9 bytes/s). ``compute_efficiency`` and ``memory_efficiency``
    (in (0, 1], default 1.0 = the datasheet bound; no measured values yet): the shares of
    the peak FLOP/s and DRAM bandwidth that kernels reach. Price and power (``None`` keeps
    the preset's, see the module docstring): ``usd_per_hour`` (one socket's price, $/hour),
    ``tdp_W`` (full-load power, W), ``idle_W`` (idle power, W); all ``>= 0`` and ``idle_W <=
    tdp_W``.
    """

    model_config = ConfigDict(extra="forbid")
    preset: str = "xeon_8480p"
    memory_GiB: float | None = Field(None, gt=0, allow_inf_nan=False)
    memory_bandwidth_GBps: float | None = Field(None, gt=0, allow_inf_nan=False)
    compute_efficiency: float = Field(1.0, gt=0, le=1)
    memory_efficiency: float = Field(1.0, gt=0, le=1)
    usd_per_hour: float | None = Field(None, ge=0, allow_inf_nan=False)
    tdp_W: float | None = Field(None, ge=0, allow_inf_nan=False)
    idle_W: float | None = Field(None, ge=0, allow_inf_nan=False)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in PRESETS:
            raise ValueError(f"unknown preset '{v}'; allowed: {', '.join(sorted(PRESETS))}")
        return v

    @model_validator(mode="after")
    def _power_order(self):
        p = PRESETS[self.preset]
        check_power_order(self, p.idle_W, p.tdp_W, f"preset {self.preset}")
        return self


class CPUSocket(HardwareNode):
    """One CPU socket (see the module docstring for the cost model and its sources). Built by
    hermes as ``CPUSocket(CPUSocketConfig)``.

    Besides the :class:`~hermes_core.HardwareNode` attributes it has ``cores``, ``clock``
    (Hz), and ``compute_efficiency`` / ``memory_efficiency``, the factors every pricing
    method applies (stages that price work with :func:`hermes_core.roofline_time`
    themselves, such as ``vector_search``, apply them too).
    """

    Config = CPUSocketConfig

    def __init__(self, config: CPUSocketConfig):
        p = PRESETS[config.preset]
        self.config = config
        self.name = p.name
        self.cores = p.cores
        self.clock = p.base_clock_GHz * 1e9
        self.memory_bytes = (config.memory_GiB if config.memory_GiB is not None else p.memory_GiB) * GiB
        self.memory_bandwidth = (config.memory_bandwidth_GBps * 1e9 if config.memory_bandwidth_GBps is not None
                                 else p.memory_channels * p.memory_MTps * 1e6 * DDR_BYTES_PER_TRANSFER)
        self.link_bandwidth = p.upi_links * p.upi_GTps * 1e9 * UPI_BYTES_PER_TRANSFER
        self.link_latency = UPI_LATENCY_S
        self.compute_efficiency = config.compute_efficiency
        self.memory_efficiency = config.memory_efficiency
        self._peaks = {d: self.cores * self.clock * f for d, f in p.flops_per_cycle_per_core.items()}
        eff = ("efficiencies 1.0 (datasheet bound)" if config.compute_efficiency == config.memory_efficiency == 1.0
               else f"compute_efficiency {config.compute_efficiency}, memory_efficiency {config.memory_efficiency}")
        self.provenance = f"{p.provenance}; {eff}"
        self.usd_per_hour = p.usd_per_hour if config.usd_per_hour is None else config.usd_per_hour
        self.max_power = p.tdp_W if config.tdp_W is None else config.tdp_W
        self.idle_power = p.idle_W if config.idle_W is None else config.idle_W
        self.price_source = "scenario (usd_per_hour)" if config.usd_per_hour is not None else p.price_source
        set_ = [f for f in ("tdp_W", "idle_W") if getattr(config, f) is not None]
        self.power_source = (f"scenario ({', '.join(set_)})" + ("" if len(set_) == 2 else f"; {p.power_source}")
                             if set_ else p.power_source)

    def peak_flops(self, dtype: str) -> float:
        """``cores * base clock * FLOP per cycle per core[dtype]`` (FLOP/s). Raises
        ``ValueError`` naming the precisions the preset has."""
        try:
            return self._peaks[dtype]
        except KeyError:
            raise ValueError(f"{self.name} has no {dtype} peak; available: {', '.join(sorted(self._peaks))}") from None

    def _roofline(self, flops, bytes_, dtype: str):
        return roofline_time(flops, bytes_, self.peak_flops(dtype), self.memory_bandwidth,
                             self.compute_efficiency, self.memory_efficiency)

    def gemm_time(self, m, n, k, dtype: str):
        """Roofline of ``C[m, n] = A[m, k] @ B[k, n]`` (s), ``2 m n k`` FLOP and ``(m k + k n
        + m n) * bytes(dtype)`` bytes (A, B read once, C written in the same precision).
        ``m`` (and ``n``, ``k``) may be arrays; ``m = 0`` costs nothing."""
        m = np.asarray(m, dtype=float)
        n = np.asarray(n, dtype=float)
        k = np.asarray(k, dtype=float)
        b = DTYPE_BYTES[dtype]
        t = self._roofline(2.0 * m * n * k, (m * k + k * n + m * n) * b, dtype)
        return np.where(m > 0, t, 0.0)

    def attention_time(self, flops, bytes_, phase: str, dtype: str):
        """Roofline of one attention call doing ``flops`` FLOP and moving ``bytes_`` bytes at
        the ``dtype`` peak, in either ``phase`` (s); 0 FLOP costs nothing. Scalars or arrays."""
        f = np.asarray(flops, dtype=float)
        return np.where(f > 0, self._roofline(f, bytes_, dtype), 0.0)

    def memory_time(self, bytes_):
        """``bytes / (DRAM bandwidth * memory_efficiency)`` (s); scalars or arrays."""
        return np.asarray(bytes_, dtype=float) / (self.memory_bandwidth * self.memory_efficiency)
