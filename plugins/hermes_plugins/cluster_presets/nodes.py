"""Cluster node types: an 8-GPU NVSwitch server (HGX/DGX H100, H200), a 2-socket CPU host,
a switch, and a pod of servers under a leaf switch.

Each builds graph nodes named ``<name>/<part>`` in the group ``<name>`` and returns its
*ports*, the nodes that links to the group attach to (a server's NICs; a switch itself).
Internal link figures come from :data:`~hermes_plugins.cluster_presets.links.LINKS` (line
rates, per direction) except the GPUs' NVLink, which is the GPU device's own
``link_bandwidth`` and ``link_latency`` so that a client placed on one server prices its
tensor-parallel collectives exactly as an unplaced client does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hermes_core import ConfigError, NodeType
from hermes_core.cluster import Cluster
from hermes_core.plugins import Registry

from .links import LINKS, UPI, LinkFigures

GiB = 2**30

#: System memory of a DGX H100 / H200: 2 TB DDR5 (NVIDIA DGX H100 and DGX H200 datasheets),
#: i.e. 32 x 64 GiB RDIMMs, 1 TiB per socket: a typical population, taken as 2^40 bytes.
HGX_DRAM_PER_SOCKET_BYTES = 2**40

#: GPUs of an HGX/DGX H100 or H200 board (NVIDIA DGX H100 / DGX H200 datasheets: 8 GPUs).
HGX_GPUS = 8


def _connect(cluster: Cluster, a: str, b: str, fig: LinkFigures) -> None:
    cluster.connect(a, b, fig.bandwidth, fig.latency, fig.name)


def _dram(cluster: Cluster, name: str, socket: str, k: int, capacity_bytes: float) -> str:
    """Socket ``socket``'s DRAM ``<name>/dram<k>`` (kind memory), linked with ddr5_4800_8ch."""
    dram = cluster.add(f"{name}/dram{k}", "memory", name, capacity_bytes=float(capacity_bytes))
    _connect(cluster, socket, dram, LINKS["ddr5_4800_8ch"])
    return dram


class HGXConfig(BaseModel):
    """``hgx_h100`` options: ``gpu`` (the device spec of the 8 GPUs; default ``{type: gpu,
    preset: h100_sxm}``) and ``nics`` (compute-fabric NICs, 1, 2, 4 or 8; default 8, one per
    GPU as in a DGX H100)."""

    model_config = ConfigDict(extra="forbid")
    gpu: dict[str, Any] = Field(default_factory=lambda: {"type": "gpu", "preset": "h100_sxm"},
                                description="Device spec of the 8 GPUs (a `devices` component).")
    nics: int = Field(8, description="Compute-fabric NICs (ports): 1, 2, 4 or 8.")

    @field_validator("nics")
    @classmethod
    def _divides(cls, v: int) -> int:
        if v not in (1, 2, 4, 8):
            raise ValueError(f"must be 1, 2, 4 or 8 (NIC j sits on the PCIe switch of GPU j x 8 / nics); got {v}")
        return v


class HGXH200Config(HGXConfig):
    """``hgx_h200`` options: as :class:`HGXConfig`, ``gpu`` defaulting to ``{type: gpu,
    preset: h200_sxm}``."""

    gpu: dict[str, Any] = Field(default_factory=lambda: {"type": "gpu", "preset": "h200_sxm"},
                                description="Device spec of the 8 GPUs (a `devices` component).")


