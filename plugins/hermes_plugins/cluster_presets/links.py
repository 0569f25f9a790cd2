"""Link types: the per-direction bandwidth and the latency of one link, with their sources.

Every figure is the **line rate** (signalling rate x encoding efficiency where the standard
defines one, e.g. PCIe's 128b/130b): no protocol-efficiency factor (packet headers, flow
control, RDMA or NCCL overheads) is applied. Bandwidths are bytes/s **per direction**
(1 GB/s = 10^9 bytes/s; 1 Gb/s = 10^9 bits/s = 0.125 GB/s); a link carries that much in each
direction at once (full duplex). Latencies are seconds per link, one way: the figure adds
once for each link a path crosses. Latencies are typical figures or assumptions, each
named as such below; measure and override them (``latency_us``) where it matters.

======================  ==========  ==========  =========================================================
name                    GB/s/dir    latency us  source
======================  ==========  ==========  =========================================================
``nvlink4``             450         0           NVIDIA H100 Tensor Core GPU datasheet (2023)
``nvlink5``             900         0           NVIDIA Blackwell (HGX B200) datasheet (2024)
``pcie_gen4_x16``       31.5        0.5         PCI Express Base Specification 4.0
``pcie_gen5_x16``       63.0        0.5         PCI Express Base Specification 5.0
``cxl2_x16``            63.0        0.35        CXL Specification 2.0; Sun et al., MICRO 2023
``ib_ndr``              50          0.5         InfiniBand NDR 400 Gb/s (NVIDIA ConnectX-7)
``ib_xdr``              100         0.5         InfiniBand XDR 800 Gb/s (NVIDIA ConnectX-8)
``roce_100g``           12.5        1.0         Ethernet 100 Gb/s (IEEE 802.3), RoCE v2
``roce_200g``           25          1.0         Ethernet 200 Gb/s (IEEE 802.3bs), RoCE v2
``roce_400g``           50          1.0         Ethernet 400 Gb/s (IEEE 802.3bs), RoCE v2
``roce_800g``           100         1.0         Ethernet 800 Gb/s (IEEE 802.3df), RoCE v2
``ddr5_4800_8ch``       307.2       0.1         JEDEC JESD79-5 DDR5; Intel Xeon 8480+ specs
======================  ==========  ==========  =========================================================

The full citation of each figure is in :data:`LINKS` (``bandwidth_source``,
``latency_source``) and in ``docs/scenarios.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hermes_core import LinkType


def pcie_lane_bytes_per_s(gt_s: float) -> float:
    """Per-direction line rate of one PCIe lane, bytes/s: ``gt_s`` x 10^9 transfers/s x
    128/130 (the 128b/130b encoding of PCIe 3.0 and later, PCI Express Base Specification)
    / 8 bits. Raises nothing."""
    return gt_s * 1e9 * 128 / 130 / 8


@dataclass(frozen=True)
class LinkFigures:
    """One link type's figures: ``bandwidth_GBps`` (10^9 bytes/s per direction, line rate),
    ``latency_us`` (one way, per link) and where each comes from."""

    name: str
    bandwidth_GBps: float
    latency_us: float
    bandwidth_source: str
    latency_source: str

    @property
    def bandwidth(self) -> float:
        """Per-direction bandwidth, bytes/s."""
        return self.bandwidth_GBps * 1e9

    @property
    def latency(self) -> float:
        """Latency, s."""
        return self.latency_us * 1e-6

    @property
    def provenance(self) -> str:
        """Both sources, one line."""
        return f"bandwidth: {self.bandwidth_source}; latency: {self.latency_source}"


_NVLINK_LAT = ("the per-hop latency fitted on measured H100 all-reduces, 0 us "
               "(hermes_plugins/data/efficiency_h100_sxm.json, link_latency_us): the fixed cost of a "
               "collective is the GPU's collective_latency_us, not the link's")
_PCIE_LAT = ("assumption: 0.5 us per PCIe link, the order of a PCIe DMA read (0.5-1 us measured by "
             "Neugebauer et al., 'Understanding PCIe performance for end host networking', SIGCOMM 2018); "
             "a typical figure, not a measurement of any one system")
_IB_LAT = ("assumption: 0.5 us per NIC-to-switch link, so NIC to NIC through one switch is ~1 us, the "
           "end-to-end class NVIDIA quotes for InfiniBand (typical figure)")
_ROCE_LAT = ("assumption: 1 us per NIC-to-switch link, so NIC to NIC through one Ethernet switch is ~2 us "
             "(RoCE end-to-end latencies are typically a few us; typical figure)")
_ROCE_SPEC = "RoCE v2: InfiniBand Trade Association, InfiniBand Architecture Specification, Annex A17"

#: Every first-party link type's figures, by name.
LINKS: dict[str, LinkFigures] = {f.name: f for f in (
    LinkFigures("nvlink4", 450.0, 0.0,
                "NVIDIA H100 Tensor Core GPU datasheet (2023): NVLink 4, 900 GB/s bidirectional per GPU = 450 GB/s "
                "per direction", _NVLINK_LAT),
    LinkFigures("nvlink5", 900.0, 0.0,
                "NVIDIA Blackwell (HGX B200) datasheet (2024): NVLink 5, 1.8 TB/s bidirectional per GPU = 900 GB/s "
                "per direction", _NVLINK_LAT + "; no B200 measurement, assumed as H100"),
    LinkFigures("pcie_gen4_x16", 16 * pcie_lane_bytes_per_s(16) / 1e9, 0.5,
                "PCI Express Base Specification 4.0: 16 GT/s x 16 lanes x 128/130 / 8 = 31.5 GB/s per direction",
                _PCIE_LAT),
    LinkFigures("pcie_gen5_x16", 16 * pcie_lane_bytes_per_s(32) / 1e9, 0.5,
                "PCI Express Base Specification 5.0: 32 GT/s x 16 lanes x 128/130 / 8 = 63.0 GB/s per direction",
                _PCIE_LAT),
    LinkFigures("cxl2_x16", 16 * pcie_lane_bytes_per_s(32) / 1e9, 0.35,
                "Compute Express Link Specification 2.0: CXL runs on the PCIe 5.0 PHY, x16 = 63.0 GB/s per direction",
                "load latency of CXL Type-3 memory: local DDR5 ~0.1 us (as ddr5_4800_8ch) plus ~0.25 us, mid-range "
                "of the 140-410 ns that Sun et al. measured CXL expanders adding over local DRAM ('Demystifying CXL "
                "Memory with Genuine CXL-Ready Systems and Devices', MICRO 2023); typical figure"),
    LinkFigures("ib_ndr", 400 / 8, 0.5,
                "InfiniBand NDR, 400 Gb/s per port (NVIDIA ConnectX-7 and Quantum-2 datasheets) = 50 GB/s "
                "per direction", _IB_LAT),
    LinkFigures("ib_xdr", 800 / 8, 0.5,
                "InfiniBand XDR, 800 Gb/s per port (NVIDIA ConnectX-8 SuperNIC and Quantum-X800 datasheets) = "
                "100 GB/s per direction", _IB_LAT),
    LinkFigures("roce_100g", 100 / 8, 1.0,
                f"Ethernet 100 Gb/s (IEEE 802.3) = 12.5 GB/s per direction; {_ROCE_SPEC}", _ROCE_LAT),
    LinkFigures("roce_200g", 200 / 8, 1.0,
                f"Ethernet 200 Gb/s (IEEE 802.3bs) = 25 GB/s per direction; {_ROCE_SPEC}", _ROCE_LAT),
    LinkFigures("roce_400g", 400 / 8, 1.0,
                f"Ethernet 400 Gb/s (IEEE 802.3bs) = 50 GB/s per direction; {_ROCE_SPEC}", _ROCE_LAT),
    LinkFigures("roce_800g", 800 / 8, 1.0,
                f"Ethernet 800 Gb/s (IEEE 802.3df) = 100 GB/s per direction; {_ROCE_SPEC}", _ROCE_LAT),
    LinkFigures("ddr5_4800_8ch", 8 * 4800e6 * 8 / 1e9, 0.1,
                "JEDEC DDR5 SDRAM standard (JESD79-5): 4800 MT/s x 8 bytes per transfer per channel; 8 channels "
                "per socket (Intel Xeon Platinum 8480+/8480C product specifications) = 307.2 GB/s. The channels "
                "are shared by reads and writes; the link gives the whole figure in each direction (optimistic "
                "for mixed traffic)",
                "assumption: ~0.1 us idle load latency of local DDR5 (typical figure)"),
)}

#: Two Sapphire Rapids sockets' UPI 2.0 links (the ``upi`` edges inside node types; not a
#: link type): 4 links x 16 GT/s x 2 bytes per transfer per direction = 128 GB/s per
#: direction (Intel Xeon Platinum 8480+ product specifications: 4 UPI links at 16 GT/s;
#: 2 bytes of payload per transfer per direction, the 20.8 GB/s of a 10.4 GT/s link in
#: Intel's Xeon Scalable platform overview). Latency: assumption, ~0.1 us added by a
#: remote-socket hop (typical figure).
UPI = LinkFigures("upi", 4 * 16e9 * 2 / 1e9, 0.1,
                  "Intel Xeon Platinum 8480+ product specifications: 4 UPI 2.0 links at 16 GT/s, 2 bytes per "
                  "transfer per direction = 128 GB/s per direction",
                  "assumption: ~0.1 us for a remote-socket hop (typical figure)")


class LinkOverrides(BaseModel):
    """Optional overrides of a link type's figures: ``bandwidth_GBps`` (10^9 bytes/s per
    direction, > 0) and ``latency_us`` (one way, >= 0). Unset: the link type's figure."""

    model_config = ConfigDict(extra="forbid")
    bandwidth_GBps: float | None = Field(None, gt=0, description="Per-direction bandwidth, 10^9 bytes/s (> 0).")
    latency_us: float | None = Field(None, ge=0, description="One-way latency per link, microseconds (>= 0).")


