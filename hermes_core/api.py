"""The Python API: load a scenario, run it, read the results.

>>> from hermes_core import api
>>> result = api.run(api.load_scenario("examples/azure_conv_llama70b_tp8_h100.yaml"))  # doctest: +SKIP
>>> result.summary["ttft_ms"]["p99"]  # doctest: +SKIP

The CLI (:mod:`hermes_core.cli`) is a thin layer over these functions.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import yaml

from .cluster import Cluster, build_cluster, placement_list, spec_matches
from .config import TYPING_KEYS, ScenarioConfig, WorkloadTyping, apply_overrides, load_yaml, parse_scenario
from .engine import Simulator
from .errors import ConfigError, HermesError, PluginError
from .metrics import MetricsCollector, request_rows, write_requests_csv
from .network import Network
from .pipeline import STEP_COLUMNS, Coordinator, StepRecord, request_type_summary
from .plugins import Registry, default_registry, validate_model
from .router import Router
from .stage import Handoff, Stage, StageContext
from .topology import Topology
from .workload import Request, Workload, make_rng


@dataclass
class Scenario:
    """A validated scenario: the core config, the raw dict (component sections are
    validated when built) and the folder relative paths are resolved against."""

    config: ScenarioConfig
    raw: dict[str, Any]
    base_dir: Path


def load_scenario(source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (),
                  base_dir: str | Path | None = None) -> Scenario:
    """Load a scenario from a YAML file path or a plain dict, apply ``--set``-style
    ``overrides`` and validate the core fields. Raises :class:`ConfigError`."""
    if isinstance(source, Mapping):
        data = dict(source)
        root = Path(base_dir) if base_dir else Path.cwd()
    else:
        data = load_yaml(source)
        root = Path(base_dir) if base_dir else Path(source).resolve().parent
    data = apply_overrides(data, overrides)
    return Scenario(parse_scenario(data), data, root)


@dataclass
class Result:
    """What a run produced: ``summary`` (the content of ``summary.json``), ``requests``
    (one :class:`Request` per submitted request, with its timings), ``steps`` (one
    :class:`~hermes_core.pipeline.StepRecord` per call of a multi-stage request; empty in a
    single-client scenario), and, for a traced run, the engine steps per stage and the
    delivered flows."""

    summary: dict[str, Any]
    requests: list[Request] = field(repr=False)
    steps: list[StepRecord] = field(default_factory=list, repr=False)
    stage_trace: dict[str, list] | None = field(default=None, repr=False)
    flow_trace: list | None = field(default=None, repr=False)
    #: what reproduces the run: the resolved scenario (after ``--set``), the seed, hermes's
    #: version, Python's, and the plugins that were loaded (name, distribution, version)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def request_rows(self) -> list[dict[str, Any]]:
        """Per-request records as dicts (the rows of ``requests.csv``)."""
        return list(request_rows(self.requests))

    def write(self, output_dir: str | Path) -> Path:
        """Write ``summary.json`` and ``requests.csv`` (and ``steps.csv`` for a multi-stage
        run), and what reproduces the run: ``scenario.yaml`` (the resolved scenario, after
        ``--set``) and ``run.json`` (seed, hermes and Python versions, the plugins that ran),
        into ``output_dir`` (created). Every file is first written whole to a temporary
        file in the same folder; only then are they renamed into place, one after the other
        (each rename is atomic on POSIX), so an interrupted write never leaves a truncated
        file, nor a new file beside an old run's."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        typed = "request_types" in self.summary

        def steps(p: Path) -> None:
            with open(p, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=STEP_COLUMNS)
                w.writeheader()
                for rec in self.steps:
                    w.writerow({k: ("" if v is None else v) for k, v in rec.row().items()})

        files: list[tuple[str, Callable[[Path], None]]] = [
            ("requests.csv", lambda p: write_requests_csv(p, self.requests, typed=typed)),
            *([("steps.csv", steps)] if typed else []),
            *([("scenario.yaml", lambda p: p.write_text(
                f"# the scenario as run (every --set applied); relative paths in it were resolved against\n"
                f"# {self.provenance['base_dir']}\n" + yaml.safe_dump(self.provenance["scenario"], sort_keys=False))),
               ("run.json", lambda p: p.write_text(json.dumps(
                   {k: v for k, v in self.provenance.items() if k != "scenario"}, indent=2) + "\n"))]
              if self.provenance else []),
            ("summary.json", lambda p: p.write_text(json.dumps(_finite(self.summary), indent=2, allow_nan=False) + "\n")),
        ]
        _atomic_write_all(out, files)
        return out

    def write_trace(self, path: str | Path) -> Path:
        """Write a Chrome trace-event JSON file (opens in ui.perfetto.dev and
        chrome://tracing); see :func:`hermes_core.tracing.chrome_trace`. Needs a run made
        with ``trace=True``; raises ``ValueError`` otherwise."""
        from .tracing import chrome_trace

        if self.stage_trace is None:
            raise ValueError("this run was not traced: run it with trace=True (hermes run --trace FILE)")
        p = Path(path)
        p.write_text(json.dumps(chrome_trace(self)))
        return p


