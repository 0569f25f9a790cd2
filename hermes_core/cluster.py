"""The cluster: one graph of devices, memories, switches and NICs for the whole scenario.

A scenario's ``cluster`` section lists **nodes** and **links**. A node entry builds a group
of graph nodes from a node type (a plugin, e.g. an 8-GPU NVSwitch server with its host CPUs,
DRAM and NICs; a CPU host; a leaf switch), or one bare node; a link entry joins two groups
or nodes with a link type (a plugin carrying datasheet figures: InfiniBand NDR, RoCE 400G,
PCIe Gen5 x16, ...) or with figures written out::

    cluster:
      nodes:
        - {name: prefill, type: hgx_h100}
        - {name: decode, type: hgx_h100}
        - {name: leaf, type: switch}
      links:
        - {between: [prefill, leaf], type: ib_ndr}
        - {between: [decode, leaf], type: ib_ndr}

Joining two groups links their *ports* (a server's NICs, a switch itself): port ``i`` of
one to port ``i`` of the other (rail-matched), or every port to a group with one port.

Clients are placed on groups or on device nodes (:meth:`Cluster.allocate`); their TP and
PP collectives then take bandwidth and latency from the paths between their devices, and
transfers between steps run over the paths between replicas
(:class:`~hermes_core.network.Network`).

Graph node attributes: ``kind`` (``device``, ``memory``, ``switch``, ``nic``, ``host``),
``group``; device nodes carry ``device`` (the device component spec, e.g. ``{type: gpu,
preset: h100_sxm}``); memory nodes ``capacity_bytes``. Edge attributes: ``bandwidth``
(bytes/s per direction), ``latency`` (s), ``link`` (the link type's name).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ConfigError
from .topology import Topology

if TYPE_CHECKING:
    from .plugins import Registry


class Cluster(Topology):
    """A :class:`Topology` with named groups of nodes, their ports, and device allocation.

    ``groups[name]``: the graph nodes a node entry built (in build order); ``ports[name]``:
    the nodes that links to the group attach to.
    """

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[str, list[str]] = {}
        self.ports: dict[str, list[str]] = {}
        self._owner: dict[str, str] = {}  # device node -> client that holds it

    # -- building (node types call these) -------------------------------------------------
    def add(self, name: str, kind: str, group: str, **attrs: Any) -> str:
        """Add graph node ``name`` of ``kind`` to ``group`` and return the name. Raises
        :class:`ConfigError` if the name is taken."""
        if name in self.graph:
            raise ConfigError(f"cluster: node name '{name}' is used twice")
        self.add_node(name, kind, group=group, **attrs)
        self.groups.setdefault(group, []).append(name)
        return name

    def join(self, group: str, nodes: Iterable[str]) -> None:
        """Add existing graph ``nodes`` to ``group`` as well, in order (a node may belong to
        several groups: a pod's servers' nodes are in their server's group and the pod's, so
        both ``place: pod0`` and ``place: pod0/s1`` work). A node's ``group`` attribute keeps
        the group that added it. Raises :class:`ConfigError` for a node not in the graph."""
        members = self.groups.setdefault(group, [])
        for n in nodes:
            if n not in self.graph:
                raise ConfigError(f"cluster: cannot add unknown node '{n}' to group '{group}'")
            if n not in members:
                members.append(n)

    def connect(self, a: str, b: str, bandwidth: float, latency: float, link: str = "") -> None:
        """Link graph nodes a and b (``bandwidth`` bytes/s per direction > 0, ``latency`` s >= 0)."""
        self.add_link(a, b, bandwidth, latency)
        self.graph.edges[a, b]["link"] = link

    # -- queries ------------------------------------------------------------------------
    def devices(self, group_or_node: str) -> list[str]:
        """Device nodes of a group (in build order), or ``[node]`` for a device node."""
        if group_or_node in self.groups:
            return [n for n in self.groups[group_or_node] if self.graph.nodes[n]["kind"] == "device"]
        if group_or_node in self.graph and self.graph.nodes[group_or_node]["kind"] == "device":
            return [group_or_node]
        return []

    def kind(self, node: str) -> str:
        """The ``kind`` attribute of graph node ``node``."""
        return self.graph.nodes[node]["kind"]

    def path(self, a: str, b: str) -> tuple[float, float]:
        """``(bottleneck bandwidth bytes/s, total latency s)`` of the route from a to b
        (:func:`hermes_core.network.route`: lowest latency, ties to fewer hops), the same
        route the cluster's flows take. Raises ``ValueError`` if no path exists."""
        from .network import route

        nodes = route(self.graph, a, b)
        edges = [self.graph.edges[u, v] for u, v in zip(nodes, nodes[1:])]
        return (min((e["bandwidth"] for e in edges), default=float("inf")),
                sum(e["latency"] for e in edges))

    def scale_up_domain(self, members: Sequence[str]) -> bool:
        """Whether every ring path between ``members`` (in order) stays on NVLink edges (label
        ``nvlink``): the members share one NVSwitch domain."""
        from .network import route

        n = len(members)
        for i in range(n):
            nodes = route(self.graph, members[i], members[(i + 1) % n])
            if any(self.graph.edges[u, v].get("link") != "nvlink" for u, v in zip(nodes, nodes[1:])):
                return False
        return True

    def allreduce_time(self, members: Sequence[str], nbytes, algo_latency: float = 0.0,
                       algorithms: Mapping[str, tuple[float, float]] | None = None):
        """:meth:`Topology.allreduce_time` over the cluster's paths. A group whose ring leaves
        its NVSwitch domain (TP across servers) uses the plain ring: the device's other
        algorithms and their fitted shares (one-shot, NVLink SHARP in the switch) exist only
        inside an NVLink domain (NCCL runs a ring or tree across nodes)."""
        if algorithms and len(members) > 1 and not self.scale_up_domain(members):
            algorithms = None
        return super().allreduce_time(members, nbytes, algo_latency, algorithms)

    def allocate(self, client: str, place: list[str], device_type: str | Mapping[str, Any] | None, count: int,
                 where: str) -> list[str]:
        """Take ``count`` free device nodes for ``client`` from the groups or device nodes in
        ``place`` (in order), matching ``device_type``: a component type name, or a device
        spec (same ``type``, and the same ``preset`` when both give one, :func:`spec_matches`);
        ``None``: any. A named device node must be free and match; a group gives its free
        matching devices in build order.

        Raises :class:`ConfigError` naming ``where`` for an unknown name, a device another
        client holds, or too few free devices."""
        chosen: list[str] = []
        for p in place:
            if p not in self.groups and p not in self.graph:
                raise ConfigError(f"{where}: no cluster node or group '{p}'; defined: {', '.join(self.groups)}")
            devs = self.devices(p)
            if not devs:
                raise ConfigError(f"{where}: '{p}' holds no devices (it is a {self._describe(p)})")
            explicit = p not in self.groups
            for d in devs:
                if len(chosen) == count:
                    break
                node_spec = self.graph.nodes[d]["device"]
                if isinstance(device_type, Mapping):
                    ok = spec_matches(node_spec, device_type)
                else:
                    ok = device_type is None or node_spec.get("type") == device_type
                if not ok:
                    if explicit:
                        raise ConfigError(f"{where}: device '{d}' is a {_spec_text(node_spec)}, the client needs "
                                          f"{_spec_text(device_type)}")
                    continue
                owner = self._owner.get(d)
                if owner is not None:
                    if explicit:
                        raise ConfigError(f"{where}: device '{d}' is already placed for client '{owner}'; "
                                          "two clients cannot share devices")
                    continue
                chosen.append(d)
        if len(chosen) < count:
            free = sum(1 for p in place for d in self.devices(p) if d not in self._owner)
            raise ConfigError(f"{where}: needs {count} free {_spec_text(device_type)} devices on {place}, "
                              f"found {len(chosen)} ({free} free in all)")
        for d in chosen:
            self._owner[d] = client
        return chosen

    def _describe(self, p: str) -> str:
        if p in self.groups:
            kinds = sorted({self.graph.nodes[n]["kind"] for n in self.groups[p]})
            return "group of " + ", ".join(kinds)
        return self.graph.nodes[p]["kind"]