class DatasheetLink(LinkType):
    """A link type whose figures come from :data:`LINKS` (``figures``), optionally
    overridden by :class:`LinkOverrides`. Sets ``bandwidth`` (bytes/s per direction),
    ``latency`` (s) and ``provenance``. Raises nothing (the config is validated)."""

    Config = LinkOverrides
    figures: ClassVar[LinkFigures]

    def __init__(self, config: LinkOverrides):
        super().__init__(config)
        f = self.figures
        self.bandwidth = (config.bandwidth_GBps if config.bandwidth_GBps is not None else f.bandwidth_GBps) * 1e9
        self.latency = (config.latency_us if config.latency_us is not None else f.latency_us) * 1e-6
        over = [k for k in ("bandwidth_GBps", "latency_us") if getattr(config, k) is not None]
        self.provenance = f.provenance + (f"; overridden: {', '.join(over)}" if over else "")


def _link_type(fig: LinkFigures) -> type[DatasheetLink]:
    doc = (f"Link type ``{fig.name}``: {fig.bandwidth_GBps:g} GB/s per direction, {fig.latency_us:g} us "
           f"(line rate, no protocol efficiency). Bandwidth: {fig.bandwidth_source}. Latency: {fig.latency_source}.")
    return type(f"Link_{fig.name}", (DatasheetLink,), {"figures": fig, "__doc__": doc, "__module__": __name__})


#: The registered link type classes, by name (one :class:`DatasheetLink` subclass each).
LINK_TYPES: dict[str, type[DatasheetLink]] = {name: _link_type(fig) for name, fig in LINKS.items()}