def _finite(obj: Any) -> Any:
    """``obj`` with every infinite or NaN float replaced by ``None`` (JSON has no Infinity)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _atomic_write_all(folder: Path, files: list[tuple[str, Callable[[Path], None]]]) -> None:
    """Write each ``(name, write)`` with ``write(tmp)`` to a temporary file in ``folder``;
    when all are written, rename them to their names. Temporary files are removed if
    anything fails or is interrupted before the renames."""
    tmps = [(folder / f".{name}.tmp", folder / name, write) for name, write in files]
    try:
        for tmp, _, write in tmps:
            write(tmp)
        for tmp, final, _ in tmps:
            os.replace(tmp, final)
    finally:
        for tmp, _, _ in tmps:
            if tmp.exists():
                tmp.unlink()


class Replica:
    """One data-parallel copy of a client: a pipeline of stages on its own devices. A
    request enters the first stage; each stage hands it to the next when done with it; a
    dropped request leaves the pipeline at once. ``location``: its device nodes in the
    cluster (empty when not placed on one); ``control``: it has no devices."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stages: list[Stage] = []
        self.on_done: Callable[[Request], None] = lambda req: None
        self.location: tuple[str, ...] = ()
        #: a replica with no devices (a control stage such as route or reasoning): data
        #: is never moved to it, it stays where the request's last call left it
        self.control = False

    def submit(self, req: Request) -> None:
        self.stages[0].submit(req)

    def handoff(self, req: Request) -> Handoff:
        """What the replica's last stage hands the next step (:meth:`Stage.handoff`)."""
        return self.stages[-1].handoff(req)

    def forward(self, index: int) -> Callable[[Request], None]:
        """The ``on_done`` callback of stage ``index``."""
        def done(req: Request) -> None:
            if req.dropped_reason or index + 1 == len(self.stages):
                self.on_done(req)
            else:
                self.stages[index + 1].submit(req)
        return done