def _spec_text(spec: str | Mapping[str, Any] | None) -> str:
    """A device type or spec as YAML-like text for messages: ``'gpu'``, ``{type: gpu,
    preset: h100_sxm}``, or ``any`` for ``None``."""
    if spec is None:
        return "any"
    if isinstance(spec, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}"
    return f"'{spec}'"


class NodeType(ABC):
    """A cluster node type (plugin kind ``cluster_nodes``): builds a group of graph nodes.

    Built as ``cls(config)``; :meth:`build` adds the group's nodes and internal links to the
    cluster and returns its ports. Every figure a node type uses must carry its source.
    ``where`` is the YAML path of the node entry (e.g. ``cluster.nodes[2]``), set by
    :func:`build_cluster` before :meth:`build`: name it in errors about nested fields
    (``f"{self.where}.gpu"``); a :class:`ConfigError` whose message does not start with it
    gets it prefixed.
    """

    Config: ClassVar[type[BaseModel]]
    where: str = "cluster"

    def __init__(self, config: BaseModel):
        self.config = config

    @abstractmethod
    def build(self, cluster: Cluster, name: str, registry: Registry) -> list[str]:
        """Add the nodes of group ``name`` (prefix their names with ``name + "/"``) and
        return the group's ports (the nodes external links attach to)."""


