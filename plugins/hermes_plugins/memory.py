"""Memory tiers: device HBM, host DRAM over PCIe, and CXL-attached memory.

Figures are per device (what one accelerator sees). Sources: PCIe 5.0 x16 64 GB/s per
direction (PCI-SIG spec; ~55 GB/s achievable is common, we keep the link rate and let
``efficiency`` scale it); CXL 2.0 Type-3 x16 expander ~64 GB/s per direction at ~250 ns
extra latency (Sun et al., "Demystifying CXL Memory with Genuine CXL-Ready Systems",
MICRO 2023).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hermes_core import MemoryTier, hookimpl


class TierConfig(BaseModel):
    """``capacity_GiB``, ``bandwidth_GBps`` (per direction, 10^9 bytes/s), ``latency_us``,
    ``efficiency`` (share of the link rate reached, (0, 1])."""

    model_config = ConfigDict(extra="forbid")
    capacity_GiB: float = Field(..., gt=0)
    bandwidth_GBps: float = Field(..., gt=0)
    latency_us: float = Field(..., ge=0)
    efficiency: float = Field(1.0, gt=0, le=1)


class _Tier(MemoryTier):
    defaults: dict = {}
    label = "tier"

    def __init__(self, config: BaseModel):
        self.config = config
        self.name = self.label
        self.capacity_bytes = config.capacity_GiB * 2**30
        self.bandwidth = config.bandwidth_GBps * 1e9 * config.efficiency
        self.latency = config.latency_us * 1e-6
        self.provenance = __doc__.split("\n\n")[1].replace("\n", " ")


class HostDRAMConfig(TierConfig):
    capacity_GiB: float = Field(256, gt=0)
    bandwidth_GBps: float = Field(64, gt=0)
    latency_us: float = Field(2.0, ge=0)


class HostDRAM(_Tier):
    """Host DRAM reached over PCIe 5.0 x16 (offloaded KV cache)."""

    Config = HostDRAMConfig
    label = "host_dram"


class CXLConfig(TierConfig):
    capacity_GiB: float = Field(512, gt=0)
    bandwidth_GBps: float = Field(64, gt=0)
    latency_us: float = Field(2.25, ge=0)


class CXLMemory(_Tier):
    """CXL 2.0 Type-3 memory expander."""

    Config = CXLConfig
    label = "cxl"


@hookimpl
def hermes_register_memory_tiers(register):
    """Register ``host_dram`` and ``cxl``."""
    register("cxl", CXLMemory)
    register("host_dram", HostDRAM)