class Client:
    """Replicas of one stage pipeline behind a router. Counts outstanding requests per
    replica (submitted, not yet out of the last stage)."""

    def __init__(self, name: str, replicas: list[Replica], router: Router, where: str = ""):
        self.name = name
        self.replicas = replicas
        self.router = router
        self.where = where
        self._outstanding = [0] * len(replicas)
        self._of: dict[int, int] = {}
        #: names the router in errors: "clients[0].router: router 'x' (plugin ...)"
        self.router_desc = f"{where}.router: router"

    @property
    def stages(self) -> list[Stage]:
        """Every stage of every replica."""
        return [s for r in self.replicas for s in r.stages]

    def choose(self, req: Request) -> int:
        """The replica index the router picks for ``req`` (counted outstanding from now).
        Raises :class:`PluginError` naming the router when it picks no replica."""
        n = len(self.replicas)
        i = self.router.choose(req, self._outstanding) if n > 1 else 0
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise PluginError(f"{self.router_desc} returned {i!r} for request {req.id}, not a replica index "
                              f"in 0..{n - 1}")
        if not 0 <= i < n:
            raise PluginError(f"{self.router_desc} returned replica {i} for request {req.id}; "
                              f"client '{self.name}' has replicas 0..{n - 1}")
        self._outstanding[i] += 1
        self._of[id(req)] = i
        return i

    def assign(self, req: Request, index: int) -> int:
        """Count ``req`` outstanding on replica ``index`` (a call pinned to a replica, which
        bypasses the router); returns ``index``. Raises ``IndexError`` for an index the
        client does not have."""
        if not 0 <= index < len(self.replicas):
            raise IndexError(f"client '{self.name}' has replicas 0..{len(self.replicas) - 1}, not {index}")
        self._outstanding[index] += 1
        self._of[id(req)] = index
        return index

    def submit(self, req: Request) -> None:
        self.replicas[self.choose(req)].submit(req)

    def finished(self, req: Request) -> None:
        self._outstanding[self._of.pop(id(req))] -= 1


def _device_spec(cc, cluster: Cluster | None, place: list[str], where: str) -> dict[str, Any]:
    """The client's device spec: its own, or (placed, none given) the first placed device's."""
    if not place:
        return cc.device
    assert cluster is not None
    devs = [d for p in place for d in cluster.devices(p)]
    if not devs:
        for p in place:
            if p not in cluster.groups and p not in cluster.graph:
                raise ConfigError(f"{where}.place: no cluster node or group '{p}'; defined: {', '.join(cluster.groups)}")
        raise ConfigError(f"{where}.place: {place} holds no devices")
    node_spec = cluster.graph.nodes[devs[0]]["device"]
    if "device" not in cc.model_fields_set:
        return dict(node_spec)
    if not any(spec_matches(cluster.graph.nodes[d]["device"], cc.device) for d in devs):
        raise ConfigError(f"{where}.device: {cc.device} matches no device of {place} "
                          f"(they are {node_spec})")
    return cc.device


def _build_client(idx: int, cc, sim: Simulator, registry: Registry, metrics: MetricsCollector,
                  seed: int, on_done: Callable[[Request], None] | None, base_dir: Path,
                  cluster: Cluster | None = None, door: Any = None, trace: dict | None = None) -> Client:
    where = f"clients[{idx}]"
    specs = [(f"{where}.stage", cc.stage)] if cc.stage is not None else [
        (f"{where}.stages[{j}]", spec) for j, spec in enumerate(cc.stages or [])
    ]
    validated = [(w, *registry.validate("stages", spec, w)) for w, spec in specs]
    needed = max(int(comp.obj.devices_needed(cfg)) for _, comp, cfg in validated)
    n_dev = cc.num_devices or needed
    if n_dev < needed:
        raise ConfigError(f"{where}.num_devices: the stages need {needed} devices, got {n_dev}")
    place = placement_list(cc.place)
    if place and cluster is None:
        raise ConfigError(f"{where}.place: the scenario has no 'cluster' section to place the client on")
    if place and not n_dev:
        raise ConfigError(f"{where}.place: the client's stages need no devices (a control stage runs "
                          "beside the others and holds no data); remove 'place'")
    spec = _device_spec(cc, cluster, place, where) if n_dev else cc.device
    dev_comp, dev_cfg = registry.validate("devices", spec, f"{where}.device") if n_dev else (None, None)
    router_comp, router_cfg = registry.validate("routers", cc.router, f"{where}.router")
    router = router_comp.obj(router_cfg)
    replicas = []
    for r in range(cc.replicas):
        rname = f"{cc.name}/{r}"
        replica = Replica(rname)
        replica.control = n_dev == 0
        devices = [dev_comp.obj(dev_cfg) for _ in range(n_dev)] if dev_comp is not None else []
        if place and n_dev:
            assert cluster is not None
            names = cluster.allocate(cc.name, place, spec, n_dev, f"{where}.place (replica {r})")
            topo: Topology = cluster
            replica.location = tuple(names)
        else:
            names = [f"{rname}/dev{j}" for j in range(n_dev)]
            bw = devices[0].link_bandwidth if devices else 1.0
            lat = devices[0].link_latency if devices else 0.0
            if cc.interconnect is not None:
                if cc.interconnect.bandwidth_GBps is not None:
                    bw = cc.interconnect.bandwidth_GBps * 1e9
                if cc.interconnect.latency_us is not None:
                    lat = cc.interconnect.latency_us * 1e-6
            topo = Topology.single_switch(names, bw, lat, switch=f"{rname}/switch")
        for j, (w, comp, cfg) in enumerate(validated):
            sname = rname if len(validated) == 1 else f"{rname}/{comp.name}{j}"
            ctx = StageContext(
                sim=sim, name=sname, devices=devices, device_names=names, topology=topo,
                registry=registry, rng=make_rng(seed, "client", cc.name, str(r), str(j)),
                on_done=replica.forward(j), metrics=metrics, where=w, base_dir=base_dir,
                client=cc.name, door=door, trace=trace.setdefault(sname, []) if trace is not None else None,
            )
            replica.stages.append(comp.obj(cfg, ctx))
        replicas.append(replica)
    client = Client(cc.name, replicas, router, where)
    client.router_desc = f"{where}.router: router '{router_comp.name}' (plugin {router_comp.plugin.describe()})"
    for replica in replicas:
        if on_done is not None:
            replica.on_done = on_done
        else:  # a client of a multi-stage scenario: the call's continuation takes it
            replica.on_done = _continue
    return client