class LinkType(ABC):
    """A link type (plugin kind ``links``): the per-direction ``bandwidth`` (bytes/s) and
    ``latency`` (s) of one link, with their ``provenance``.

    Built as ``cls(config)``; subclasses set the three attributes in ``__init__``.
    """

    Config: ClassVar[type[BaseModel]]
    bandwidth: float
    latency: float
    provenance: str = ""

    def __init__(self, config: BaseModel):
        self.config = config


class NodeEntry(BaseModel):
    """One ``cluster.nodes`` entry: ``name``, and ``type`` (a ``cluster_nodes`` component,
    its other fields going to that component) or ``kind`` for one bare node (``switch``,
    ``host``, ``nic``, ``memory`` with ``capacity_GiB``, ``device`` with ``device``, a
    device spec such as ``{type: gpu, preset: h100_sxm}``)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(..., min_length=1)


class LinkEntry(BaseModel):
    """One ``cluster.links`` entry: ``between`` (two groups or nodes), and ``type`` (a
    ``links`` component, its other fields going to it) or the figures
    ``bandwidth_GBps`` (10^9 bytes/s per direction, > 0) and ``latency_us`` (>= 0)."""

    model_config = ConfigDict(extra="allow")
    between: tuple[str, str]


class ClusterConfig(BaseModel):
    """The ``cluster`` section: ``nodes`` and ``links`` (see :mod:`hermes_core.cluster`)."""

    model_config = ConfigDict(extra="forbid")
    nodes: list[NodeEntry] = Field(..., min_length=1)
    links: list[LinkEntry] = Field(default_factory=list)

    @field_validator("nodes")
    @classmethod
    def _unique(cls, nodes: list[NodeEntry]) -> list[NodeEntry]:
        names = [n.name for n in nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:  # a field validator, so the error names `cluster.nodes`
            raise ValueError(f"node names must be unique; repeated: {dup}")
        return nodes


class _BareNode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: str = Field(..., pattern="^(switch|host|nic|memory|device)$")
    capacity_GiB: float | None = Field(None, gt=0)
    device: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _device(self) -> _BareNode:
        if (self.kind == "device") != (self.device is not None):
            raise ValueError("a node of kind 'device' needs 'device' (a device spec such as "
                             "{type: gpu, preset: h100_sxm}); other kinds take none")
        return self


class _BareLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    between: tuple[str, str]
    bandwidth_GBps: float = Field(..., gt=0)
    latency_us: float = Field(0.0, ge=0)


def build_cluster(config: ClusterConfig, registry: Registry, where: str = "cluster") -> Cluster:
    """Build the cluster graph from its config. Raises :class:`ConfigError` (naming the
    YAML path) for unknown types, unknown link ends and bad figures."""
    from .plugins import validate_model

    cluster = Cluster()
    for i, entry in enumerate(config.nodes):
        w = f"{where}.nodes[{i}]"
        data = entry.model_dump()
        if "type" in data:
            spec = {k: v for k, v in data.items() if k != "name"}
            comp, cfg = registry.validate("cluster_nodes", spec, w)
            node = comp.obj(cfg)
            node.where = w
            try:
                ports = node.build(cluster, entry.name, registry)
            except ConfigError as exc:
                msg = str(exc)
                raise type(exc)(msg if msg.startswith(w) else f"{w}: {msg}") from None
            cluster.ports[entry.name] = list(ports)
        else:
            bare = validate_model(_BareNode, data, w)
            attrs: dict[str, Any] = {"capacity_bytes": bare.capacity_GiB * 2**30} if bare.capacity_GiB else {}
            if bare.device is not None:
                registry.validate("devices", bare.device, f"{w}.device")
                attrs["device"] = dict(bare.device)
            cluster.add(entry.name, bare.kind, entry.name, **attrs)
            cluster.ports[entry.name] = [entry.name]
    for i, entry in enumerate(config.links):
        w = f"{where}.links[{i}]"
        data = entry.model_dump()
        if "type" in data:
            spec = {k: v for k, v in data.items() if k != "between"}
            link = registry.build("links", spec, w)
            bw, lat, label = link.bandwidth, link.latency, str(data["type"])
        else:
            bare = validate_model(_BareLink, data, w)
            bw, lat, label = bare.bandwidth_GBps * 1e9, bare.latency_us * 1e-6, "custom"
        a, b = entry.between
        ends = []
        for j, end in enumerate((a, b)):
            if end in cluster.ports:
                ends.append(cluster.ports[end])
            elif end in cluster.graph:
                ends.append([end])
            else:
                raise ConfigError(f"{w}.between[{j}]: no cluster node or group '{end}'; "
                                  f"defined: {', '.join(cluster.groups)}")
        pa, pb = ends
        if len(pa) == len(pb):
            pairs = list(zip(pa, pb))
        elif len(pb) == 1:
            pairs = [(p, pb[0]) for p in pa]
        elif len(pa) == 1:
            pairs = [(pa[0], p) for p in pb]
        else:
            raise ConfigError(f"{w}.between: '{a}' has {len(pa)} ports and '{b}' has {len(pb)}; "
                              "join groups with equal port counts or a group with one port (a switch)")
        for u, v in pairs:
            if u == v:
                raise ConfigError(f"{w}.between: a link joins '{u}' to itself")
            cluster.connect(u, v, bw, lat, label)
    return cluster


def placement_list(place: str | list[str] | None) -> list[str]:
    """``place`` as a list of group or node names (empty: not placed)."""
    if place is None:
        return []
    return [place] if isinstance(place, str) else list(place)


def spec_matches(node_spec: Mapping[str, Any], client_spec: Mapping[str, Any]) -> bool:
    """Whether a client's device spec names the same device as the node's: same ``type``,
    and the same ``preset`` when both give one."""
    if node_spec.get("type") != client_spec.get("type"):
        return False
    a, b = node_spec.get("preset"), client_spec.get("preset")
    return a is None or b is None or a == b
