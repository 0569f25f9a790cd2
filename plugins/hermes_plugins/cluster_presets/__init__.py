"""First-party cluster node types and link types.

Node types (:mod:`.nodes`): ``hgx_h100``, ``hgx_h200`` (8-GPU NVSwitch servers with their
host CPUs, DRAM, PCIe switches and NICs), ``cpu_host`` (a 2-socket CPU server with a CXL
memory expander), ``switch`` and ``pod`` (servers under a leaf switch). Link types
(:mod:`.links`): NVLink 4/5, PCIe Gen4/Gen5 x16, CXL 2.0 x16, InfiniBand NDR/XDR, RoCE
100-800G and an 8-channel DDR5-4800 socket, each with its sources.
"""

from __future__ import annotations

from hermes_core import hookimpl

from .links import LINK_TYPES, LINKS
from .nodes import CPUHost, HGXH200Server, HGXServer, Pod, Switch

#: The registered node types, by name.
NODE_TYPES = {"hgx_h100": HGXServer, "hgx_h200": HGXH200Server, "cpu_host": CPUHost, "switch": Switch, "pod": Pod}


@hookimpl
def hermes_register_cluster_nodes(register):
    """Register the node types of :data:`NODE_TYPES`."""
    for name, cls in NODE_TYPES.items():
        register(name, cls, source=(cls.__doc__ or "").split("\n")[0])


@hookimpl
def hermes_register_links(register):
    """Register the link types of :data:`~.links.LINKS`, with their sources."""
    for name, cls in LINK_TYPES.items():
        register(name, cls, source=LINKS[name].provenance)


__all__ = ["LINKS", "LINK_TYPES", "NODE_TYPES", "hermes_register_cluster_nodes", "hermes_register_links"]