def _continue(req: Request) -> None:
    req.continuation(req)  # type: ignore[misc]


def _build_workload(registry: Registry, spec: dict[str, Any], where: str, rng, base_dir: Path) -> tuple[Workload, WorkloadTyping]:
    """Split a workload section into the core's typing keys and the component, and build it."""
    typing_part = {k: spec[k] for k in TYPING_KEYS if k in spec}
    typing = validate_model(WorkloadTyping, typing_part, where)
    comp_spec = {k: v for k, v in spec.items() if k not in TYPING_KEYS}
    comp, cfg = registry.validate("workloads", comp_spec, where)
    field = getattr(cfg, "request_type_field", None)
    if typing.typed and field is not None:
        given = next(k for k in ("request_type", "mix", "request_type_rules") if k in typing_part)
        raise ConfigError(f"{where}.{given}: the workload types its requests from its trace "
                          f"(request_type_field: {field}); give one or the other")
    try:
        return comp.obj(cfg, rng=rng, base_dir=base_dir), typing  # type: ignore[return-value]
    except HermesError as exc:  # name the YAML path: "azure_trace.path: ..." -> "workload.path: ..."
        msg = str(exc)
        prefix = f"{comp.name}."
        if msg.startswith(prefix):
            raise type(exc)(f"{where}." + msg[len(prefix):]) from None
        raise


def _typer(typing: WorkloadTyping, types: Mapping[str, Any], rng) -> Callable[[Request], None]:
    """A function that sets ``request_type`` on each request of one stream."""
    if typing.request_type is not None:
        name = typing.request_type

        def fixed(req: Request) -> None:
            req.request_type = name
        return fixed
    if typing.mix is not None:
        names = [m.request_type for m in typing.mix]
        w = np.array([m.weight for m in typing.mix], dtype=float)
        cum = np.cumsum(w / w.sum()).tolist()
        cum[-1] = 1.0

        def mixed(req: Request) -> None:
            u = rng.random()
            req.request_type = names[bisect.bisect_right(cum, u)]
        return mixed
    if typing.request_type_rules is not None:
        rules = typing.request_type_rules

        def by_rule(req: Request) -> None:
            for rule in rules:
                if rule.matches(req.prompt_tokens, req.output_tokens):
                    req.request_type = rule.request_type
                    return
            req.dropped_reason = (f"no_matching_rule: prompt {req.prompt_tokens}, output {req.output_tokens} "
                                  "tokens match none of the workload's request_type_rules")
        return by_rule
    only = next(iter(types)) if len(types) == 1 else None

    def from_workload(req: Request) -> None:
        if not req.request_type and only is not None:
            req.request_type = only
    return from_workload