class HGXServer(NodeType):
    """An 8-GPU NVSwitch server, as an NVIDIA DGX H100 (``hgx_h100``) or DGX H200
    (``hgx_h200``).

    Source: NVIDIA DGX H100 datasheet and DGX H100/H200 User Guide (system overview): 8 H100
    SXM5 GPUs on 4 third-generation NVSwitch chips (900 GB/s NVLink per GPU), 2 Intel Xeon
    Platinum 8480C CPUs, 2 TB DDR5, PCIe Gen5 switches, 8 single-port NVIDIA ConnectX-7
    400 Gb/s InfiniBand/Ethernet NICs for the compute fabric, one per GPU; DGX H200
    datasheet: the same with H200 141 GB GPUs.

    Graph nodes (group ``<name>``):

    * ``<name>/gpu0..7`` (kind ``device``, attr ``device`` = the ``gpu`` spec), each linked
      to ``<name>/nvswitch`` (kind ``switch``; the 4 NVSwitch chips as one non-blocking
      switch) with the GPU device's own ``link_bandwidth`` (bytes/s per direction) and
      ``link_latency`` (s), built through the registry (label ``nvlink``);
    * ``<name>/pcie0..7`` (kind ``switch``): one PCIe Gen5 switch per GPU-NIC pair
      (assumption: the real board may put several pairs on one switch chip; each device's
      x16 link is what a path crosses), linked to GPU i, and to CPU socket ``i // 4``
      (assumption: GPUs 0-3 on socket 0, 4-7 on socket 1), each link ``pcie_gen5_x16``;
    * ``<name>/nic0..`` (kind ``nic``, ``nics`` of them, the ports): NIC j on PCIe switch
      ``j * 8 / nics`` (``pcie_gen5_x16``), so with 8 NICs GPU i reaches the fabric through
      its own PCIe switch and NIC i (GPUDirect RDMA), not through NVLink, and rail-matched
      links (port i to port i) join GPU i of two servers;
    * ``<name>/cpu0..1`` (kind ``host``) joined by ``upi`` (4 UPI 2.0 links,
      :data:`~hermes_plugins.cluster_presets.links.UPI`), each with ``<name>/dram0..1``
      (kind ``memory``, ``capacity_bytes`` = 2^40, 1 TiB, a typical population of the
      datasheet's 2 TB) over ``ddr5_4800_8ch``.

    Routing takes the lowest-latency path, ties to fewer hops
    (:func:`hermes_core.network.route`): two GPUs of one server meet through the NVSwitch
    (PCIe links have positive latency). Raises :class:`ConfigError` naming
    ``<where>.gpu`` for a bad device spec.
    """

    Config = HGXConfig

    def build(self, cluster: Cluster, name: str, registry: Registry) -> list[str]:
        """Add the server's nodes and links; return its NICs (the ports)."""
        cfg = self.config
        where = f"{self.where}.gpu"
        comp, dev_cfg = registry.validate("devices", cfg.gpu, where)
        try:
            dev = comp.obj(dev_cfg)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        bw, lat = float(dev.link_bandwidth), float(dev.link_latency)
        if not bw > 0 or not lat >= 0:
            raise ConfigError(f"{where}: the device's link_bandwidth must be > 0 and link_latency >= 0 "
                              f"(got {bw} bytes/s, {lat} s)")
        pcie = LINKS["pcie_gen5_x16"]
        gpus = [cluster.add(f"{name}/gpu{i}", "device", name, device=dict(cfg.gpu)) for i in range(HGX_GPUS)]
        nvswitch = cluster.add(f"{name}/nvswitch", "switch", name)
        for gpu in gpus:
            cluster.connect(gpu, nvswitch, bw, lat, "nvlink")
        cpus = [cluster.add(f"{name}/cpu{s}", "host", name) for s in range(2)]
        _connect(cluster, cpus[0], cpus[1], UPI)
        for s, cpu in enumerate(cpus):
            _dram(cluster, name, cpu, s, HGX_DRAM_PER_SOCKET_BYTES)
        switches = []
        for i, gpu in enumerate(gpus):
            sw = cluster.add(f"{name}/pcie{i}", "switch", name)
            _connect(cluster, gpu, sw, pcie)
            _connect(cluster, sw, cpus[i * 2 // HGX_GPUS], pcie)
            switches.append(sw)
        nics = []
        for j in range(cfg.nics):
            nic = cluster.add(f"{name}/nic{j}", "nic", name)
            _connect(cluster, nic, switches[j * HGX_GPUS // cfg.nics], pcie)
            nics.append(nic)
        return nics


class HGXH200Server(HGXServer):
    """``hgx_h200``: :class:`HGXServer` with H200 SXM GPUs (NVIDIA DGX H200 datasheet: 8
    H200 141 GB, 4 NVSwitch, 8 ConnectX-7 400 Gb/s, 2 Xeon Platinum 8480C, 2 TB DDR5)."""

    Config = HGXH200Config


class CPUHostConfig(BaseModel):
    """``cpu_host`` options: ``nics`` (NICs, the ports; default 1), ``dram_GiB`` (DRAM per
    socket, GiB; default 512) and ``cxl_capacity_GiB`` (the CXL memory expander, GiB;
    default 512)."""

    model_config = ConfigDict(extra="forbid")
    nics: int = Field(1, ge=1, description="NICs on the PCIe root (the ports).")
    dram_GiB: float = Field(512, gt=0, description="DRAM per socket, GiB (2^30 bytes).")
    cxl_capacity_GiB: float = Field(512, gt=0, description="CXL Type-3 memory capacity, GiB (2^30 bytes).")


#: The device spec of a ``cpu_host`` socket (the ``cpu_socket`` device type, Intel Xeon
#: Platinum 8480+).
CPU_SOCKET_SPEC = {"type": "cpu_socket", "preset": "xeon_8480p"}


class CPUHost(NodeType):
    """A 2-socket CPU server (Intel Xeon Platinum 8480+, Sapphire Rapids) with a CXL memory
    expander.

    Graph nodes (group ``<name>``): ``<name>/cpu0..1`` (kind ``device``, attr ``device`` =
    ``{type: cpu_socket, preset: xeon_8480p}``, so clients can be placed on them) joined by
    ``upi`` (Intel Xeon Platinum 8480+ product specifications: 4 UPI 2.0 links at 16 GT/s,
    :data:`~hermes_plugins.cluster_presets.links.UPI`); ``<name>/dram0..1`` (kind
    ``memory``, ``dram_GiB`` each; default 512 GiB = 8 channels x one 64 GiB RDIMM, a typical
    population) over ``ddr5_4800_8ch`` (8 DDR5-4800 channels per socket, Intel product
    specifications); ``<name>/pcie`` (kind ``switch``, socket 0's PCIe Gen5 root) over
    ``pcie_gen5_x16``; ``<name>/cxl0`` (kind ``memory``, ``cxl_capacity_GiB``), a CXL 2.0
    Type-3 expander on socket 0 over ``cxl2_x16``; ``<name>/nic0..`` (kind ``nic``, the
    ports) on the PCIe root over ``pcie_gen5_x16``. The device type itself is not built
    here (an unregistered type fails when a client is placed on the host). Raises
    nothing.
    """

    Config = CPUHostConfig

    def build(self, cluster: Cluster, name: str, registry: Registry) -> list[str]:
        """Add the host's nodes and links; return its NICs (the ports)."""
        cfg = self.config
        cpus = [cluster.add(f"{name}/cpu{s}", "device", name, device=dict(CPU_SOCKET_SPEC)) for s in range(2)]
        _connect(cluster, cpus[0], cpus[1], UPI)
        for s, cpu in enumerate(cpus):
            _dram(cluster, name, cpu, s, cfg.dram_GiB * GiB)
        root = cluster.add(f"{name}/pcie", "switch", name)
        _connect(cluster, cpus[0], root, LINKS["pcie_gen5_x16"])
        cxl = cluster.add(f"{name}/cxl0", "memory", name, capacity_bytes=cfg.cxl_capacity_GiB * GiB)
        _connect(cluster, cpus[0], cxl, LINKS["cxl2_x16"])
        nics = []
        for j in range(cfg.nics):
            nic = cluster.add(f"{name}/nic{j}", "nic", name)
            _connect(cluster, nic, root, LINKS["pcie_gen5_x16"])
            nics.append(nic)
        return nics


class SwitchConfig(BaseModel):
    """``switch``: no options."""

    model_config = ConfigDict(extra="forbid")


class Switch(NodeType):
    """One switch node ``<name>`` (kind ``switch``; a leaf or spine), its own only port. Its
    links carry the figures: the switch itself is non-blocking (no figure of its own).
    Raises nothing."""

    Config = SwitchConfig

    def build(self, cluster: Cluster, name: str, registry: Registry) -> list[str]:
        """Add the switch; return ``[name]``."""
        return [cluster.add(name, "switch", name)]


class PodConfig(BaseModel):
    """``pod`` options: ``servers`` (count, default 4), ``server`` (their node type spec,
    default ``{type: hgx_h100}``) and ``fabric`` (the link type from each server port to the
    leaf: a name or ``{type: ..., bandwidth_GBps, latency_us}``; default ``ib_ndr``)."""

    model_config = ConfigDict(extra="forbid")
    servers: int = Field(4, ge=1, description="Servers under the leaf switch.")
    server: dict[str, Any] = Field(default_factory=lambda: {"type": "hgx_h100"},
                                   description="Node type spec of every server (a `cluster_nodes` component).")
    fabric: str | dict[str, Any] = Field("ib_ndr", description="Link type from each server port to the leaf.")


class Pod(NodeType):
    """``servers`` servers named ``<name>/s0..`` (each built from ``server``, its own group
    and ports, so ``place: pod0/s1`` and links to ``pod0/s1`` work) under one leaf switch
    ``<name>/leaf`` (kind ``switch``), every server port linked to the leaf with ``fabric``.
    The group ``<name>`` holds every node (servers in order, then the leaf), so ``place:
    pod0`` takes the servers' free devices in order; the pod's port is the leaf (link it to
    a spine). Raises :class:`ConfigError` naming ``<where>.server`` or ``<where>.fabric``
    for a bad spec."""

    Config = PodConfig

    def build(self, cluster: Cluster, name: str, registry: Registry) -> list[str]:
        """Add the servers, the leaf and the fabric links; return ``[<name>/leaf]``."""
        cfg = self.config
        fabric_spec = {"type": cfg.fabric} if isinstance(cfg.fabric, str) else cfg.fabric
        link = registry.build("links", fabric_spec, f"{self.where}.fabric")
        comp, server_cfg = registry.validate("cluster_nodes", cfg.server, f"{self.where}.server")
        all_ports = []
        for k in range(cfg.servers):
            sname = f"{name}/s{k}"
            server = comp.obj(server_cfg)
            server.where = f"{self.where}.server"
            ports = list(server.build(cluster, sname, registry))
            cluster.ports[sname] = ports
            cluster.join(name, cluster.groups.get(sname, []))
            all_ports += ports
        leaf = cluster.add(f"{name}/leaf", "switch", name)
        label = str(fabric_spec.get("type", ""))
        for p in all_ports:
            cluster.connect(p, leaf, link.bandwidth, link.latency, label)
        return [leaf]
