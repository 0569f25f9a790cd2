"""``cxl_expander``: a CXL 2.0 Type-3 memory expander module (E3.S, PCIe 5.0 x8), as a
:class:`hermes_core.MemoryTier` that can hold offloaded KV cache or weights.

Model: moving ``b`` bytes costs ``latency + b / bandwidth`` (the inherited
:meth:`~hermes_core.MemoryTier.transfer_time`), with, for ``modules`` identical modules
interleaved (as Linux weighted interleave or a hardware interleave set does):

* ``capacity = modules * module capacity``;
* ``bandwidth = modules * min(datasheet bandwidth, PCIe link rate per direction) *
  efficiency``. The vendors' figures are read+write mixes (Micron: MLC at a 2:1 read:write
  ratio), while one stream in one direction (a KV fetch) cannot beat the x8 link:
  PCIe 5.0 runs 32 GT/s per lane with 128b/130b encoding, so x8 carries
  ``32e9 * 8 * 128/130 / 8 = 31.5 GB/s`` per direction (PCI-SIG, PCIe Base Specification
  5.0);
* ``latency`` = the module's load-to-use latency.

Presets (capacity as sold; module capacities are binary, JEDEC JESD100B.01, so "128 GB" =
128 GiB):

* ``micron_cz120_128gb`` / ``micron_cz120_256gb``: Micron CZ120, CXL 2.0 Type 3, E3.S 2T,
  PCIe 5.0 x8, 128 or 256 GB, "up to 36 GB/s" (measured by Micron with Intel MLC at a 2:1
  read:write ratio on one module). Source: Micron's announcement, reported by Tom's
  Hardware, "Micron Unveils 128GB and 256GB CXL 2.0 Expansion Modules" (Aug 2023),
  https://www.tomshardware.com/news/micron-unveils-128gb-256gb-cxl-2-expansion-modules.
* ``samsung_cmm_d_128gb``: Samsung CMM-D (CXL Memory Module - DRAM), 128 GB, PCIe 5.0,
  "bandwidth of up to 35GB per second". Source: Samsung Semiconductor tech blog,
  "CMM-H: Rethinking Storage for the Memory-Centric Computing Era",
  https://semiconductor.samsung.com/us/news-events/tech-blog/rethinking-storage-for-the-memory-centric-computing-era/.

Latency: neither vendor publishes one. The presets use 250 ns, inside the 140-410 ns range
of CXL memory latencies that Melody measured and emulated across four real CXL devices (Liu
et al., "Systematic CXL Memory Characterization and Performance Analysis at Scale",
ASPLOS 2025, doi:10.1145/3676641.3715987), and the ~250 ns that hermes's first-party
``cxl`` tier takes from Sun et al., MICRO 2023. Override it with ``latency_ns``.

What it does not model: queueing and bandwidth sharing between concurrent users, the
read/write mix, the host bridge or CXL switch hops between an accelerator and the module
(add them to ``latency_ns``), and capacity management (who evicts what).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hermes_core import MemoryTier

GiB = 2**30
#: PCIe 5.0 x8 per direction: 32 GT/s * 8 lanes * 128/130 encoding / 8 bits (bytes/s).
PCIE5_X8_BPS = 32e9 * 8 * 128 / 130 / 8


class CXLPreset(BaseModel):
    """Datasheet figures of one CXL memory module (units in field names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    capacity_GiB: float
    datasheet_bandwidth_GBps: float
    link_GBps: float = PCIE5_X8_BPS / 1e9
    latency_ns: float = 250.0
    source: str


PRESETS: dict[str, CXLPreset] = {
    "micron_cz120_128gb": CXLPreset(
        name="Micron-CZ120-128GB", capacity_GiB=128, datasheet_bandwidth_GBps=36.0,
        source="Micron CZ120 announcement (Tom's Hardware, Aug 2023): CXL 2.0, PCIe 5.0 x8, up to 36 GB/s",
    ),
    "micron_cz120_256gb": CXLPreset(
        name="Micron-CZ120-256GB", capacity_GiB=256, datasheet_bandwidth_GBps=36.0,
        source="Micron CZ120 announcement (Tom's Hardware, Aug 2023): CXL 2.0, PCIe 5.0 x8, up to 36 GB/s",
    ),
    "samsung_cmm_d_128gb": CXLPreset(
        name="Samsung-CMM-D-128GB", capacity_GiB=128, datasheet_bandwidth_GBps=35.0,
        source="Samsung Semiconductor tech blog (CMM-D: 128GB CXL DRAM, PCIe 5.0, up to 35 GB/s)",
    ),
}
ALIASES = {"cz120": "micron_cz120_256gb", "cmm_d": "samsung_cmm_d_128gb"}


class CXLExpanderConfig(BaseModel):
    """``{type: cxl_expander, preset: micron_cz120_256gb, modules: 4}``.

    ``preset`` (see the module docstring; aliases ``cz120``, ``cmm_d``); ``modules``
    (interleaved modules, >= 1); overrides per module (``None`` keeps the preset's):
    ``capacity_GiB``, ``bandwidth_GBps`` (replaces ``min(datasheet, link)``),
    ``latency_ns``; ``efficiency``: share of the bandwidth reached, (0, 1].
    """

    model_config = ConfigDict(extra="forbid")
    preset: str = "micron_cz120_256gb"
    modules: int = Field(1, ge=1)
    capacity_GiB: float | None = Field(None, gt=0)
    bandwidth_GBps: float | None = Field(None, gt=0)
    latency_ns: float | None = Field(None, ge=0)
    efficiency: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> CXLExpanderConfig:
        key = ALIASES.get(self.preset, self.preset)
        if key not in PRESETS:
            raise ValueError(f"unknown preset '{self.preset}'; allowed: {', '.join(sorted(PRESETS))}")
        self.preset = key
        return self


class CXLExpander(MemoryTier):
    """``modules`` CXL memory modules, interleaved; built by hermes as
    ``CXLExpander(CXLExpanderConfig)``."""

    Config = CXLExpanderConfig

    def __init__(self, config: CXLExpanderConfig):
        p = PRESETS[config.preset]
        self.config = config
        self.preset = p
        n = config.modules
        self.name = p.name if n == 1 else f"{n}x{p.name}"
        self.capacity_bytes = n * (config.capacity_GiB or p.capacity_GiB) * GiB
        per_module = config.bandwidth_GBps or min(p.datasheet_bandwidth_GBps, p.link_GBps)
        self.bandwidth = n * per_module * 1e9 * config.efficiency
        self.latency = (p.latency_ns if config.latency_ns is None else config.latency_ns) * 1e-9
        self.provenance = p.source + "; latency 250 ns unless set (no vendor figure; see Melody, ASPLOS 2025)"