def _check_request_types(cfg: ScenarioConfig, registry: Registry,
                         typings: list[tuple[str, WorkloadTyping, set[str] | None]]) -> dict[str, list[str]]:
    """Validate ``request_types`` against the clients and workloads; return name -> steps."""
    clients = {c.name: i for i, c in enumerate(cfg.clients)}
    types = {name: [st.client for st in t.steps] for name, t in (cfg.request_types or {}).items()}
    for name, steps in types.items():
        for k, c in enumerate(steps):
            if c not in clients:
                raise ConfigError(f"request_types.{name}.steps[{k}].client: unknown client '{c}'; "
                                  f"defined: {sorted(clients)}")
    # calls between clients (control stages) must not form a cycle
    graph = nx.DiGraph()
    for i, cc in enumerate(cfg.clients):
        specs = [(f"clients[{i}].stage", cc.stage)] if cc.stage is not None else [
            (f"clients[{i}].stages[{j}]", sp) for j, sp in enumerate(cc.stages or [])]
        for w, spec in specs:
            comp, scfg = registry.validate("stages", spec, w)
            for field_path, target in comp.obj.targets(scfg).items():
                if target not in clients:
                    raise ConfigError(f"{w}.{field_path}: unknown client '{target}'; defined: {sorted(clients)}")
                graph.add_edge(cc.name, target, where=f"{w}.{field_path}")
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        where = graph.edges[cycle[0]]["where"]
        loop = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
        raise ConfigError(f"{where}: calls between clients form a cycle ({loop}); a request would never "
                          "leave it. Repeated calls belong inside one control stage (e.g. reasoning rounds)")
    used: set[str] = set()
    for where, typing, sent in typings:
        if not typing.typed:
            if sent is not None:  # the workload sets each request's type (a trace column)
                unknown = sorted(sent - set(types))
                if unknown:
                    raise ConfigError(f"{where}.request_type_field: the trace names request types {unknown} "
                                      f"that request_types does not define; defined: {sorted(types)}")
                used.update(sent)
            elif len(types) > 1:
                raise ConfigError(f"{where}: several request types are defined ({sorted(types)}); say which this "
                                  "workload sends with request_type, mix or request_type_rules")
            used.update(types if len(types) == 1 else [])
        for field_path, name in typing.type_names():
            if name not in types:
                raise ConfigError(f"{where}.{field_path}: unknown request type '{name}'; "
                                  f"defined: {sorted(types)}")
            used.add(name)
    unused = sorted(set(types) - used)
    if unused:
        raise ConfigError(f"request_types.{unused[0]}: no workload sends this request type; type the workload "
                          "with request_type, mix or request_type_rules, or remove it")
    return types


def _check_paths(cfg: ScenarioConfig, clients: Mapping[str, Client], types: Mapping[str, list[str]],
                 cluster: Cluster) -> None:
    """Every pair of consecutive steps whose clients are both placed must be connected."""
    for name, steps in types.items():
        for k in range(1, len(steps)):
            a, b = clients[steps[k - 1]], clients[steps[k]]
            for ra in a.replicas:
                for rb in b.replicas:
                    if ra.location and rb.location and not nx.has_path(cluster.graph, ra.location[0], rb.location[0]):
                        raise ConfigError(
                            f"request_types.{name}.steps[{k}]: no path in the cluster from '{ra.name}' "
                            f"({ra.location[0]}) to '{rb.name}' ({rb.location[0]}); add a link between their nodes")


def check_scenario(scenario: Scenario | str | Path | Mapping[str, Any], *, registry: Registry | None = None) -> None:
    """Build everything ``scenario`` names (cluster, clients, stages, devices, workloads,
    request types) without simulating: raises what :func:`run` would raise for bad input."""
    run(scenario, registry=registry, _check_only=True)


def run(scenario: Scenario | str | Path | Mapping[str, Any], *, seed: int | None = None,
        registry: Registry | None = None, progress: Callable[[float, int, int], None] | None = None,
        trace: bool = False, _check_only: bool = False) -> Result:
    """Simulate ``scenario`` and return a :class:`Result`.

    ``seed`` overrides the scenario's seed. ``progress(sim_time_s, requests_done,
    requests_expected)`` is called every few thousand events. ``trace``: record engine
    steps, stage services and transfers for :meth:`Result.write_trace`. Same scenario and
    seed give identical results (except ``wall_time_s``). Raises
    :class:`~hermes_core.HermesError` subclasses for bad input.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    cfg = scenario.config
    seed = cfg.seed if seed is None else seed
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be an integer >= 0 (got {seed!r})")
    registry = registry or default_registry()
    t0 = time.perf_counter()
    sim = Simulator()
    metrics = MetricsCollector()
    names = [c.name for c in cfg.clients]
    if len(set(names)) != len(names):
        raise ConfigError(f"clients: client names must be unique (got {names})")
    cluster = build_cluster(cfg.cluster, registry) if cfg.cluster is not None else None
    specs = cfg.workload_specs()
    streams = []
    for k, (where, spec) in enumerate(specs):
        rng = make_rng(seed, "workload") if len(specs) == 1 else make_rng(seed, "workload", str(k))
        streams.append((where, *_build_workload(registry, dict(spec), where, rng, scenario.base_dir)))
    trace_data: dict[str, list] | None = {} if trace else None

    submitted = 0
    warmup_submitted = 0
    clients: dict[str, Client] = {}
    coordinator: Coordinator | None = None
    network: Network | None = None
    per_type: dict[str, int] = {}

    if cfg.request_types is None:
        where, workload, typing = streams[0]
        if typing.typed:
            raise ConfigError(f"{where}: request_type, mix and request_type_rules need a 'request_types' section")
        target = typing.client
        if target is None:
            if len(cfg.clients) > 1:
                raise ConfigError(f"{where}.client: several clients are defined; name one of {names}, "
                                  "or describe request_types")
            target = names[0]
        if target not in names:
            raise ConfigError(f"{where}.client: unknown client '{target}'; defined: {names}")

        def on_done(req: Request) -> None:
            metrics.request_done(req)
            clients[target].finished(req)
            workload.on_request_done(req)

        for i, cc in enumerate(cfg.clients):
            clients[cc.name] = _build_client(i, cc, sim, registry, metrics, seed, on_done, scenario.base_dir,
                                             cluster, None, trace_data)

        def submit(req: Request) -> None:
            nonlocal submitted, warmup_submitted
            submitted += 1
            warmup_submitted += req.warmup
            clients[target].submit(req)

        workload.start(sim, submit)
        expected = workload.expected_requests() or 0
    else:
        for where, _, typing in streams:
            if typing.client is not None:
                raise ConfigError(f"{where}.client: with request_types, the request type names the clients; "
                                  "remove 'client'")
        types = _check_request_types(cfg, registry, [(w, t, wl.request_types()) for w, wl, t in streams])
        owner: dict[int, tuple[Workload, int]] = {}
        ids = itertools.count()
        several = len(streams) > 1

        def on_request_done(req: Request) -> None:
            metrics.request_done(req)
            wl, own_id = owner.pop(id(req))
            if several:  # the stream knows its requests by its own ids
                global_id, req.id = req.id, own_id
                wl.on_request_done(req)
                req.id = global_id
            else:
                wl.on_request_done(req)

        if cluster is not None:
            network = Network(sim, cluster)
            if trace:
                network.log = []
        coordinator = Coordinator(sim, clients, types, network, on_request_done)
        for i, cc in enumerate(cfg.clients):
            clients[cc.name] = _build_client(i, cc, sim, registry, metrics, seed, None, scenario.base_dir,
                                             cluster, coordinator, trace_data)
        if cluster is not None:
            _check_paths(cfg, clients, types, cluster)
        expected = 0
        for k, (where, workload, typing) in enumerate(streams):
            set_type = _typer(typing, types, make_rng(seed, "request_types", str(k)))

            def submit(req: Request, wl=workload, set_type=set_type) -> None:
                nonlocal submitted, warmup_submitted
                submitted += 1
                warmup_submitted += req.warmup
                owner[id(req)] = (wl, req.id)
                if several:
                    req.id = next(ids)
                set_type(req)
                per_type[req.request_type] = per_type.get(req.request_type, 0) + (not req.warmup)
                coordinator.submit(req)

            workload.start(sim, submit)
            expected += workload.expected_requests() or 0

    if _check_only:
        return None  # type: ignore[return-value]
    cb = None
    if progress is not None:
        cb = lambda now: progress(now, len(metrics.requests), expected)  # noqa: E731
    sim_end = sim.run(until=cfg.max_time_s or float("inf"), progress=cb)
    if progress is not None:
        progress(sim_end, len(metrics.requests), expected)
    wall = time.perf_counter() - t0

    summary: dict[str, Any] = {"scenario": cfg.name, "seed": seed}
    summary.update(metrics.summary(submitted, cfg.slo.as_dict() if cfg.slo else None, warmup_submitted))
    summary["simulated_time_s"] = sim_end
    summary["wall_time_s"] = wall
    summary["events"] = sim.events_processed
    summary["clients"] = {
        c.name: {s.ctx.name: s.report() for s in c.stages} for c in clients.values()
    }
    summary["utilisation"] = [
        {**dev, "replica": name} for per_stage in summary["clients"].values() for name, rep in per_stage.items()
        for dev in rep.get("devices", [])
    ]
    from .cost import cost_summary

    summary["cost"] = cost_summary(  # the devices of every replica (its stages share them)
        (pair for c in clients.values() for r in c.replicas if r.stages
         for pair in zip(r.stages[0].ctx.device_names, r.stages[0].ctx.devices)), summary)
    reqs = list(metrics.requests)
    seen = {id(r) for r in reqs}
    if coordinator is not None:
        for r in coordinator.unfinished():
            if id(r) not in seen:
                reqs.append(r)
                seen.add(id(r))
    else:
        for c in clients.values():
            for s in c.stages:
                for r in getattr(s, "unfinished", lambda: [])():
                    if id(r) not in seen:
                        reqs.append(r)
                        seen.add(id(r))
    records: list[StepRecord] = []
    if coordinator is not None:
        records = coordinator.records
        summary["request_types"] = request_type_summary(reqs, records, per_type)
        tr: dict[str, Any] = {"modelled": network is not None, "transfers": coordinator.transfers,
                              "moves_not_modelled": coordinator.unmodelled_moves}
        if network is None:
            tr["note"] = "no cluster section: data moves between clients at no cost"
        else:
            tr["flows"] = network.flows_started
            tr["bytes"] = network.bytes_started
            tr["links"] = network.link_report(sim_end)
            if coordinator.unmodelled_moves:
                tr["note"] = ("moves between a placed and an unplaced client cost nothing "
                              "(place every client on the cluster to price them)")
        summary["transfers"] = tr
    import platform

    from . import __version__

    provenance = {
        "scenario": {**scenario.raw, "seed": seed},
        "seed": seed,
        "base_dir": str(scenario.base_dir),
        "hermes_version": __version__,
        "python": platform.python_version(),
        "plugins": [{k: p[k] for k in ("name", "distribution", "version")} for p in registry.plugins()],
    }
    return Result(summary, reqs, records, trace_data, network.log if network is not None else None, provenance)
